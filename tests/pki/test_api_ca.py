"""EJBCA's v1 CA resource: status, CA list, chain download, getLatestCrl and createcrl."""

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pki.crl import create_crl
from pki.models import CRL, AuditEvent
from pki.services.cas import import_ca
from tests.conftest import pem
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    server_leaf,
    superadmin_client,
)

# EJBCA's field names (CaInfoRestResponse, CrlRestResponse, CreateCrlRestResponse, RestResourceStatusRestResponse)
CA_INFO_FIELDS = {"id", "name", "subject_dn", "issuer_dn", "expiration_date", "external"}
CRL_FIELDS = {"crl", "response_format"}
CREATE_CRL_FIELDS = {"issuer_dn", "latest_crl_version", "latest_delta_crl_version", "latest_partition_crl_versions",
                     "latest_partition_delta_crl_versions", "all_success"}
STATUS_FIELDS = {"status", "version", "revision"}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def leaf(sub_ca, actor, csr_factory):
    return server_leaf(sub_ca, actor, csr_factory)


def test_status(api):
    body = api.get(f"{V1}/ca/status").json()
    assert set(body) == STATUS_FIELDS
    assert (body["status"], body["version"]) == ("OK", "1.0") and body["revision"].startswith("pki")


def test_list_cas_has_exactly_ejbcas_fields(api, root_ca, sub_ca):
    r = api.get(f"{V1}/ca")
    assert r.status_code == 200
    assert set(r.json()) == {"certificate_authorities"}
    cas = {c["name"]: c for c in r.json()["certificate_authorities"]}
    assert set(cas) == {"TestRoot", "TestSub"}
    assert all(set(c) == CA_INFO_FIELDS for c in cas.values())
    assert cas["TestSub"] == {
        "id": sub_ca.pk, "name": "TestSub", "subject_dn": "CN=TestSub,O=Test,C=SE",
        "issuer_dn": "CN=TestRoot,O=Test,C=SE",
        "expiration_date": sub_ca.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "external": False,
    }
    assert cas["TestRoot"]["issuer_dn"] == cas["TestRoot"]["subject_dn"] == "CN=TestRoot,O=Test,C=SE"


