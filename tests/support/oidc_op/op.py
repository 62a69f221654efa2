"""Start and drive the test OpenID provider (``server.js``, panva's oidc-provider) from Python.

One OP process per name per test process, started on first use on 127.0.0.1 and a free port, stopped at
exit. A missing Node.js or ``npm install`` fails loudly: the OAuth tests need a real provider.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 30


def new_rsa_key(kid: str) -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    """A fresh RSA key and its private JWK (for the OP's keystore)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return key, jwk


@dataclass
class OidcOP:
    """A running OP: its issuer, the private key it signs with (for tokens the OP cannot be asked for),
    and helpers for registering clients and getting tokens."""

    name: str
    process: subprocess.Popen
    issuer: str
    signing_key: rsa.RSAPrivateKey
    kid: str
    log_path: Path
    workdir: Path
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.issuer + path

    def register(self, **metadata: Any) -> dict[str, Any]:
        """Dynamic client registration; returns the client (client_id, client_secret, ...)."""
        body = {"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
                "token_endpoint_auth_method": "client_secret_basic", **metadata}
        r = requests.post(self.url("/reg"), json=body, timeout=10)
        assert r.status_code == 201, f"client registration at the OP failed: {r.status_code} {r.text}"
        return r.json()

    def client_token(self, client: dict[str, Any], resource: str | None = None, scope: str = "api") -> str:
        """An access token for ``client`` by the client_credentials grant (JWT when ``resource`` is given)."""
        data = {"grant_type": "client_credentials", "scope": scope}
        if resource:
            data["resource"] = resource
        r = requests.post(self.url("/token"), data=data, auth=(client["client_id"], client["client_secret"]),
                          timeout=10)
        assert r.status_code == 200, f"token request at the OP failed: {r.status_code} {r.text}"
        return r.json()["access_token"]

    def stats(self) -> dict[str, int]:
        return requests.get(self.url("/test/stats"), timeout=10).json()

    def rotate(self, jwks: dict[str, Any]) -> list[str]:
        """Replace the OP's keys (the first one signs from now on)."""
        r = requests.post(self.url("/test/rotate"), data=json.dumps(jwks), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["kids"]

    def mint(self, claims: dict[str, Any], key=None, kid: str | None = None, alg: str = "RS256",
             headers: dict[str, Any] | None = None) -> str:
        """A token signed with the OP's own key (for expiry/alg/tamper cases the OP will not produce)."""
        return jwt.encode(claims, key or self.signing_key, algorithm=alg,
                          headers={"kid": kid or self.kid, **(headers or {})})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


_running: dict[str, OidcOP] = {}


def start_op(name: str, user_groups: dict[str, list[str]] | None = None) -> OidcOP:
    """The OP called ``name`` of this test process (started on first use)."""
    op = _running.get(name)
    if op is not None and op.process.poll() is None:
        return op
    node = shutil.which("node") or "/usr/bin/node"
    if not os.path.exists(node):
        raise AssertionError("Node.js is needed for the test OpenID provider (Debian's nodejs package)")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        raise AssertionError(f"oidc-provider is not installed in {HERE}: run scripts/install-test-deps.sh "
                             "(make test does), which runs npm ci there")
    workdir = Path(tempfile.mkdtemp(prefix=f"pki-op-{name}-"))
    kid = f"{name}-key-1"
    key, jwk = new_rsa_key(kid)
    keys_path = workdir / "jwks.json"
    keys_path.write_text(json.dumps({"keys": [jwk]}))
    keys_path.chmod(0o600)
    log_path = workdir / "op.log"
    env = {**os.environ, "USER_GROUPS": json.dumps(user_groups or {}), "NODE_ENV": "test"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([node, "server.js", "--keys", str(keys_path)], cwd=HERE, env=env,
                                   stdout=subprocess.PIPE, stderr=log)
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if process.poll() is not None:
            break
        if selector.select(timeout=0.5):
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    selector.close()
    if not line.endswith(b"\n"):
        process.kill()
        raise AssertionError(f"the test OpenID provider '{name}' did not start: {log_path.read_text(errors='replace')}")
    info = json.loads(line.decode())
    op = OidcOP(name=name, process=process, issuer=info["issuer"], signing_key=key, kid=kid, log_path=log_path,
                workdir=workdir)
    _running[name] = op
    atexit.register(op.stop)
    return op
