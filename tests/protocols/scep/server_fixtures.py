"""Fixtures and helpers of the SCEP server tests: an RSA CA, aliases, end entities, and a SCEP client that
talks to the server through Django's test client (the message layer's client builder underneath).

Import the fixtures into a test module with ``from .server_fixtures import *  # noqa: F403``.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID

from protocols.scep.messages import client as scep_client
from protocols.scep.messages import parse_degenerate

URL = "/ejbca/publicweb/apply/scep/{alias}/pkiclient.exe"
DEFAULT_URL = "/ejbca/publicweb/apply/scep/pkiclient.exe"


@functools.lru_cache(maxsize=32)
def client_key(n: int = 0) -> rsa.RSAPrivateKey:
    """RSA-2048 client keys, made once per test process (key generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(key, cn: str) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))


def make_csr(key, subject: str | x509.Name, challenge: str | None = "foo123", digest=None,
             san: list[str] | None = None) -> x509.CertificateSigningRequest:
    if isinstance(subject, str):
        from pki.x509.dn import parse_dn

        subject = parse_dn(subject)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in san]), False)
    return builder.sign(key, digest or hashes.SHA256())


def own(result, key) -> x509.Certificate:
    """The certificate of ``key`` among a reply's certificates (a SET OF: DER order, not the server's)."""
    return next(c for c in result.certificates if c.public_key() == key.public_key())


@dataclass
class ScepTestClient:
    """A SCEP client over Django's test client."""

    http: object
    alias: str | None = "scep"
    short: bool = False
    sent: list = field(default_factory=list)

    @property
    def url(self) -> str:
        if self.alias is None:
            return DEFAULT_URL
        return f"/scep/{self.alias}/pkiclient.exe" if self.short else URL.format(alias=self.alias)

    def get(self, operation: str, message: str | None = None):
        params = {"operation": operation}
        if message is not None:
            params["message"] = message
        return self.http.get(self.url, params)

    def ca_certs(self, message: str | None = None) -> list[x509.Certificate]:
        resp = self.get("GetCACert", message)
        assert resp.status_code == 200, resp.content
        if resp["Content-Type"] == "application/x-x509-ca-cert":
            return [x509.load_der_x509_certificate(resp.content)]
        return parse_degenerate(resp.content)[0]

    def post(self, data: bytes):
        return self.http.post(self.url + "?operation=PKIOperation", data=data,
                              content_type="application/x-pki-message")

    def get_pki(self, data: bytes):
        return self.http.get(self.url, {"operation": "PKIOperation", "message": base64.b64encode(data).decode()})

    def exchange(self, request: scep_client.ClientRequest, key, cert, recipient: x509.Certificate, *,
                 method: str = "POST") -> scep_client.CertRepResult:
        resp = self.post(request.data) if method == "POST" else self.get_pki(request.data)
        assert resp.status_code == 200, (resp.status_code, resp.content)
        assert resp["Content-Type"] == "application/x-pki-message"
        result = scep_client.parse_cert_rep(resp.content, key, cert, ca_certs=[recipient])
        assert result.transaction_id == request.transaction_id
        assert result.recipient_nonce == request.sender_nonce
        assert result.sender_nonce and result.sender_nonce != request.sender_nonce
        return result

    def enroll(self, csr, key, recipient: x509.Certificate, *, signer_cert=None, signer_key=None,
               method: str = "POST", **kw) -> scep_client.CertRepResult:
        signer_key = signer_key or key
        signer_cert = signer_cert or self_signed(signer_key, "scep-client")
        request = scep_client.build_pkcs_req(csr, signer_cert, signer_key, recipient, **kw)
        self.sent.append(request)
        return self.exchange(request, signer_key, signer_cert, recipient, method=method)


@pytest.fixture
def scep_ca(ca_factory):
    """An RSA-2048 root CA (SCEP decrypts with the CA key)."""
    return ca_factory("ScepCA", key_spec="RSA2048")


@pytest.fixture
def alias_factory(actor, builtin_profiles):
    from endentities.services import ensure_empty_profile
    from protocols.scep import services

    ensure_empty_profile()

    def make(name: str = "scep", **settings):
        return services.add_alias(actor, name, **settings)

    return make


@pytest.fixture
def ra_alias(alias_factory, scep_ca):
    """Make an RA-mode alias on the SCEP CA (shared secret ``s3cret``, ENDUSER / EMPTY); settings override."""
    def make(name: str = "scep", **settings):
        defaults = {"operation_mode": "ra", "ra_default_ca": scep_ca, "ra_auth_password": "s3cret",
                    "ra_certificate_profile": "ENDUSER", "ra_end_entity_profile": "EMPTY"}
        return alias_factory(name, **{**defaults, **settings})
    return make


@pytest.fixture
def ra(ra_alias):
    """The default alias ``scep`` in RA mode (see :func:`ra_alias`)."""
    return ra_alias()


@pytest.fixture
def end_entity_factory(actor, builtin_profiles):
    from endentities.services import add_end_entity, ensure_empty_profile
    from endentities.validation import EndEntityInput

    ensure_empty_profile()

    def make(username: str, password: str = "foo123", ca=None, dn: str | None = None, **kw):
        data = EndEntityInput(username=username, password=password, subject_dn=dn or f"CN={username},O=Test,C=SE",
                              ca=ca, certificate_profile=kw.pop("certificate_profile", "ENDUSER"), **kw)
        return add_end_entity(actor, data)

    return make


@pytest.fixture
def scep(client):
    """A SCEP client on the default alias ``scep``."""
    return ScepTestClient(client)


def openssl_verify(openssl, cert: x509.Certificate, chain: list[x509.Certificate]) -> None:
    """``openssl verify`` of ``cert`` against ``chain`` (root last)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    root, *intermediates = list(reversed(chain))
    openssl.write("root.pem", root.public_bytes(Encoding.PEM))
    openssl.write("untrusted.pem", b"".join(c.public_bytes(Encoding.PEM) for c in intermediates) or b"")
    openssl.write("leaf.pem", cert.public_bytes(Encoding.PEM))
    args = ["verify", "-CAfile", "root.pem"]
    if intermediates:
        args += ["-untrusted", "untrusted.pem"]
    out = openssl(*args, "leaf.pem")
    assert out.stdout.strip().endswith("OK"), out.stdout
