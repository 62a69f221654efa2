"""Keys, certificates and requests shared by the SCEP message-layer tests (pure: no database).

RSA key generation is the slow part, so one set of keys is made per test process and reused."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import AttributeOID, NameOID


def name(cn: str, **extra: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    if "serial" in extra:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, extra["serial"]))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SCEP Test"))
    return x509.Name(attrs)


def certificate(key, subject: x509.Name, *, issuer_key=None, issuer: x509.Name | None = None, ca: bool = False,
                days: int = 30) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))
    if ca:
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, True, False, False, True, True, False, False), True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
    return builder.sign(issuer_key or key, hashes.SHA256())


def csr_for(key, subject: x509.Name, challenge: str | None = "foo123") -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return builder.sign(key, hashes.SHA256())


def key_pem(key) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclass(frozen=True)
class ScepParties:
    """A CA (RSA-2048, self-signed) and a client with its key, a self-signed certificate and a CSR."""

    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate
    client_key: rsa.RSAPrivateKey
    client_cert: x509.Certificate
    csr: x509.CertificateSigningRequest
    other_key: rsa.RSAPrivateKey  # a key nobody's certificate belongs to

    def issue(self, csr: x509.CertificateSigningRequest | None = None) -> x509.Certificate:
        """What a CA would issue for the CSR (enough for the reply-building tests)."""
        csr = csr or self.csr
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.ca_cert.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=10))
                .sign(self.ca_key, hashes.SHA256()))


@functools.cache
def parties() -> ScepParties:
    ca_key = rsa.generate_private_key(65537, 2048)
    client_key = rsa.generate_private_key(65537, 2048)
    return ScepParties(
        ca_key=ca_key, ca_cert=certificate(ca_key, name("SCEP Test CA"), ca=True),
        client_key=client_key, client_cert=certificate(client_key, name("user1")),
        csr=csr_for(client_key, name("user1")), other_key=rsa.generate_private_key(65537, 2048),
    )
