"""The message layer against a real SCEP client: Debian's ``scepclient`` (micromdm) talks to a minimal HTTP
responder made only of this package's functions (no Django, no database), enrolls, and stores the
certificate. It sends DES-CBC and SHA-1 whatever the CA's capabilities say, and writes the EnvelopedData's
encryptedContent in BER's constructed form, so this covers the legacy paths with a real peer.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from protocols.scep.messages import (
    FailInfo,
    PkiStatus,
    ScepFailure,
    build_cert_rep,
    decrypt_envelope,
    parse_csr,
    parse_pki_message,
)

from .message_fixtures import parties


class _Responder(BaseHTTPRequestHandler):
    seen: list = []
    challenge = "foo123"

    def _answer(self, operation: str, body: bytes) -> None:
        p = parties()
        if operation == "GetCACaps":
            return self._send("text/plain", b"POSTPKIOperation\nSHA-256\nAES\nDES3\nSCEPStandard\n")
        if operation == "GetCACert":
            return self._send("application/x-x509-ca-cert", p.ca_cert.public_bytes(Encoding.DER))
        message = parse_pki_message(body)
        try:
            inner = decrypt_envelope(message, p.ca_key, p.ca_cert, allow_des=True)
            csr = parse_csr(inner.content, message=message)
            self.seen.append((message.digest_algorithm, inner.cipher, inner.key_transport, csr.username,
                              csr.challenge_password))
            if csr.challenge_password != self.challenge:
                reply = build_cert_rep(request=message, status=PkiStatus.FAILURE, fail_info=FailInfo.BAD_REQUEST,
                                       signer_cert=p.ca_cert, signer_key=p.ca_key)
            else:
                reply = build_cert_rep(request=message, envelope=inner, status=PkiStatus.SUCCESS,
                                       issued_certs=[p.issue(csr.csr)], signer_cert=p.ca_cert, signer_key=p.ca_key)
        except ScepFailure as failure:
            reply = build_cert_rep(request=message, status=PkiStatus.FAILURE, fail_info=failure.fail_info,
                                   signer_cert=p.ca_cert, signer_key=p.ca_key)
        self._send("application/x-pki-message", reply)

    def _send(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        operation = query.get("operation", [""])[0]
        body = base64.b64decode(query["message"][0]) if operation == "PKIOperation" else b""
        self._answer(operation, body)

    def do_POST(self) -> None:  # noqa: N802
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        self._answer(query.get("operation", [""])[0], self.rfile.read(int(self.headers["Content-Length"])))

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def responder():
    if shutil.which("scepclient") is None:
        pytest.fail("scepclient (Debian package 'scep') is missing: run scripts/install-test-deps.sh")
    _Responder.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Responder)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _enroll(server, workdir, challenge: str, cn: str) -> subprocess.CompletedProcess:
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", workdir / "key.pem", "2048"], check=True,
                   capture_output=True)
    return subprocess.run(
        ["scepclient", "-server-url", f"http://127.0.0.1:{server.server_port}/scep/pkiclient.exe",
         "-private-key", workdir / "key.pem", "-certificate", workdir / "cert.pem", "-challenge", challenge,
         "-cn", cn],
        capture_output=True, text=True, cwd=workdir, timeout=60,
    )


def test_scepclient_enrolls(responder, tmp_path):
    out = _enroll(responder, tmp_path, "foo123", "router7")
    assert out.returncode == 0, out.stderr
    assert _Responder.seen == [("sha1", "des", "pkcs1v15", "router7", "foo123")]
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert cert.issuer == parties().ca_cert.subject
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "router7"


def test_scepclient_gets_the_failure(responder, tmp_path):
    out = _enroll(responder, tmp_path, "wrong", "router8")
    assert out.returncode != 0
    assert "failInfo: badRequest (2)" in out.stdout, out.stdout + out.stderr  # it read our FAILURE CertRep
    assert not (tmp_path / "cert.pem").exists()
