"""``make run``'s HTTPS listener with client certificates, and an EJBCA-style REST client that holds only the
``superadmin.p12`` ``init`` printed the password of (issue 14).

A PostgreSQL database of its own (a copy of the suite's migrated one), ``manage.py migrate`` and ``init`` as the
Makefile runs them, then ``scripts/serve.py`` with the Makefile's arguments (nginx in front of gunicorn). The client
is curl with the P12 converted by openssl, as an operator would do it: no OAuth provider, no Basic credentials,
nothing configured by hand.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.deploy.test_serving import _makefile_run_line, serve
from tests.protocols.scep.live import LiveScepServer, free_port

V1 = "/ejbca/ejbca-rest-api/v1"
pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("serve-tls")]


def _ports() -> tuple[int, int]:
    """Two free ports; PKI_TEST_SERVE_PORTS="http,https" pins them (a machine with a reserved range)."""
    pinned = os.environ.get("PKI_TEST_SERVE_PORTS")
    if pinned:
        http_port, https_port = (int(p) for p in pinned.split(","))
        return http_port, https_port
    return free_port(), free_port()


class MakeRunTls(LiveScepServer):
    """The database and process handling of LiveScepServer; migrate + init + serve.py as ``make run`` does."""

    def start(self) -> MakeRunTls:
        # A copy of the suite's migrated template; `make run` still runs migrate (nothing left to do) and init.
        self.create_database()
        self.manage("migrate", "--noinput", "-v0")
        self.init_output = self.manage("init")
        self.var = Path(self.env["PKI_VAR_DIR"])
        http_port, self.tls_port = _ports()
        self.run_dir = Path(tempfile.mkdtemp(prefix="pki-serve-tls-"))
        self.run_dir.chmod(0o755)  # nginx's workers (nobody, under root) must traverse it
        values = {"$(PY)": sys.executable, "$(HOST)": "127.0.0.1", "$(PORT)": str(http_port)}
        argv = [values.get(a, a) for a in _makefile_run_line()]
        argv += ["--run-dir", str(self.run_dir), "--tls-port", str(self.tls_port)]
        handle = self.log.open("w")
        self.process = subprocess.Popen(argv, cwd=Path(serve.__file__).parents[1], env=self.env, stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{http_port}"
        self.https = f"https://127.0.0.1:{self.tls_port}"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve.py exited with {self.process.returncode}:\n{self.logs()}")
            try:
                urllib.request.urlopen(f"{self.base}/ca/ManagementCA.crt", timeout=5).close()
                if "https://" in self.logs():
                    return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"serve.py did not answer within 40 s:\n{self.logs()}")

    def close(self) -> None:
        super().close()
        if getattr(self, "run_dir", None):
            shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    assert serve.nginx_binary(), "nginx is not installed: scripts/install-test-deps.sh installs it"
    assert shutil.which("curl") and shutil.which("openssl"), "curl and openssl are needed (Debian packages)"
    with MakeRunTls(tmp_path_factory.mktemp("run-tls")) as server:
        yield server


@pytest.fixture(scope="module")
def admin_pem(run, tmp_path_factory) -> Path:
    """superadmin.p12 converted to PEM (key and certificate) with the password init printed."""
    password = re.search(r"P12 password:\s+(\S+)", run.init_output).group(1)
    out = tmp_path_factory.mktemp("admin") / "admin.pem"
    subprocess.run(["openssl", "pkcs12", "-in", str(run.var / "superadmin.p12"), "-nodes", "-out", str(out),
                    "-passin", f"pass:{password}"], check=True, capture_output=True, timeout=30)
    return out


def curl(run, method: str, path: str, *, cert: Path | None = None, body: dict | None = None,
         url: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict | str]:
    """One request with curl, trusting the server certificate through the CA file init wrote (no -k)."""
    argv = ["curl", "-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--cacert",
            str(run.var / "tls" / "client-ca.pem"), (url or run.https) + path]
    if cert is not None:
        argv += ["--cert", str(cert)]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text, _, status = out.stdout.rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status), text


def _csr(cn: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


# --- init's output -----------------------------------------------------------------------------------------------

def test_init_writes_the_listener_credentials_and_prints_the_p12_password_once(run):
    assert re.search(r"P12 password:\s+\S{12,}", run.init_output)
    for name, mode in (("superadmin.p12", 0o600), ("tls/server.key", 0o600), ("tls/server.pem", 0o644)):
        assert (run.var / name).stat().st_mode & 0o777 == mode, name
    server = x509.load_pem_x509_certificates((run.var / "tls" / "server.pem").read_bytes())
    names = server[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert server[0].issuer == server[1].subject  # issued by ManagementCA, chain included
    again = run.manage("init")  # make run runs init on every start: nothing new, no password again
    assert "P12 password" not in again and "superadmin certificate" not in again
    member = run.query("SELECT m.match_type, c.name FROM pki_rolemember m JOIN pki_role r ON r.id = m.role_id "
                       "JOIN pki_certificateauthority c ON c.id = m.issuer_ca_id "
                       "WHERE r.name = 'Super Administrator Role'")
    assert member == [("CERTIFICATE_SERIAL", "ManagementCA")]


def test_nginx_accepts_the_https_configuration_and_drops_it_without_credentials(run, tmp_path):
    nginx = serve.nginx_binary()
    config = serve.render_nginx(tmp_path, "127.0.0.1", 8000, 8001, tls_port=8443, tls_dir=run.var / "tls")
    site = (tmp_path / "pki-run.conf").read_text()
    assert "listen 127.0.0.1:8443 ssl;" in site and "ssl_verify_client optional;" in site
    assert "/PKI_TLS_DIR" not in site and str(run.var / "tls" / "client-ca.pem") in site
    out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "[emerg]" not in out.stderr, out.stderr
    serve.render_nginx(tmp_path, "127.0.0.1", 8000, 8001, tls_port=8443, tls_dir=None)
    assert "ssl" not in (tmp_path / "pki-run.conf").read_text().replace("X-SSL-Client", "")
    assert serve.tls_ready(run.var / "tls") and not serve.tls_ready(tmp_path)


def test_a_taken_https_port_leaves_the_http_server_running():
    """serve.py checks the HTTPS port first: nginx failing to bind it would stop the whole server."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert not serve.port_free("127.0.0.1", port)
    assert serve.port_free("127.0.0.1", port)


