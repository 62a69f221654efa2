"""The VA's OCSP answer for a CA its CA pushed (RFC 6960 section 2.3): ``tryLater`` while the VA has no usable
OCSP key binding for that CA (none yet, disabled, or its certificate revoked by a push), a signed answer once it
has one, and ``unauthorized`` only for a CA the VA never heard of. The CA is a key held by the test: what a VA
knows of a CA is its certificate and what its CA pushes, through ``POST /peers/v1/push/status``."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .conftest import cert_headers

pytestmark = pytest.mark.django_db
NOW = dt.datetime.now(dt.UTC)


def _cert(subject: str, issuer: tuple[x509.Certificate, object] | None, key=None, *, ocsp_signer: bool = False
          ) -> tuple[x509.Certificate, object]:
    """A certificate and its key: a self-signed CA without ``issuer``, else an end entity (an OCSP signer)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer[0].subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(minutes=5)).not_valid_after(NOW + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if ocsp_signer:
        builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                  critical=True))
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def _record(ca: x509.Certificate, cert: x509.Certificate, status: str, at: dt.datetime) -> dict:
    return {"ca": ca.fingerprint(hashes.SHA256()).hex(), "serial": format(cert.serial_number, "x"), "status": status,
            "reason": 1 if status == "REVOKED" else None, "revoked_at": at.isoformat() if status == "REVOKED" else None,
            "changed_at": at.isoformat(),
            "der": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()}


def _status(client, cert: x509.Certificate, issuer: x509.Certificate) -> str:
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    r = client.post("/ocsp", data=der, content_type="application/ocsp-request")
    assert r.status_code == 200
    return asn1_ocsp.OCSPResponse.load(r.content)["response_status"].native


@pytest.fixture
def va(ra_node, client, peer_ca, make_cert, peer_role):
    """This process as a VA node, and ``push(body)`` as its CA's connector."""
    ra_node.PKI_NODE_ROLE = "va"
    link = make_cert(peer_ca)
    peer_role(peer_ca, link, {"/peer/incoming": True})

    def push(body: dict) -> None:
        r = client.post("/peers/v1/push/status", data=json.dumps(body), content_type="application/json",
                        **cert_headers(link))
        assert r.status_code == 200, r.content

    return push


@pytest.fixture
def pushed(va):
    """A CA pushed to the VA with one of its certificates: (CA certificate and key, the certificate)."""
    remote = _cert("Remote CA", None)
    device, _ = _cert("device", remote)
    va({"cas": [{"name": "Remote", "certificate": base64.b64encode(
        remote[0].public_bytes(serialization.Encoding.DER)).decode()}],
        "certificates": [_record(remote[0], device, "ACTIVE", NOW)]})
    return remote, device


def _va_binding(actor, soft_token_factory, remote, va) -> tuple:
    """The VA's OCSP key binding for ``remote``: its key on the VA, the certificate ``remote`` issued for it (pushed
    as the CA would, then imported into the binding); disabled, as a new binding is."""
    from cryptotokens import services as tokens
    from keybindings import services as kb

    binding = kb.create_binding(actor, name="va-ocsp", binding_type="OcspKeyBinding",
                                crypto_token=soft_token_factory("VaToken"), key_spec="P-256")
    key = tokens.get_private_key(binding.crypto_token, binding.key_pair_alias)
    signer, _ = _cert("va-ocsp", remote, key, ocsp_signer=True)
    va({"certificates": [_record(remote[0], signer, "ACTIVE", NOW)]})
    kb.import_certificate(actor, binding, signer.public_bytes(serialization.Encoding.PEM))
    return binding, signer


@pytest.mark.parametrize("binding_state", ["none", "disabled", "certificate revoked by a push"])
def test_a_pushed_ca_without_a_usable_binding_is_try_later(client, va, pushed, actor, soft_token_factory,
                                                           binding_state):
    from keybindings import services as kb

    remote, device = pushed
    if binding_state != "none":
        binding, signer = _va_binding(actor, soft_token_factory, remote, va)
        if binding_state == "certificate revoked by a push":
            kb.set_status(actor, binding, "ACTIVE")
            assert _status(client, device, remote[0]) == "successful"
            va({"certificates": [_record(remote[0], signer, "REVOKED", NOW + dt.timedelta(seconds=1))]})
    # The VA knows the CA and will answer for it: "try again later", not "I am not the responder for it".
    assert _status(client, device, remote[0]) == "try_later"


def test_the_answer_is_signed_once_the_binding_is_usable(client, va, pushed, actor, soft_token_factory):
    from keybindings import services as kb

    remote, device = pushed
    binding, signer = _va_binding(actor, soft_token_factory, remote, va)
    assert _status(client, device, remote[0]) == "try_later"
    kb.set_status(actor, binding, "ACTIVE")
    der = ocsp.OCSPRequestBuilder().add_certificate(device, remote[0], hashes.SHA256()).build().public_bytes(
        serialization.Encoding.DER)
    answer = ocsp.load_der_ocsp_response(client.post("/ocsp", data=der, content_type="application/ocsp-request")
                                         .content)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD and answer.certificates == [signer]


def test_a_ca_the_va_never_heard_of_is_unauthorized(client, va, pushed):
    stranger = _cert("Stranger CA", None)
    assert _status(client, _cert("device", stranger)[0], stranger[0]) == "unauthorized"
