"""The least a Python SCEP server can do per RA-mode PKCSReq, as a bare WSGI application for ``scep_floor.py``.

This project's SCEP message layer (parse and verify, decrypt, read the CSR, build the CertRep), a shared-secret
challenge compared as a string, the certificate built and signed with ``cryptography``, and ONE INSERT of it
with a durable COMMIT over psycopg2. No Django, no end entity, no profiles, no uniqueness checks, no audit
event. Not a server to deploy: the ceiling under ``scep_enroll.py``'s figure.

Configured by the environment: SCEP_FLOOR_DIR (ca.key and ca.der), SCEP_FLOOR_DSN, SCEP_FLOOR_SECRET.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import psycopg2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key

from protocols.scep import messages as m

_dir = Path(os.environ["SCEP_FLOOR_DIR"])
CA_KEY = load_der_private_key((_dir / "ca.key").read_bytes(), None)
CA_DER = (_dir / "ca.der").read_bytes()
CA_CERT = x509.load_der_x509_certificate(CA_DER)
SECRET = os.environ["SCEP_FLOOR_SECRET"]
DSN = os.environ["SCEP_FLOOR_DSN"]
_local = threading.local()


def _connection():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg2.connect(DSN)
    return conn


def _enroll(body: bytes) -> bytes:
    message = m.parse_pki_message(body)
    inner = m.decrypt_envelope(message, CA_KEY, CA_CERT)
    info = m.parse_csr(inner.content)
    if info.challenge_password != SECRET:
        return m.build_cert_rep(signer_cert=CA_CERT, signer_key=CA_KEY, status=m.PkiStatus.FAILURE,
                                request=message, fail_info=m.FailInfo.BAD_REQUEST)
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(info.subject).issuer_name(CA_CERT.subject)
            .public_key(info.csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=10)).not_valid_after(now + timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(CA_KEY, hashes.SHA256()))
    conn = _connection()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO floor_cert (serial, subject, der) VALUES (%s, %s, %s)",
                    [format(cert.serial_number, "x"), info.subject.rfc4514_string(), cert.public_bytes(Encoding.DER)])
    conn.commit()
    return m.build_cert_rep(signer_cert=CA_CERT, signer_key=CA_KEY, status=m.PkiStatus.SUCCESS, request=message,
                            envelope=inner, issued_certs=[cert])


def app(environ, start_response):
    operation = parse_qs(environ.get("QUERY_STRING", "")).get("operation", [""])[0]
    if operation == "GetCACert":
        start_response("200 OK", [("Content-Type", "application/x-x509-ca-cert")])
        return [CA_DER]
    if operation == "PKIOperation" and environ["REQUEST_METHOD"] == "POST":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            reply = _enroll(body)
        except m.ScepError as exc:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [str(exc).encode()]
        start_response("200 OK", [("Content-Type", "application/x-pki-message")])
        return [reply]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"unknown operation"]
