"""A small local HTTPS stand-in for Azure Key Vault and the Azure AD (Entra ID) token endpoint.

It implements only what the Azure SDK calls for a crypto token, following the public REST reference:

Azure AD (v2.0 endpoints, client credentials grant)
  GET  /{tenant}/v2.0/.well-known/openid-configuration   OIDC discovery, which MSAL fetches first
  POST /{tenant}/oauth2/v2.0/token                        client_secret or a client_assertion JWT
                                                          (RS256/PS256, x5t/x5t#S256) -> opaque bearer token
Key Vault (keys; api-version query parameter required)
  POST   /keys/{name}/create                 kty RSA/RSA-HSM/EC/EC-HSM, key_size, crv, key_ops
  GET    /keys/{name}[/{version}]
  POST   /keys/{name}/{version}/sign         alg RS*/PS*/ES*, value = base64url digest
  POST   /keys/{name}/{version}/decrypt      alg RSA1_5/RSA-OAEP/RSA-OAEP-256, value = base64url ciphertext
  DELETE /keys/{name}                        soft delete: the name stays taken (409 on create)
  GET    /deletedkeys/{name}

Requests to the vault without a bearer token it issued get 401 with the Key Vault challenge
(``WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="https://vault.azure.net"``);
errors use Key Vault's shape ``{"error": {"code": ..., "message": ...}}`` and AAD's OAuth error shape.
Keys are real ``cryptography`` keys held in memory; signatures and decryptions are real. Every request is recorded in
``requests`` so tests can see what the SDK sent (e.g. the kty of a premium vault key).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VAULT_RESOURCE = "https://vault.azure.net"
VAULT_SCOPE = VAULT_RESOURCE + "/.default"
API_VERSIONS = {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"}
KEY_NAME_RE = re.compile(r"[0-9a-zA-Z-]{1,127}")
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1, "P-256K": ec.SECP256K1}
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
ES_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "ES256K": "P-256K"}
ENCRYPTION_PADDINGS = {
    "RSA1_5": padding.PKCS1v15,
    "RSA-OAEP": lambda: padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    "RSA-OAEP-256": lambda: padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- TLS material for 127.0.0.1 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(directory: Path) -> TLSFiles:
    """A test CA and a server certificate for 127.0.0.1 and localhost, written as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Key Vault test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(directory / "kv-ca.pem", directory / "kv-server.pem", directory / "kv-server.key")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


# -- state ----------------------------------------------------------------------------------------------


@dataclass
class StoredKey:
    name: str
    version: str
    kty: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key_ops: list[str]
    crv: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Client:
    """An application registration: a secret, or a certificate for client assertions."""

    secret: str | None = None
    certificate: x509.Certificate | None = None


