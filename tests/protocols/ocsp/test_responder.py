"""The OCSP responder through HTTP, checked by `openssl ocsp`: good, revoked and unknown answers, signed by
the CA or by its OCSP key binding, with and without nonce, GET and POST, several certificates at once;
malformed requests, CAs it does not serve and an offline CA token get OCSP's own error statuses."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
import requests
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp

from keybindings.models import InternalKeyBinding
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile
from pki.revocation import revoke

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = ["/ocsp", "/ejbca/publicweb/status/ocsp"]


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


@pytest.fixture
def leaf_factory(actor, csr_factory):
    def make(ca, cn: str, profile: str = "ENDUSER", key_spec: str = "P-256"):
        csr, key = csr_factory(f"CN={cn},O=Test,C=SE", key_spec=key_spec)
        row = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name=profile),
                                    csr=csr, username=cn)).row
        return row, key
    return make


@pytest.fixture
def ca(ca_factory):
    return ca_factory("OcspCA", key_spec="RSA2048")


@pytest.fixture
def ocsp_binding(ca, leaf_factory, soft_token_factory, actor):
    """An active OCSP key binding for ``ca``: a key on a soft token and an OCSPSIGNER certificate."""
    from cryptotokens import services as tokens

    token = soft_token_factory("OcspBindingToken")
    tokens.generate_key_pair(actor, token, "ocspKey", "P-256")
    public_key = tokens.get_private_key(token, "ocspKey").public_key()
    row = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="OCSPSIGNER"),
                                public_key=public_key, subject_dn="CN=OCSP Responder,O=Test,C=SE",
                                username="ocsp-responder")).row
    return InternalKeyBinding.objects.create(name="ocsp1", binding_type="OcspKeyBinding", crypto_token=token,
                                             key_pair_alias="ocspKey", certificate=row)


def openssl_ocsp(openssl, live_server, ca, certs, *, path="/ocsp", nonce=True, va=None):
    openssl.write("ca.pem", pem(ca.certificate))
    args = ["ocsp", "-issuer", "ca.pem", "-CAfile", "ca.pem", "-url", live_server.url + path, "-resp_text"]
    for i, cert in enumerate(certs):
        openssl.write(f"c{i}.pem", pem(cert))
        args += ["-cert", f"c{i}.pem"]
    if not nonce:
        args.append("-no_nonce")
    if va is not None:
        openssl.write("va.pem", pem(va))
        args += ["-VAfile", "va.pem"]
    return openssl(*args)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("nonce", [True, False])
def test_good_revoked_unknown_signed_by_the_ca(ca, leaf_factory, actor, openssl, live_server, path, nonce):
    good, _ = leaf_factory(ca, "good")
    revoked, _ = leaf_factory(ca, "revoked")
    revoke(actor, revoked, 1)
    stranger = ca_certificate_never_issued(ca)
    out = openssl_ocsp(openssl, live_server, ca, [good.certificate, revoked.certificate, stranger],
                       path=path, nonce=nonce)
    text = out.stdout + out.stderr
    assert "Response verify OK" in text
    assert "c0.pem: good" in text
    assert "c1.pem: revoked" in text and "Reason: keyCompromise" in text
    assert "c2.pem: unknown" in text
    assert ("WARNING: no nonce in response" in text) is False
    if nonce:
        assert "OCSP Nonce" in text


def ca_certificate_never_issued(ca) -> x509.Certificate:
    """A certificate that names ``ca`` as issuer with a serial the CA never issued (signed by another key)."""
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=nobody"))
            .issuer_name(ca.certificate.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))


def test_revocation_is_answered_at_once(ca, leaf_factory, actor, openssl, live_server):
    cert, _ = leaf_factory(ca, "soon-revoked")
    assert "c0.pem: good" in openssl_ocsp(openssl, live_server, ca, [cert.certificate]).stdout
    revoke(actor, cert, 6)  # on hold
    out = openssl_ocsp(openssl, live_server, ca, [cert.certificate]).stdout
    assert "c0.pem: revoked" in out and "certificateHold" in out


def test_signed_by_the_ocsp_binding(ca, leaf_factory, ocsp_binding, openssl, live_server):
    cert, _ = leaf_factory(ca, "via-binding")
    out = openssl_ocsp(openssl, live_server, ca, [cert.certificate])
    text = out.stdout + out.stderr
    assert "Response verify OK" in text and "c0.pem: good" in text
    # The delegated responder's certificate travels in the response, and it signed it.
    basic = x509_ocsp.load_der_ocsp_response(_post(live_server, _request(ca, cert.certificate)))
    assert basic.certificates == [ocsp_binding.certificate.certificate]
    assert basic.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
        ocsp_binding.certificate.certificate.public_key()).digest


def test_a_disabled_binding_hands_signing_back_to_the_ca(ca, leaf_factory, ocsp_binding, live_server):
    ocsp_binding.status = InternalKeyBinding.Status.DISABLED
    ocsp_binding.save()
    cert, _ = leaf_factory(ca, "ca-signed")
    response = x509_ocsp.load_der_ocsp_response(_post(live_server, _request(ca, cert.certificate)))
    assert response.certificates == []
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(ca.certificate.public_key()).digest


def _request(ca, cert: x509.Certificate, algorithm=hashes.SHA1(), nonce: bytes | None = None) -> bytes:
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, ca.certificate, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _post(live_server, data: bytes, path: str = "/ocsp") -> bytes:
    r = requests.post(live_server.url + path, data=data, headers={"Content-Type": "application/ocsp-request"},
                      timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/ocsp-response"
    return r.content


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_certid_hash_algorithms_and_get(ca, leaf_factory, live_server, algorithm):
    cert, _ = leaf_factory(ca, "hashes")
    data = _request(ca, cert.certificate, algorithm)
    r = requests.get(live_server.url + "/ocsp/" + quote(base64.b64encode(data).decode(), safe=""), timeout=10)
    assert r.status_code == 200
    response = x509_ocsp.load_der_ocsp_response(r.content)
    assert response.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    assert response.hash_algorithm.name == algorithm.name
    # A GET answer without nonce may be cached until nextUpdate.
    max_age = int(r.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert max_age == int((response.next_update_utc - response.this_update_utc).total_seconds())
    ca.certificate.public_key().verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                                       response.signature_hash_algorithm)


def test_nonce_is_echoed(ca, leaf_factory, live_server):
    cert, _ = leaf_factory(ca, "nonce")
    response = x509_ocsp.load_der_ocsp_response(_post(live_server, _request(ca, cert.certificate, nonce=b"n" * 16)))
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16


@pytest.mark.parametrize("body, status", [
    (b"", "malformed_request"),
    (b"garbage", "malformed_request"),
    (b"\x30\x03\x02\x01\x00", "malformed_request"),
])
def test_malformed_requests(ca, live_server, body, status):
    assert asn1_ocsp.OCSPResponse.load(_post(live_server, body))["response_status"].native == status


def test_wrong_content_type_and_bad_base64_are_malformed(ca, live_server):
    r = requests.post(live_server.url + "/ocsp", data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert asn1_ocsp.OCSPResponse.load(r.content)["response_status"].native == "malformed_request"
    r = requests.get(live_server.url + "/ocsp/%25%25%25", timeout=10)
    assert asn1_ocsp.OCSPResponse.load(r.content)["response_status"].native == "malformed_request"


def test_a_ca_it_does_not_serve_is_unauthorized(ca, ca_factory, leaf_factory, live_server):
    other = ca_factory("ForeignCA", key_spec="P-256")
    cert, _ = leaf_factory(other, "foreign")
    data = x509_ocsp.OCSPRequestBuilder().add_certificate(cert.certificate, cert.certificate, hashes.SHA1()) \
        .build().public_bytes(Encoding.DER)  # "issued by" a certificate that is no CA here
    assert asn1_ocsp.OCSPResponse.load(_post(live_server, data))["response_status"].native == "unauthorized"


def test_offline_token_is_try_later(ca_factory, soft_token_factory, leaf_factory, actor, live_server):
    from cryptotokens import services as tokens

    token = soft_token_factory("ManualToken", auto_activate=False)
    tokens.activate(actor, token, "foo123")
    manual = ca_factory("ManualCA", key_spec="P-256", token=token)
    cert, _ = leaf_factory(manual, "offline")
    tokens.deactivate(actor, token)
    response = asn1_ocsp.OCSPResponse.load(_post(live_server, _request(manual, cert.certificate)))
    assert response["response_status"].native == "try_later"
    tokens.activate(actor, token, "foo123")
    response = asn1_ocsp.OCSPResponse.load(_post(live_server, _request(manual, cert.certificate)))
    assert response["response_status"].native == "successful"


def test_several_certificates_in_one_request(ca, leaf_factory, actor, live_server):
    certs = [leaf_factory(ca, f"multi{i}")[0] for i in range(3)]
    revoke(actor, certs[1], 4)
    builder = x509_ocsp.OCSPRequestBuilder()
    der = builder.add_certificate(certs[0].certificate, ca.certificate, hashes.SHA1()).build() \
        .public_bytes(Encoding.DER)
    # cryptography builds one CertID per request; add the others with asn1crypto.
    request = asn1_ocsp.OCSPRequest.load(der)
    for row in certs[1:]:
        single = x509_ocsp.OCSPRequestBuilder().add_certificate(row.certificate, ca.certificate, hashes.SHA1()) \
            .build().public_bytes(Encoding.DER)
        request["tbs_request"]["request_list"].append(
            asn1_ocsp.OCSPRequest.load(single)["tbs_request"]["request_list"][0])
    response = asn1_ocsp.OCSPResponse.load(_post(live_server, request.dump()))
    answers = response.basic_ocsp_response["tbs_response_data"]["responses"]
    by_serial = {a["cert_id"]["serial_number"].native: a["cert_status"].name for a in answers}
    assert by_serial == {certs[0].serial_int: "good", certs[1].serial_int: "revoked", certs[2].serial_int: "good"}


def test_certificates_point_at_this_responder_by_default(db, settings, actor):
    """ManagementCA (init), the CA form and `ca init` put this installation's responder into the AIA."""
    from pki.bootstrap import run
    from pki.forms.cas import CACreateForm
    from pki.models import CertificateAuthority

    settings.PKI_BASE_URL = "https://pki.example.org/"
    run()
    assert CertificateAuthority.objects.get(name="ManagementCA").ocsp_url == "https://pki.example.org/ocsp"
    assert CACreateForm(actor=actor)["ocsp_url"].initial == "https://pki.example.org/ocsp"
