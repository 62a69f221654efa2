"""Two real nodes on loopback for the peers tests: a CA node (its own PostgreSQL database, no web server: a CA
takes no connections, it only runs ``manage.py peer run``) and an RA node (its own database, gunicorn, and the
mTLS listener of :mod:`tests.peers.tlsproxy` in front). The CA has an RSA CA with the SCEP aliases of
:mod:`tests.protocols.scep.live`, the connector's authentication key binding ``ra-link`` (and ``stranger``, whose
certificate no RA role knows), a server certificate for the RA listener, and a role letting both bindings carry
SCEP. The RA has the CA's certificate imported and a role admitting ``ra-link`` as an incoming peer."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.protocols.scep.live import BIN, ROOT, SETUP, free_port
from tests.support.templatedb import create_database

from .tlsproxy import TlsProxy

CA_SETUP = """
import json
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keybindings import services as kb
from peers import services as peers
from pki.choices import MemberMatch
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateAuthority, CertificateProfile
from pki.services import roles
from pki.x509.dn import parse_dn

out = Path(%(out)r)
ca = CertificateAuthority.objects.get(name="ScepCA")
create_ca(a, CASettings(name="OtherCA", subject_dn="CN=OtherCA,O=Test,C=SE", crypto_token=token, key_alias="otherKey",
                        key_spec="P-256"))
kbt = tokens.create_token(a, name="PeerToken", token_type="SoftCryptoToken", auth_code="foo123", auto_activate=True)

def binding(name, cn):
    b = kb.create_binding(a, name=name, binding_type="AuthenticationKeyBinding", crypto_token=kbt, key_spec="P-256",
                          trusted_certificates=[{"ca": "ScepCA", "serial": ""}])
    kb.issue_certificate(a, b, ca=ca, profile=CertificateProfile.objects.get(name="ENDUSER"),
                         subject_dn=f"CN={cn},O=Test")
    return kb.set_status(a, b, "ACTIVE")

def server(name):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(f"CN={name},O=Test")).sign(key, hashes.SHA256())
    row = issue(IssuanceRequest(ca=ca, actor=a, profile=CertificateProfile.objects.get(name="SERVER"), csr=csr,
                                subject_alt_name="IPADDRESS=127.0.0.1", username=name)).row
    (out / f"{name}.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return row

link, stranger = binding("ra-link", "ca-connector"), binding("stranger", "stranger")
ra_server = server("ra-server")
server("no-client-auth")  # serverAuth only: what an RA must refuse as a client
role = roles.create_role(a, "RA connectors")
for b in (link, stranger):
    roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, b.certificate.serial, issuer_ca=ca))