class KeyVaultError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class KeyVaultTestServer:
    """One vault and one AAD tenant on https://127.0.0.1:<port>."""

    def __init__(self, tls: TLSFiles, tenant_id: str):
        self.tls = tls
        self.tenant_id = tenant_id
        self.clients: dict[str, Client] = {}
        self.keys: dict[str, list[StoredKey]] = {}
        self.deleted: dict[str, dict] = {}
        self.tokens: dict[str, tuple[str, str, float]] = {}  # bearer -> (client id, scope, expiry)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0

    # lifecycle
    def start(self) -> KeyVaultTestServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        httpd.kv = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        threading.Thread(target=httpd.serve_forever, name="keyvault-test-server", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections, so the vault is really gone."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._connections.clear()
        self._httpd = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def register_client(self, client_id: str, secret: str | None = None,
                        certificate: x509.Certificate | None = None) -> None:
        self.clients[client_id] = Client(secret=secret, certificate=certificate)

    def requests_to(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.fullmatch(pattern, r["path"])]

    # -- Azure AD ----------------------------------------------------------------------------------------

    def openid_configuration(self, tenant: str) -> dict:
        self._check_tenant(tenant)
        base = f"{self.url}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
        }

    def _check_tenant(self, tenant: str) -> None:
        if tenant != self.tenant_id:
            raise KeyVaultError(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.")

    def token(self, tenant: str, form: dict[str, str]) -> dict:
        self._check_tenant(tenant)
        if form.get("grant_type") != "client_credentials":
            raise KeyVaultError(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant.")
        client_id = form.get("client_id", "")
        client = self.clients.get(client_id)
        if client is None:
            raise KeyVaultError(400, "unauthorized_client",
                                f"AADSTS700016: Application with identifier '{client_id}' was not found.")
        if "client_secret" in form:
            if client.secret is None or not secrets.compare_digest(form["client_secret"], client.secret):
                raise KeyVaultError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        elif "client_assertion" in form:
            self._check_assertion(tenant, client_id, client, form)
        else:
            raise KeyVaultError(401, "invalid_client", "AADSTS7000218: The request body must contain "
                                "'client_assertion' or 'client_secret'.")
        scope = form.get("scope", "")
        if VAULT_SCOPE not in scope.split():
            raise KeyVaultError(400, "invalid_scope", f"AADSTS70011: The provided scope '{scope}' is not valid.")
        bearer = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[bearer] = (client_id, VAULT_SCOPE, time.time() + 3600)
        return {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": bearer}

    def _check_assertion(self, tenant: str, client_id: str, client: Client, form: dict[str, str]) -> None:
        """private_key_jwt: a JWT signed with the registered certificate's key, for this token endpoint."""
        bad = KeyVaultError(401, "invalid_client", "AADSTS700027: Client assertion failed signature validation.")
        if client.certificate is None or form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            raise bad
        try:
            head_b64, body_b64, sig_b64 = form["client_assertion"].split(".")
            header, claims = json.loads(unb64url(head_b64)), json.loads(unb64url(body_b64))
        except ValueError:
            raise bad from None
        thumbprints = {("x5t", b64url(client.certificate.fingerprint(hashes.SHA1()))),
                       ("x5t#S256", b64url(client.certificate.fingerprint(hashes.SHA256())))}
        # Thumbprints are base64url; clients differ on keeping the "=" padding.
        if not any((k, str(header.get(k, "")).rstrip("=")) in thumbprints for k in ("x5t", "x5t#S256")):
            raise KeyVaultError(401, "invalid_client", "AADSTS700027: The certificate is not registered.")
        public = client.certificate.public_key()
        pad = {"RS256": padding.PKCS1v15(),
               "PS256": padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)}.get(header.get("alg"))
        if pad is None or not isinstance(public, rsa.RSAPublicKey):
            raise bad
        try:
            public.verify(unb64url(sig_b64), f"{head_b64}.{body_b64}".encode(), pad, hashes.SHA256())
        except InvalidSignature:
            raise bad from None
        now = time.time()
        endpoint = f"{self.url}/{tenant}/oauth2/v2.0/token"
        if claims.get("aud") != endpoint or claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise KeyVaultError(401, "invalid_client", "AADSTS700024: Client assertion audience or issuer is wrong.")
        if not claims.get("exp", 0) > now - 60:
            raise KeyVaultError(401, "invalid_client", "AADSTS700024: Client assertion has expired.")

    # -- Key Vault -------------------------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        entry = self.tokens.get(header[len("Bearer "):])
        return entry is not None and entry[1] == VAULT_SCOPE and entry[2] > time.time()

    def challenge(self) -> str:
        return f'Bearer authorization="{self.url}/{self.tenant_id}", resource="{VAULT_RESOURCE}"'

    def _kid(self, key: StoredKey) -> str:
        return f"{self.url}/keys/{key.name}/{key.version}"

    def _bundle(self, key: StoredKey) -> dict:
        jwk: dict = {"kid": self._kid(key), "kty": key.kty, "key_ops": key.key_ops}
        public = key.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            jwk["n"] = b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
            jwk["e"] = b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
        else:
            size = (public.curve.key_size + 7) // 8
            numbers = public.public_numbers()
            jwk.update(crv=key.crv, x=b64url(numbers.x.to_bytes(size, "big")),
                       y=b64url(numbers.y.to_bytes(size, "big")))
        attributes = {"enabled": True, "created": key.created, "updated": key.created,
                      "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90, "exportable": False}
        return {"key": jwk, "attributes": attributes}

    def _latest(self, name: str) -> StoredKey:
        versions = self.keys.get(name)
        if not versions:
            raise KeyVaultError(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        return versions[-1]

    def create_key(self, name: str, body: dict) -> dict:
        if not KEY_NAME_RE.fullmatch(name):
            raise KeyVaultError(400, "BadParameter", "The key name must match ^[0-9a-zA-Z-]+$ (1-127 characters).")
        if name in self.deleted:
            raise KeyVaultError(409, "Conflict", f"Key {name} is currently in a deleted but recoverable state, and "
                                "its name cannot be reused; in this state, the key can be recovered or purged.")
        kty = body.get("kty")
        if kty in ("RSA", "RSA-HSM"):
            size = body.get("key_size") or 2048
            if size not in (2048, 3072, 4096):
                raise KeyVaultError(400, "BadParameter", f"Invalid key size {size}: use 2048, 3072 or 4096.")
            private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(65537, size)
            crv = None
        elif kty in ("EC", "EC-HSM"):
            crv = body.get("crv") or "P-256"
            if crv not in CURVES:
                raise KeyVaultError(400, "BadParameter", f"Invalid curve name {crv}.")
            private_key = ec.generate_private_key(CURVES[crv]())
        else:
            raise KeyVaultError(400, "BadParameter", f"Key type {kty} is not supported for this operation.")
        key = StoredKey(name, uuid.uuid4().hex, kty, private_key, body.get("key_ops") or ["sign", "verify"], crv)
        with self.lock:
            self.keys.setdefault(name, []).append(key)
        return self._bundle(key)

    def list_keys(self) -> dict:
        """GET /keys: every key's id (without version) and attributes, in one page."""
        with self.lock:
            latest = [versions[-1] for versions in self.keys.values() if versions]
        return {"value": [{"kid": f"{self.url}/keys/{k.name}", "attributes": self._bundle(k)["attributes"]}
                          for k in latest], "nextLink": None}

    def get_key(self, name: str, version: str) -> dict:
        key = self._latest(name)
        if version:
            key = next((k for k in self.keys[name] if k.version == version), None)  # type: ignore[assignment]
            if key is None:
                raise KeyVaultError(404, "KeyNotFound", f"A key with (name/id) {name}/{version} was not found.")
        return self._bundle(key)

    def delete_key(self, name: str) -> dict:
        key = self._latest(name)
        now = int(time.time())
        bundle = {**self._bundle(key), "recoveryId": f"{self.url}/deletedkeys/{name}", "deletedDate": now,
                  "scheduledPurgeDate": now + 90 * 86400}
        with self.lock:
            del self.keys[name]
            self.deleted[name] = bundle
        return bundle

    def get_deleted_key(self, name: str) -> dict:
        if name not in self.deleted:
            raise KeyVaultError(404, "KeyNotFound", f"Deleted Key not found: {name}")
        return self.deleted[name]

    def sign(self, name: str, version: str, body: dict) -> dict:
        key = self._latest(name)
        if version:
            key = next((k for k in self.keys[name] if k.version == version), None)  # type: ignore[assignment]
            if key is None:
                raise KeyVaultError(404, "KeyNotFound", f"A key with (name/id) {name}/{version} was not found.")
        if "sign" not in key.key_ops:
            raise KeyVaultError(403, "Forbidden", "Operation sign is not permitted on this key.")
        alg = str(body.get("alg", ""))
        try:
            digest = unb64url(str(body["value"]))
        except (KeyError, ValueError):
            raise KeyVaultError(400, "BadParameter", "The 'value' parameter must be base64url.") from None
        hash_algorithm = HASHES.get(alg[2:5] if alg[:2] in ("RS", "PS", "ES") else "", None)
        if hash_algorithm is None:
            raise KeyVaultError(400, "BadParameter", f"Invalid algorithm {alg}.")
        h = hash_algorithm()
        if len(digest) != h.digest_size:
            raise KeyVaultError(400, "BadParameter", f"Invalid digest length {len(digest)} for algorithm {alg}.")
        private = key.private_key
        if alg.startswith(("RS", "PS")) and isinstance(private, rsa.RSAPrivateKey):
            pad = padding.PKCS1v15() if alg.startswith("RS") else padding.PSS(
                mgf=padding.MGF1(h), salt_length=h.digest_size)  # Key Vault: salt length = hash length
            signature = private.sign(digest, pad, Prehashed(h))
        elif alg in ES_CURVES and isinstance(private, ec.EllipticCurvePrivateKey) and ES_CURVES[alg] == key.crv:
            r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(Prehashed(h))))
            size = (private.curve.key_size + 7) // 8
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")  # JOSE form: r || s
        else:
            raise KeyVaultError(400, "BadParameter", f"Algorithm {alg} is not valid for this key ({key.kty}).")
        return {"kid": self._kid(key), "value": b64url(signature)}

    def decrypt(self, name: str, version: str, body: dict) -> dict:
        """RSA decryption with the key's private key, refused unless the key was created with "decrypt"."""
        key = self._latest(name)
        if version:
            key = next((k for k in self.keys[name] if k.version == version), None)  # type: ignore[assignment]
            if key is None:
                raise KeyVaultError(404, "KeyNotFound", f"A key with (name/id) {name}/{version} was not found.")
        if "decrypt" not in key.key_ops:
            raise KeyVaultError(403, "Forbidden", "Operation decrypt is not permitted on this key.")
        alg = str(body.get("alg", ""))
        make_padding = ENCRYPTION_PADDINGS.get(alg)
        if make_padding is None or not isinstance(key.private_key, rsa.RSAPrivateKey):
            raise KeyVaultError(400, "BadParameter", f"Algorithm {alg} is not valid for this key ({key.kty}).")
        try:
            ciphertext = unb64url(str(body["value"]))
        except (KeyError, ValueError):
            raise KeyVaultError(400, "BadParameter", "The 'value' parameter must be base64url.") from None
        try:
            plaintext = key.private_key.decrypt(ciphertext, make_padding())
        except ValueError:
            raise KeyVaultError(400, "BadParameter", "Decryption failed: the ciphertext is not valid for this key "
                                "and algorithm.") from None
        return {"kid": self._kid(key), "value": b64url(plaintext)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server_version = "KeyVaultTestServer"

    def log_message(self, format, *args):  # noqa: A002 (the base class's parameter name)
        pass  # quiet: tests read ``requests`` instead

    @property
    def kv(self) -> KeyVaultTestServer:
        return self.server.kv  # type: ignore[attr-defined]

    def setup(self) -> None:
        super().setup()
        with self.kv.lock:
            self.kv._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.kv.lock:
                self.kv._connections.discard(self.connection)

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        raw = self._body()
        record = {"method": method, "path": path, "query": query, "body": None}
        self.kv.requests.append(record)
        segments = [s for s in path.split("/") if s]
        try:
            # Azure AD
            if method == "GET" and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                return self._send(200, self.kv.openid_configuration(segments[0]))
            if method == "POST" and segments[1:] == ["oauth2", "v2.0", "token"]:
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                record["body"] = {k: v for k, v in form.items() if k not in ("client_secret", "client_assertion")}
                return self._send(200, self.kv.token(segments[0], form))
            # Key Vault, also under a vault name as the first segment (the tests' URL template
            # https://127.0.0.1:<port>/{vault}: the SDK puts the template's path before /keys)
            if len(segments) > 1 and segments[1] in ("keys", "deletedkeys"):
                record["vault"] = segments[0]
                segments = segments[1:]
                record["path"] = path = path.split("/" + record["vault"], 1)[1]
            if not segments or segments[0] not in ("keys", "deletedkeys"):
                raise KeyVaultError(404, "NotFound", f"No such resource: {path}")
            if not self.kv.authorized(self.headers.get("Authorization")):
                return self._send(401, {"error": {"code": "Unauthorized",
                                                  "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                                  {"WWW-Authenticate": self.kv.challenge()})
            version = (query.get("api-version") or [""])[0]
            if not version:
                raise KeyVaultError(400, "BadParameter", "The api-version query parameter is required.")
            if version not in API_VERSIONS:
                raise KeyVaultError(400, "BadParameter", f"The specified version ({version}) is not recognized.")
            body = json.loads(raw) if raw else {}
            record["body"] = body
            return self._send(200, self._vault(method, segments, body))
        except KeyVaultError as exc:
            if segments[1:2] == ["oauth2"] or segments[1:2] == ["v2.0"]:
                aadsts = re.match(r"AADSTS(\d+)", exc.message)
                return self._send(exc.status, {"error": exc.code, "error_description": exc.message,
                                               "error_codes": [int(aadsts.group(1))] if aadsts else []})
            return self._send(exc.status, {"error": {"code": exc.code, "message": exc.message}})
        except (ValueError, IndexError):
            return self._send(400, {"error": {"code": "BadParameter", "message": "Malformed request."}})

    def _vault(self, method: str, segments: list[str], body: dict) -> dict:
        kv = self.kv
        match (method, segments):
            case ("GET", ["keys"]):
                return kv.list_keys()
            case ("POST", ["keys", name, "create"]):
                return kv.create_key(name, body)
            case ("GET", ["keys", name]):
                return kv.get_key(name, "")
            case ("GET", ["keys", name, version]):
                return kv.get_key(name, version)
            case ("POST", ["keys", name, version, "sign"]):
                return kv.sign(name, version, body)
            case ("POST", ["keys", name, version, "decrypt"]):
                return kv.decrypt(name, version, body)
            case ("DELETE", ["keys", name]):
                return kv.delete_key(name)
            case ("GET", ["deletedkeys", name]):
                return kv.get_deleted_key(name)
        raise KeyVaultError(405, "MethodNotAllowed", f"{method} /{'/'.join(segments)} is not supported here.")