def external_ca_pem(cn: str) -> bytes:
    """A self-signed CA certificate made outside this CA, to import for trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM)


def test_list_cas_external_only_on_request(api, root_ca, actor):
    import_ca(actor, "Imported", external_ca_pem("Imported CA"))
    names = {c["name"] for c in api.get(f"{V1}/ca").json()["certificate_authorities"]}
    assert "Imported" not in names and names == {"TestRoot"}
    names = {c["name"] for c in api.get(f"{V1}/ca?includeExternal=true").json()["certificate_authorities"]}
    assert "Imported" in names


def test_list_cas_query_count_does_not_grow_with_cas(api, ca_factory):
    ca_factory("One")
    api.get(f"{V1}/ca")  # the first call also checks the Basic password; later ones find it remembered
    with CaptureQueriesContext(connection) as one:
        assert api.get(f"{V1}/ca").status_code == 200
    for name in ("Two", "Three", "Four"):
        ca_factory(name)
    with CaptureQueriesContext(connection) as four:
        assert len(api.get(f"{V1}/ca").json()["certificate_authorities"]) == 4
    assert len(four) == len(one)


@pytest.mark.parametrize("ref", ["dn", "name", "id", "reordered-dn", "spaced-dn"])
def test_chain_download_by_any_reference(api, root_ca, sub_ca, ref):
    value = {
        "dn": dn(sub_ca), "name": "TestSub", "id": str(sub_ca.pk),
        "reordered-dn": quote("C=SE,O=Test,CN=TestSub", safe=""),
        "spaced-dn": quote("CN=TestSub, O=Test, C=SE", safe=""),
    }[ref]
    r = api.get(f"{V1}/ca/{value}/certificate/download", HTTP_ACCEPT="application/octet-stream")
    assert r.status_code == 200
    assert "TestSub.cacert.pem" in r["Content-Disposition"]
    chain = x509.load_pem_x509_certificates(r.content)
    assert chain == [sub_ca.certificate, root_ca.certificate]


def test_chain_download_of_a_dn_with_a_slash(api, ca_factory):
    ca = ca_factory("Slashed", subject_dn="CN=Slashed,O=A/B Corp,C=SE")
    r = api.get(f"{V1}/ca/{dn(ca)}/certificate/download")
    assert r.status_code == 200
    assert x509.load_pem_x509_certificates(r.content) == [ca.certificate]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/ca/{nobody}/certificate/download", 404, "does not exist"),
        ("/ca/NoSuchCA/getLatestCrl", 404, "does not exist"),
        ("/ca/{malformed}/getLatestCrl", 404, "does not exist"),
        ("/ca/99999999999999999999/certificate/download", 404, "does not exist"),
        ("/ca/{ca}/getLatestCrl?crlPartitionIndex=x", 400, "crlPartitionIndex"),
        ("/ca/{ca}/getLatestCrl?crlPartitionIndex=-1", 400, "crlPartitionIndex"),
    ],
)
def test_ca_errors_are_json(api, sub_ca, path, status, message):
    url = V1 + path.format(ca=dn(sub_ca), nobody=quote("CN=Nobody,O=Test", safe=""),
                           malformed=quote("CN=x,,=", safe=""))
    r = api.get(url)
    assert r.status_code == status, r.content
    assert r.json() == {"error_code": status, "error_message": r.json()["error_message"]}
    assert message in r.json()["error_message"]


def test_latest_crl_is_null_before_the_first_crl(api, sub_ca):
    CRL.objects.filter(ca=sub_ca).delete()  # the CA was created with its first CRL: take it away
    body = api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl").json()
    assert body == {"crl": None, "response_format": "DER"}


def test_create_crl_then_get_latest_verifies_with_openssl(api, sub_ca, leaf, openssl):
    assert api.put(f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke?reason=KEY_COMPROMISE").status_code == 200
    r = api.post(f"{V1}/ca/{dn(sub_ca)}/createcrl")
    assert r.status_code == 200
    assert set(r.json()) == CREATE_CRL_FIELDS
    assert r.json() == {"issuer_dn": sub_ca.subject_dn, "latest_crl_version": 2, "latest_delta_crl_version": 0,
                        "latest_partition_crl_versions": {}, "latest_partition_delta_crl_versions": {},
                        "all_success": True}
    body = api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl?deltaCrl=false&crlPartitionIndex=0").json()
    assert set(body) == CRL_FIELDS and body["response_format"] == "DER"
    der = base64.b64decode(body["crl"])
    crl = x509.load_der_x509_crl(der)
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_int)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    openssl.write("crl.der", der)
    openssl.write("ca.pem", pem(sub_ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in out.stdout + out.stderr
    assert AuditEvent.objects.filter(event_type="CRL_CREATION", actor="apiadmin").count() == 1


def test_delta_crl_builds_on_the_full_crl(api, sub_ca, leaf):
    """EJBCA's createcrl with deltacrl=true makes a full CRL and a delta CRL on it."""
    CRL.objects.filter(ca=sub_ca).delete()  # the CA was created with its first CRL: take it away
    body = api.post(f"{V1}/ca/{dn(sub_ca)}/createcrl?deltacrl=true").json()
    assert (body["latest_crl_version"], body["latest_delta_crl_version"]) == (1, 2)
    assert api.post(f"{V1}/ca/{dn(sub_ca)}/createcrl").json()["latest_crl_version"] == 3
    api.put(f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke?reason=SUPERSEDED")
    body = api.post(f"{V1}/ca/{dn(sub_ca)}/createcrl?deltacrl=true").json()
    assert (body["latest_crl_version"], body["latest_delta_crl_version"]) == (4, 5)
    delta = x509.load_der_x509_crl(base64.b64decode(
        api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl?deltaCrl=true").json()["crl"]))
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == 4
    assert delta.get_revoked_certificate_by_serial_number(leaf.serial_int) is not None
    full = x509.load_der_x509_crl(base64.b64decode(api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl").json()["crl"]))
    assert full.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 4
    assert full.get_revoked_certificate_by_serial_number(leaf.serial_int) is not None
    assert api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl?crlPartitionIndex=1").json()["crl"] is None


def test_create_crl_on_an_unknown_ca_is_400(api, sub_ca):
    r = api.post(f"{V1}/ca/{quote('CN=Nobody,O=Test', safe='')}/createcrl")
    assert r.status_code == 400 and "does not exist" in r.json()["error_message"]


def test_create_crl_for_external_ca_is_refused(api, actor):
    imported = import_ca(actor, "ExtCA", external_ca_pem("Ext CA"))
    r = api.post(f"{V1}/ca/{imported.pk}/createcrl")
    assert r.status_code == 503 and "external" in r.json()["error_message"]


def test_create_crl_needs_the_create_crl_rule(db, sub_ca):
    viewer = make_client("viewer", ["/ca_functionality/view_ca", f"/ca/{sub_ca.pk}"])
    r = viewer.post(f"{V1}/ca/{dn(sub_ca)}/createcrl")
    assert r.status_code == 403 and "/ca_functionality/create_crl" in r.json()["error_message"]


def test_latest_crl_returns_what_the_service_made(api, sub_ca, actor):
    made = create_crl(actor, sub_ca)
    body = api.get(f"{V1}/ca/TestSub/getLatestCrl").json()
    assert base64.b64decode(body["crl"]) == bytes(made.der)