# --- who gets in -------------------------------------------------------------------------------------------------

def test_superadmin_certificate_reaches_the_rest_api(run, admin_pem):
    status, body = curl(run, "GET", f"{V1}/ca", cert=admin_pem)
    assert status == 200, body
    assert any(c["name"] == "ManagementCA" for c in body["certificate_authorities"])


def test_no_certificate_is_401(run):
    status, body = curl(run, "GET", f"{V1}/ca")
    assert status == 401, body


def test_a_certificate_of_ours_matching_no_member_is_403(run, tmp_path):
    """Known to the CA, valid, but in no role: authenticated without rights (EJBCA answers 403, not 401)."""
    csr_pem, key = _csr("not-an-admin")
    (tmp_path / "req.csr").write_text(csr_pem)
    run.manage("ca", "issuecert", "--caname", "ManagementCA", "--csr", str(tmp_path / "req.csr"),
               "--certprofile", "ENDUSER", "-o", str(tmp_path / "cert.pem"))
    (tmp_path / "client.pem").write_bytes((tmp_path / "cert.pem").read_bytes() + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    status, body = curl(run, "GET", f"{V1}/ca", cert=tmp_path / "client.pem")
    assert status == 403, body


def test_forged_certificate_headers_count_on_neither_port(run, admin_pem):
    """The plain-HTTP port blanks the headers; the HTTPS port overwrites them with what it verified."""
    cert = x509.load_pem_x509_certificate(admin_pem.read_bytes())
    forged = {"X-SSL-Client-Verify": "SUCCESS",
              "X-SSL-Client-Cert": quote(cert.public_bytes(serialization.Encoding.PEM).decode(), safe="")}
    assert curl(run, "GET", f"{V1}/ca", url=run.base, headers=forged)[0] == 401
    assert curl(run, "GET", f"{V1}/ca", headers=forged)[0] == 401


def test_gunicorn_believes_the_headers_only_with_this_runs_proxy_secret(run, admin_pem):
    """Another local user can reach gunicorn's loopback port (trusted by address) and forge the headers with the
    superadmin's public certificate; without the secret nginx adds (in a 0600 file) that gets 401."""
    site = run.run_dir / "pki-run.conf"
    assert site.stat().st_mode & 0o777 == 0o600
    text = site.read_text()
    upstream = re.search(r"server 127\.0\.0\.1:(\d+);", text).group(1)
    secret = re.search(r'X-PKI-Proxy-Secret "([^"]+)"', text).group(1)
    cert = x509.load_pem_x509_certificate(admin_pem.read_bytes())
    forged = {"X-SSL-Client-Verify": "SUCCESS",
              "X-SSL-Client-Cert": quote(cert.public_bytes(serialization.Encoding.PEM).decode(), safe="")}
    direct = f"http://127.0.0.1:{upstream}"
    assert curl(run, "GET", f"{V1}/ca", url=direct, headers=forged)[0] == 401
    assert curl(run, "GET", f"{V1}/ca", url=direct, headers={**forged, "X-PKI-Proxy-Secret": "guess"})[0] == 401
    assert curl(run, "GET", f"{V1}/ca", url=direct, headers={**forged, "X-PKI-Proxy-Secret": secret})[0] == 200
    # and a client of nginx cannot send one: both servers overwrite it
    assert curl(run, "GET", f"{V1}/ca", url=run.base, headers={**forged, "X-PKI-Proxy-Secret": secret})[0] == 401


def test_the_browser_port_stays_plain_http_with_usable_cookies(run):
    with urllib.request.urlopen(f"{run.base}/login/", timeout=10) as reply:
        cookies = reply.headers.get_all("Set-Cookie") or []
    assert reply.status == 200
    # The CSRF cookie of the login form: without Secure, so a browser keeps it on http://127.0.0.1:8000.
    assert cookies and not [c for c in cookies if "secure" in [a.strip().lower() for a in c.split(";")[1:]]]


# --- an EJBCA REST client with only its client certificate -------------------------------------------------------

def test_client_certificate_only_enrolls_renews_twice_revokes_and_checks_status(run, admin_pem):
    issuer = quote("CN=ManagementCA,O=PKI Demo,C=SE", safe="")
    serials = []
    for attempt in range(3):  # the first enrollment, then the same username twice more (renewals)
        csr_pem, _ = _csr("device-42")
        status, body = curl(run, "POST", f"{V1}/certificate/pkcs10enroll", cert=admin_pem, body={
            "certificate_request": csr_pem, "username": "device-42", "password": "foo123",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "EMPTY",
            "certificate_authority_name": "ManagementCA", "include_chain": True})
        assert status == 201, (attempt, body)
        cert = x509.load_der_x509_certificate(base64.b64decode(body["certificate"]))
        assert cert.subject.rfc4514_string() == "CN=device-42"
        serials.append(body["serial_number"])
    assert len(set(serials)) == 3
    status, body = curl(run, "PUT", f"{V1}/certificate/{issuer}/{serials[-1]}/revoke?reason=KEY_COMPROMISE",
                        cert=admin_pem)
    assert status == 200 and body["revoked"] is True, body
    status, body = curl(run, "GET", f"{V1}/certificate/{issuer}/{serials[-1]}/revocationstatus", cert=admin_pem)
    assert status == 200 and body["revoked"] is True and body["revocation_reason"] == "KEY_COMPROMISE", body
    status, body = curl(run, "GET", f"{V1}/certificate/{issuer}/{serials[0]}/revocationstatus", cert=admin_pem)
    assert status == 200 and body["revoked"] is False, body
    actors = {row[0] for row in run.query("SELECT actor FROM pki_auditevent WHERE event_type = 'CERT_REVOKED'")}
    assert any("SuperAdmin (certificate" in a for a in actors), actors
