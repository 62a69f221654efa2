"""deploy/nginx/pki.conf run by a real nginx, in front of a stand-in web service that echoes requests.

The configuration is used as shipped, with only the deployment-specific names templated: the
upstream ``web:8000`` becomes the stand-in on 127.0.0.1, the listen ports free loopback ports, and
/etc/nginx/tls/ a directory of certificates made here. nginx is a test dependency (the Debian package
``nginx``, installed by scripts/install-test-deps.sh): these tests fail, not skip, without it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx" / "pki.conf"
HOST = "pki.example.org"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if Path(p).exists()), None)
    if not found:
        pytest.fail("nginx is not installed: scripts/install-test-deps.sh installs the Debian package nginx")
    return found


def nginx_command(nginx: str, prefix: Path, config: Path) -> list[str]:
    # -e: the log for messages before the configuration is read (the compiled-in one may not be writable)
    return [nginx, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- certificates ------------------------------------------------------------------------------------


def _cert(subject: str, key, issuer_name: str | None = None, issuer_key=None, ca: bool = False,
          san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]) if issuer_name else name
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def make_tls_files(tls: Path) -> None:
    """server.pem/.key (for 127.0.0.1), client-ca.pem, and client certificates from it and from a stranger."""
    import ipaddress

    tls.mkdir()
    server_key = ec.generate_private_key(ec.SECP256R1())
    _write(tls / "server", _cert(HOST, server_key, ca=False, san=[
        x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), server_key)
    for ca_name, client in (("client-ca", "client"), ("stranger-ca", "stranger")):
        ca_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        _write(tls / ca_name, _cert(f"Test {ca_name}", ca_key, ca=True), ca_key)
        _write(tls / client, _cert(f"{client}.example.org", client_key, f"Test {ca_name}", ca_key), client_key)


# --- the stand-in web service ------------------------------------------------------------------------


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with what reached it: method, path and headers, as JSON."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = json.dumps({"method": self.command, "path": self.path, "body_length": len(body),
                            "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = _echo  # noqa: N815

    def log_message(self, *args) -> None:
        pass


def render(tmp: Path, upstream_port: int, http_port: int, https_port: int) -> Path:
    """The shipped configuration with its deployment names replaced, inside a minimal nginx.conf."""
    conf = CONF.read_text()
    for old, new in (
        ("server web:8000;", f"server 127.0.0.1:{upstream_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
    ):
        assert conf.count(old) == 1, f"pki.conf no longer has {old!r}: update this test's templating"
        conf = conf.replace(old, new)
    assert "/etc/nginx/tls/" in conf
    conf = conf.replace("/etc/nginx/tls/", f"{tmp}/tls/")
    (tmp / "pki.conf").write_text(conf)
    temp_paths = "\n".join(f"    {kind}_temp_path {tmp}/{kind};" for kind in
                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would run as nobody, who cannot enter pytest's private temp directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = tmp / "nginx.conf"
    main.write_text(f"""daemon off;
{user}worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
{temp_paths}
    include {tmp}/pki.conf;
}}
""")
    return main


class Proxy:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.http_port, self.https_port = free_port(), free_port()
        make_tls_files(tmp / "tls")
        self.backend = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        self.config = render(tmp, self.backend.server_address[1], self.http_port, self.https_port)
        self.process: subprocess.Popen | None = None

    def logs(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.tmp / name
            if path.exists():
                parts.append(f"--- nginx {name} ---\n{path.read_text()[-3000:]}")
        return "\n".join(parts)

    def start(self, nginx: str) -> None:
        threading.Thread(target=self.backend.serve_forever, daemon=True).start()
        stderr = (self.tmp / "stderr.log").open("w")
        self.process = subprocess.Popen(nginx_command(nginx, self.tmp, self.config), stdout=stderr, stderr=stderr,
                                        start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited with {self.process.returncode}\n{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"nginx did not listen within 15 s\n{self.logs()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.backend.shutdown()
        self.backend.server_close()

    def tls_context(self, client: str | None = None, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.tmp / "tls" / "server.pem"))
        if client:
            ctx.load_cert_chain(self.tmp / "tls" / f"{client}.pem", self.tmp / "tls" / f"{client}.key")
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx

    def request(self, scheme: str, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
                client: str | None = None, announce_length: int | None = None) -> tuple[int, dict, bytes]:
        """One request; ``announce_length`` sends only the headers, claiming a body of that size."""
        if scheme == "https":
            conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=15,
                                               context=self.tls_context(client))
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=15)
        try:
            headers = {"Host": HOST, **(headers or {})}
            if announce_length is None:
                conn.request(method, path, body=body, headers=headers)
            else:
                conn.putrequest(method, path, skip_host=True)
                for name, value in {**headers, "Content-Length": str(announce_length)}.items():
                    conn.putheader(name, value)
                conn.endheaders()
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def echoed(self, scheme: str, path: str, **kw) -> dict:
        status, _, body = self.request(scheme, kw.pop("method", "GET"), path, **kw)
        assert status == 200, f"{scheme} {path}: {status} {body[:300]!r}\n{self.logs()}"
        return json.loads(body)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    nginx = nginx_binary()
    proxy = Proxy(tmp_path_factory.mktemp("nginx"))
    try:
        proxy.start(nginx)
        yield proxy
    finally:
        proxy.stop()


def test_nginx_accepts_the_configuration(tmp_path):
    nginx = nginx_binary()
    make_tls_files(tmp_path / "tls")
    config = render(tmp_path, free_port(), free_port(), free_port())
    out = subprocess.run([*nginx_command(nginx, tmp_path, config), "-t"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr and "[emerg]" not in out.stderr, out.stderr


SPOOFED = {"X-SSL-Client-Cert": "forged", "X-SSL-Client-Verify": "SUCCESS"}


@pytest.mark.parametrize("path", [
    "/crl/ManagementCA.crl",
    "/ca/ManagementCA.crt",
    "/ejbca/publicweb/webdist/certdist?cmd=crl&issuer=CN%3DManagementCA",
    "/ejbca/publicweb/apply/scep/pkiclient.exe?operation=GetCACaps",
])
def test_plain_http_serves_crls_ca_certificates_and_scep(proxy, path):
    seen = proxy.echoed("http", path, headers=SPOOFED)
    assert seen["path"] == path
    assert seen["headers"]["host"] == HOST
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    # Without TLS there is no client certificate: what the client claimed never reaches the application.
    assert "x-ssl-client-cert" not in seen["headers"] and "x-ssl-client-verify" not in seen["headers"]


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("path", ["/ocsp", "/ocsp/MEIwQDA%2BMDwwCQYFKw4DAhoFAAQU", "/ejbca/publicweb/status/ocsp"])
def test_ocsp_is_answered_on_both_ports(proxy, scheme, path):
    # The CAs' AIA names plain HTTP: OCSP there is proxied, never redirected.
    seen = proxy.echoed(scheme, path, headers=SPOOFED)
    assert seen["path"] == path and seen["headers"]["x-forwarded-proto"] == scheme
    assert "x-ssl-client-cert" not in seen["headers"] and "x-ssl-client-verify" not in seen["headers"]


def test_plain_http_takes_scep_messages_in_long_query_strings(proxy):
    message = "A" * 12000  # a PKCSReq in a GET query string is several kilobytes of base64
    seen = proxy.echoed("http", f"/ejbca/publicweb/apply/scep/pkiclient.exe?operation=PKIOperation&message={message}")
    assert seen["path"].endswith(message)


@pytest.mark.parametrize("path", ["/", "/login/", "/cas/", "/crls/", "/static/pki.css", "/certificates/issue/",
                                  "/ejbca/ejbca-rest-api/v1/ca", "/api/docs/", "/cryptotokens/"])
def test_plain_http_redirects_everything_else_to_https(proxy, path):
    status, headers, _ = proxy.request("http", "GET", path)
    assert status == 301
    assert headers["location"] == f"https://{HOST}{path}"


def test_https_forwards_to_the_web_service_with_hsts(proxy):
    status, headers, body = proxy.request("https", "GET", "/login/", headers=SPOOFED)
    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=")
    seen = json.loads(body)
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["host"] == HOST
    # No client certificate: nginx says so, and a forged certificate header is dropped.
    assert seen["headers"]["x-ssl-client-verify"] == "NONE"
    assert "x-ssl-client-cert" not in seen["headers"]


def test_https_forwards_a_verified_client_certificate(proxy):
    seen = proxy.echoed("https", "/ejbca/ejbca-rest-api/v1/ca", client="client", headers=SPOOFED)
    assert seen["headers"]["x-ssl-client-verify"] == "SUCCESS"
    forwarded = x509.load_pem_x509_certificate(unquote(seen["headers"]["x-ssl-client-cert"]).encode())
    expected = x509.load_pem_x509_certificate((proxy.tmp / "tls" / "client.pem").read_bytes())
    assert forwarded == expected


def test_https_refuses_a_client_certificate_from_an_unknown_ca(proxy):
    status, _, _ = proxy.request("https", "GET", "/ejbca/ejbca-rest-api/v1/ca", client="stranger")
    assert status == 400


@pytest.mark.parametrize(("scheme", "path", "allowed"), [
    ("https", "/certificates/issue/", 3 * 1024 * 1024),  # a CA connector's answer posts on an RA (pki.conf)
    ("http", "/ejbca/publicweb/apply/scep/pkiclient.exe?operation=PKIOperation", 128 * 1024),
])
def test_request_bodies_are_limited(proxy, scheme, path, allowed):
    assert proxy.echoed(scheme, path, method="POST", body=b"x" * (allowed // 2))["body_length"] == allowed // 2
    # nginx answers from the announced length, before any of the body is sent
    status, _, _ = proxy.request(scheme, "POST", path, announce_length=allowed + 1)
    assert status == 413


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=lambda v: v.name)
def test_tls_12_and_13_with_http2(proxy, version):
    ctx = proxy.tls_context(version=version)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
            assert tls.selected_alpn_protocol() == "h2"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=lambda v: v.name)
def test_tls_before_12_is_refused(proxy, version):
    """Refused twice over: ssl_protocols (pinned in test_compose) and the AEAD-only TLS 1.2 cipher list."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old versions at all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = version
    except (ValueError, ssl.SSLError):
        pytest.skip(f"this Python's OpenSSL cannot offer {version.name}; ssl_protocols is checked in test_compose")
    with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname=HOST)
