"""EJBCA's v1 certificate/expire, ca/{issuer_dn}/importcrl, system/service/{name}/run and the SSH resource."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.models import CRL, AuditEvent
from pki.services.cas import import_ca
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    issue_cert,
    make_client,
    superadmin_client,
)

ERROR_FIELDS = {"error_code", "error_message"}


@pytest.fixture
def api(db):
    return superadmin_client()


# --- expire ------------------------------------------------------------------------------------------

def test_expire_pages_as_ejbca(api, sub_ca, actor, csr_factory):
    certs = [issue_cert(sub_ca, actor, csr_factory, f"CN=leaf{n},O=Test") for n in range(3)]
    r = api.get(f"{V1}/certificate/expire", {"days": 3650, "offset": 0, "maxNumberOfResults": 2})
    assert r.status_code == 200, r.content
    body = r.json()
    assert set(body) == {"pagination_rest_response_component", "certificates_rest_response"}
    page = body["pagination_rest_response_component"]
    listed = body["certificates_rest_response"]["certificates"]
    assert len(listed) == 2 and page["more_results"] is True and page["next_offset"] == 2
    assert set(listed[0]) == {"certificate", "serial_number", "response_format", "certificate_profile",
                              "end_entity_profile"}
    x509.load_der_x509_certificate(base64.b64decode(listed[0]["certificate"]))
    rest = api.get(f"{V1}/certificate/expire", {"days": 3650, "offset": 2, "maxNumberOfResults": 2}).json()
    serials = {c["serial_number"] for c in listed + rest["certificates_rest_response"]["certificates"]}
    assert {c.serial.upper() for c in certs} <= serials
    assert rest["pagination_rest_response_component"]["more_results"] is False
    # Nothing of these expires tomorrow (the CA certificates are not end entity certificates either way).
    none = api.get(f"{V1}/certificate/expire", {"days": 1}).json()
    assert none["certificates_rest_response"]["certificates"] == []


@pytest.mark.parametrize("params, field", [({}, "days"), ({"days": "x"}, "days"), ({"days": -1}, "days"),
                                           ({"days": 1, "maxNumberOfResults": 0}, "maxNumberOfResults"),
                                           ({"days": 1, "offset": -5}, "offset")])
def test_expire_bad_parameters(api, db, params, field):
    r = api.get(f"{V1}/certificate/expire", params)
    assert r.status_code == 400 and field in r.json()["error_message"]


def test_expire_only_lists_cas_the_caller_may_see(db, sub_ca, root_ca, actor, csr_factory):
    issue_cert(sub_ca, actor, csr_factory, "CN=hidden,O=Test")
    client = make_client("viewer", ["/ca_functionality/view_certificate", f"/ca/{root_ca.pk}"])
    listed = client.get(f"{V1}/certificate/expire", {"days": 3650}).json()
    assert all(c["serial_number"] != "" for c in listed["certificates_rest_response"]["certificates"])
    names = {x509.load_der_x509_certificate(base64.b64decode(c["certificate"])).subject.rfc4514_string()
             for c in listed["certificates_rest_response"]["certificates"]}
    assert "CN=hidden,O=Test" not in names


# --- importcrl ---------------------------------------------------------------------------------------

def _external_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Partner CA")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _crl(key, issuer: x509.Name, number: int, serials=()) -> bytes:
    now = datetime.now(UTC)
    b = x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(now)
    b = b.next_update(now + timedelta(days=1))
    b = b.add_extension(x509.CRLNumber(number), critical=False)
    for s in serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s).revocation_date(now).build())
    return b.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def _upload(api, ca_ref: str, data: bytes, **extra):
    f = io.BytesIO(data)
    f.name = "ca.crl"
    return api.post(f"{V1}/ca/{ca_ref}/importcrl", {"crlFile": f, **extra}, format="multipart")


@pytest.fixture
def partner(db, actor):
    key, cert = _external_ca()
    ca = import_ca(actor, "Partner", cert.public_bytes(Encoding.PEM))
    return key, cert, ca


def test_importcrl_stores_a_verified_crl(api, partner):
    key, cert, ca = partner
    r = _upload(api, dn(ca), _crl(key, cert.subject, 7, serials=[0x1234]))
    assert r.status_code == 200, r.content
    row = CRL.objects.get(ca=ca)
    assert row.crl_number == 7 and row.entries == 1 and not row.is_delta
    latest = api.get(f"{V1}/ca/{dn(ca)}/getLatestCrl").json()
    assert x509.load_der_x509_crl(base64.b64decode(latest["crl"])).extensions.get_extension_for_class(
        x509.CRLNumber).value.crl_number == 7
    assert AuditEvent.objects.filter(event_type="CRL_IMPORT", outcome="SUCCESS").exists()


def test_importcrl_refusals_store_nothing(api, partner):
    key, cert, ca = partner
    assert _upload(api, dn(ca), _crl(key, cert.subject, 5)).status_code == 200
    other_key = ec.generate_private_key(ec.SECP256R1())
    cases = [
        (_crl(other_key, cert.subject, 9), "signature"),                       # forged
        (_crl(key, cert.subject, 5), "not above"),                             # replayed / rolled back
        (_crl(key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "X")]), 9), "issuer"),
        (b"garbage", "Not a CRL"),
        (b"", "empty"),
    ]
    for data, message in cases:
        r = _upload(api, dn(ca), data)
        assert r.status_code == 400 and message in r.json()["error_message"], (message, r.content)
    assert list(CRL.objects.filter(ca=ca).values_list("crl_number", flat=True)) == [5]
    assert _upload(api, dn(ca), _crl(key, cert.subject, 9), crlPartitionIndex="2").status_code == 400


def test_importcrl_unknown_ca_and_rules(db, partner):
    key, cert, ca = partner
    crl = _crl(key, cert.subject, 3)
    assert _upload(superadmin_client(), "CN%3DNobody", crl).status_code == 404
    weak = make_client("weak", ["/ca_functionality/view_ca", f"/ca/{ca.pk}"])
    assert _upload(weak, dn(ca), crl).status_code == 403
    assert not CRL.objects.filter(ca=ca).exists()


def test_importcrl_takes_multipart_only(api, partner):
    _, _, ca = partner
    assert api.post(f"{V1}/ca/{dn(ca)}/importcrl", {"crlFile": "x"}, format="json").status_code == 415


# --- system services ---------------------------------------------------------------------------------

def test_run_crl_service(api, sub_ca):
    CRL.objects.filter(ca=sub_ca).delete()  # its first CRL is made at creation: make one due
    r = api.put(f"{V1}/system/service/regenerate-crls/run")
    assert r.status_code == 200, r.content
    assert CRL.objects.filter(ca=sub_ca).exists()
    assert AuditEvent.objects.filter(event_type="SERVICE_RUN", object_id="regenerate-crls").exists()


def test_service_refusals(db, api):
    r = api.put(f"{V1}/system/service/NoSuchService/run")
    assert r.status_code == 404 and "regenerate-crls" in r.json()["error_message"]
    r = make_client("ra", ["/ra_functionality/view_end_entity"]).put(f"{V1}/system/service/regenerate-crls/run")
    assert r.status_code == 403


# --- SSH -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/ssh/status", "/ssh/MyCA/pubkey", "/ssh"])
def test_ssh_is_an_honest_404(api, db, path):
    r = api.get(f"{V1}{path}")
    assert r.status_code == 404 and "no SSH CA" in r.json()["error_message"]