roles.set_rules(a, role, {"/peer/carry/scep": True})
peers.add_connector(a, name="dmz-ra", url=%(url)r, binding="ra-link")
peers.add_connector(a, name="stranger-ra", url=%(url)r, binding="stranger", enabled=False)
(out / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
ids = {"link_serial": link.certificate.serial, "ra_server_serial": ra_server.serial}
(out / "ids.json").write_text(json.dumps(ids))
"""

RA_SETUP = """
import json
from pathlib import Path
from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.services import roles
from pki.services.cas import import_ca

a = Actor.system_actor("setup")
out = Path(%(out)r)
ca = import_ca(a, "ScepCA", (out / "ca.pem").read_bytes())
role = roles.create_role(a, "CA peers")
serial = json.loads((out / "ids.json").read_text())["link_serial"]
roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, serial, issuer_ca=ca))
roles.set_rules(a, role, {"/peer/incoming": True})
"""


class Node:
    """A node's database, environment and ``manage.py``."""

    def __init__(self, tmp: Path, role: str, db_name: str, **env: str):
        import dj_database_url

        server_url = os.environ.get("DATABASE_URL", "")
        if not server_url.startswith("postgres"):
            raise AssertionError("DATABASE_URL must name the PostgreSQL server (make test sets it)")
        self.db_name = db_name
        server = dj_database_url.parse(server_url)
        self._admin = {"dbname": "postgres", "user": server["USER"], "password": server["PASSWORD"] or None,
                       "host": server["HOST"] or None, "port": server["PORT"] or None}
        (tmp / role).mkdir(parents=True, exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PKI_TEST_", "REDIS_URL"))},
            "DATABASE_URL": urlsplit(server_url)._replace(path=f"/{db_name}").geturl(),
            "PKI_MASTER_KEY": f"peers-live-{secrets.token_urlsafe(24)}", "PKI_VAR_DIR": str(tmp / role / "var"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
            "PKI_NODE_ROLE": role, **env,
        }

    def sql(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(**self._admin)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(**{**self._admin, "dbname": self.db_name})
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def manage(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args[:2])} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def create(self) -> None:
        """A migrated database with the cache table (as `init` makes it: the refusal counters live in the cache),
        copied from the suite's migrated template instead of two ``manage.py`` runs."""
        create_database(self.db_name)

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            self.sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def _stop(process: subprocess.Popen | None, sig=signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


class PeerPair:
    """The CA node, the RA node (gunicorn + mTLS listener) and the CA's connector process."""

    def __init__(self, tmp: Path, *, users: tuple[str, ...] = (), request_timeout: float = 20, lease: float = 4,
                 workers: int = 2):
        self.tmp, self.users, self.workers = tmp, users, workers
        tag = secrets.token_hex(3)
        self.ca = Node(tmp, "ca", f"h2_ca_{tag}")
        self.ra = Node(tmp, "ra", f"h2_ra_{tag}", PKI_BEHIND_TLS_PROXY="1", PKI_TRUSTED_PROXIES="127.0.0.1",
                       PKI_PEER_REQUEST_TIMEOUT=str(request_timeout), PKI_PEER_LEASE_SECONDS=str(lease))
        self.out = tmp / "shared"
        self.out.mkdir(exist_ok=True)
        self.gunicorn: subprocess.Popen | None = None
        self.connector: subprocess.Popen | None = None
        self.proxy: TlsProxy | None = None
        self.ra_base = ""

    def start(self) -> PeerPair:
        self.ca.create()
        self.ra.create()
        listener_port = free_port()  # the proxy binds its own; the CA's connector URL needs it first
        self.proxy_url = f"https://127.0.0.1:{listener_port}"
        self.ca.manage("shell", "-c", SETUP % {"secret": "s3cret", "users": list(self.users), "include_ca": False}
                       + CA_SETUP % {"out": str(self.out), "url": self.proxy_url})
        self.ra.manage("shell", "-c", RA_SETUP % {"out": str(self.out)})
        port = free_port()
        self.gunicorn = subprocess.Popen(
            [str(BIN / "gunicorn"), "pki.wsgi", "-c", "python:pki.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
             "--workers", str(self.workers), "--threads", "8", "--access-logfile", "-"],
            cwd=ROOT, env=self.ra.env, stdout=(self.tmp / "ra.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.ra_base = f"http://127.0.0.1:{port}"
        self.proxy = TlsProxy(self.out / "ra-server.pem", self.out / "ra-server.key", self.out / "ca.pem", port,
                              port_hint=listener_port)
        deadline = time.monotonic() + 60
        while True:
            if self.gunicorn.poll() is not None:
                raise AssertionError(f"RA gunicorn exited:\n{self.logs('ra')}")
            try:
                urllib.request.urlopen(self.ra_base + "/login/", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"RA gunicorn did not answer:\n{self.logs('ra')}") from None
                time.sleep(0.3)
        return self

    def start_connector(self, lease_wait: float = 3, workers: int = 4) -> None:
        log = (self.tmp / "connector.log").open("a")
        self.connector = subprocess.Popen(
            [sys.executable, "manage.py", "peer", "run", "--lease-wait", str(lease_wait), "--workers", str(workers)],
            cwd=ROOT, env=self.ca.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_connected(self, timeout: float = 60) -> None:
        """Until the connector has pushed the SCEP aliases and reports itself connected."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connector is not None and self.connector.poll() is not None:
                raise AssertionError(f"connector exited:\n{self.logs('connector')}")
            state = self.ca.query("SELECT state FROM peers_peerconnector WHERE name = 'dmz-ra'")
            if state == [("connected",)] and self.ra.query("SELECT count(*) FROM peers_pushedscepalias")[0][0]:
                return
            time.sleep(0.3)
        raise AssertionError(f"connector did not connect:\n{self.logs('connector')}")

    def stop_connector(self, sig=signal.SIGTERM) -> None:
        _stop(self.connector, sig)
        self.connector = None

    def scep_url(self, alias: str) -> str:
        return f"{self.ra_base}/ejbca/publicweb/apply/scep/{alias}/pkiclient.exe"

    def logs(self, which: str) -> str:
        path = self.tmp / f"{which}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def close(self) -> None:
        self.stop_connector()
        _stop(self.gunicorn, signal.SIGINT)
        if self.proxy is not None:
            self.proxy.close()
        self.ca.drop()
        self.ra.drop()

    def __enter__(self) -> PeerPair:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def ids(pair: PeerPair) -> dict:
    return json.loads((pair.out / "ids.json").read_text())
