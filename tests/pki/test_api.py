"""The REST API: EJBCA's paths and JSON names, errors as JSON with the right status, access rules."""

import base64
from urllib.parse import quote

import pytest
from cryptography import x509
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from pki.choices import MemberMatch
from pki.issuance import IssuanceRequest, issue
from pki.models import AccessRule, AuditEvent, Certificate, CertificateProfile, Role, RoleMember
from tests.conftest import pem

V1 = "/ejbca/ejbca-rest-api/v1"


def make_client(username: str, rules: list[str] | None) -> APIClient:
    get_user_model().objects.create_user(username, password="pw-" + username)
    if rules is not None:
        role = Role.objects.create(name=f"role-{username}")
        AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
        RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{username}:pw-{username}".encode()).decode())
    return client


@pytest.fixture
def api(db):
    return make_client("apiadmin", ["/"])


@pytest.fixture
def leaf(sub_ca, actor, csr_factory):
    csr, _ = csr_factory("CN=api-leaf,O=Test")
    return issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr, username="apiuser")).row


def dn(ca) -> str:
    return quote(ca.subject_dn, safe="")


def test_list_cas(api, root_ca, sub_ca):
    r = api.get(f"{V1}/ca")
    assert r.status_code == 200
    cas = {c["name"]: c for c in r.json()["certificate_authorities"]}
    assert set(cas) == {"TestRoot", "TestSub"}
    assert cas["TestSub"] == {
        "id": sub_ca.pk, "name": "TestSub", "subject_dn": "CN=TestSub,O=Test,C=SE",
        "issuer_dn": "CN=TestRoot,O=Test,C=SE",
        "expiration_date": sub_ca.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), "external": False,
    }


def test_ca_chain_download(api, root_ca, sub_ca):
    for ref in (dn(sub_ca), "TestSub", str(sub_ca.pk)):
        r = api.get(f"{V1}/ca/{ref}/certificate/download")
        assert r.status_code == 200
        chain = x509.load_pem_x509_certificates(r.content)
        assert [c.subject for c in chain] == [sub_ca.certificate.subject, root_ca.certificate.subject]


def test_create_and_get_latest_crl_verifies(api, sub_ca, leaf, actor, openssl):
    r = api.put(f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke?reason=KEY_COMPROMISE")
    assert r.status_code == 200
    r = api.post(f"{V1}/ca/{dn(sub_ca)}/createcrl")
    assert r.status_code == 200
    assert r.json() == {"issuer_dn": sub_ca.subject_dn, "latest_crl_version": 1, "latest_delta_crl_version": 0,
                        "latest_partition_crl_versions": {}, "latest_partition_delta_crl_versions": {},
                        "all_success": True}
    r = api.post(f"{V1}/ca/{dn(sub_ca)}/createcrl?deltacrl=true")
    assert r.json()["latest_delta_crl_version"] == 2
    body = api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl?deltaCrl=false").json()
    assert body["response_format"] == "DER"
    der = base64.b64decode(body["crl"])
    crl = x509.load_der_x509_crl(der)
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_int) is not None
    openssl.write("crl.der", der)
    openssl.write("ca.pem", pem(sub_ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in out.stdout + out.stderr
    delta = api.get(f"{V1}/ca/{dn(sub_ca)}/getLatestCrl?deltaCrl=true").json()
    assert x509.load_der_x509_crl(base64.b64decode(delta["crl"])).extensions.get_extension_for_class(
        x509.DeltaCRLIndicator).value.crl_number == 1


def test_revoke_and_revocation_status(api, sub_ca, leaf):
    base = f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial.upper()}"
    status = api.get(f"{base}/revocationstatus").json()
    assert status == {"issuer_dn": sub_ca.subject_dn, "serial_number": leaf.serial.upper(), "revocation_reason": None,
                      "revocation_date": None, "message": "Certificate is not revoked", "revoked": False}
    r = api.put(f"{base}/revoke?reason=PRIVILEGES_WITHDRAWN&date=2026-01-01T00:00:00Z")
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["revoked"], body["revocation_reason"], body["message"]) == (
        True, "PRIVILEGES_WITHDRAWN", "Successfully revoked")
    assert body["revocation_date"] == "2026-01-01T00:00:00Z"
    again = api.put(f"{base}/revoke?reason=KEY_COMPROMISE")
    assert again.status_code == 409 and again.json()["error_code"] == 409
    assert AuditEvent.objects.filter(event_type="CERT_REVOKED", actor="apiadmin").count() == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("put", "/certificate/{ca}/zz-not-hex/revoke", 400, "not a hexadecimal"),
        ("put", "/certificate/{ca}/abcdef/revoke", 404, "No certificate"),
        ("put", "/certificate/{ca}/{serial}/revoke?reason=BORED", 400, "Unknown revocation reason"),
        ("put", "/certificate/{ca}/{serial}/revoke?date=yesterday", 400, "ISO 8601"),
        ("put", "/certificate/{ca}/{serial}/revoke?date=2999-01-01T00:00:00Z", 400, "future"),
        ("get", "/certificate/CN%3DNobody/{serial}/revocationstatus", 404, "does not exist"),
        ("get", "/ca/NoSuchCA/certificate/download", 404, "does not exist"),
        ("get", "/ca/{ca}/getLatestCrl", 404, "no CRL"),
        ("post", "/ca/{ca}/createcrl?deltacrl=true", 404, "no full CRL"),
    ],
)
def test_errors_are_json(api, sub_ca, leaf, method, path, status, message):
    url = V1 + path.format(ca=dn(sub_ca), serial=leaf.serial)
    r = getattr(api, method)(url)
    assert r.status_code == status, r.content
    body = r.json()
    assert set(body) == {"error_code", "error_message"} and body["error_code"] == status
    assert message in body["error_message"]
    assert Certificate.objects.get(pk=leaf.pk).status == "ACTIVE"


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ([{"property": "QUERY", "value": "api-leaf", "operation": "LIKE"}], 1),
        ([{"property": "USERNAME", "value": "apiuser", "operation": "EQUAL"}], 1),
        ([{"property": "SERIAL_NUMBER", "value": "{serial}", "operation": "EQUAL"}], 1),
        ([{"property": "CA", "value": "TestSub", "operation": "EQUAL"}], 1),
        ([{"property": "CERTIFICATE_PROFILE", "value": "SERVER", "operation": "EQUAL"}], 1),
        ([{"property": "STATUS", "value": "CERT_ACTIVE", "operation": "EQUAL"}], 3),
        ([{"property": "STATUS", "value": "CERT_REVOKED", "operation": "EQUAL"}], 0),
        ([{"property": "EXPIRE_DATE", "value": "2099-01-01T00:00:00Z", "operation": "BEFORE"}], 3),
        ([{"property": "ISSUED_DATE", "value": "2099-01-01T00:00:00Z", "operation": "AFTER"}], 0),
        ([{"property": "QUERY", "value": "api-leaf"}, {"property": "USERNAME", "value": "other"}], 0),
    ],
)
def test_search(api, leaf, criteria, expected):
    for c in criteria:
        c["value"] = c["value"].format(serial=leaf.serial)
    r = api.post(f"{V1}/certificate/search", {"max_number_of_results": 10, "criteria": criteria}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert len(body["certificates"]) == expected and body["more_results"] is False
    if expected == 1:
        found = body["certificates"][0]
        assert found["serial_number"] == leaf.serial.upper() and found["response_format"] == "DER"
        assert x509.load_der_x509_certificate(base64.b64decode(found["certificate"])).serial_number == leaf.serial_int
        assert found["certificate_profile"] == "SERVER"


def test_search_limits_and_bad_criteria(api, leaf):
    r = api.post(f"{V1}/certificate/search", {"max_number_of_results": 1,
                                              "criteria": [{"property": "STATUS", "value": "CERT_ACTIVE"}]},
                 format="json")
    assert len(r.json()["certificates"]) == 1 and r.json()["more_results"] is True
    bad = api.post(f"{V1}/certificate/search", {"criteria": [{"property": "COLOR", "value": "x"}]}, format="json")
    assert bad.status_code == 400 and "COLOR" in bad.json()["error_message"]
    bad = api.post(f"{V1}/certificate/search", {"criteria": [{"property": "EXPIRE_DATE", "value": "2030-01-01Z",
                                                              "operation": "EQUAL"}]}, format="json")
    assert bad.status_code == 400 and "BEFORE or AFTER" in bad.json()["error_message"]
    malformed = api.generic("POST", f"{V1}/certificate/search", "{not json", content_type="application/json")
    assert malformed.status_code == 400 and "error_message" in malformed.json()


def test_native_certificate_read(api, leaf):
    r = api.get(f"/api/v1/certificates/{leaf.fingerprint_sha256}/")
    assert r.status_code == 200
    body = r.json()
    assert body["subject_dn"] == "CN=api-leaf,O=Test" and body["ca"] == "TestSub" and body["status"] == "ACTIVE"
    assert x509.load_pem_x509_certificate(body["pem"].encode()).serial_number == leaf.serial_int
    assert api.get("/api/v1/certificates/00ff/").status_code == 404


def test_authentication_and_access_rules(db, sub_ca, leaf):
    anonymous = APIClient()
    r = anonymous.get(f"{V1}/ca")
    assert r.status_code == 401 and r.json()["error_code"] == 401 and "WWW-Authenticate" in r
    norole = make_client("norole", None)
    r = norole.get(f"{V1}/ca")
    assert r.status_code == 403 and "/ca_functionality/view_ca" in r.json()["error_message"]
    # an auditor-like role that sees only one CA
    limited = make_client("limited", ["/ca_functionality/view_ca", "/ca_functionality/view_certificate",
                                      f"/ca/{sub_ca.pk}"])
    names = [c["name"] for c in limited.get(f"{V1}/ca").json()["certificate_authorities"]]
    assert names == ["TestSub"]
    r = limited.put(f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke")
    assert r.status_code == 403 and "/ra_functionality/revoke_end_entity" in r.json()["error_message"]
    r = limited.get(f"{V1}/ca/TestRoot/certificate/download")
    assert r.status_code == 403 and f"/ca/{sub_ca.signed_by_id}" in r.json()["error_message"]


def test_schema_and_docs(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for p in ("/ejbca/ejbca-rest-api/v1/ca", "/ejbca/ejbca-rest-api/v1/certificate/search",
              "/ejbca/ejbca-rest-api/v1/certificate/{issuer_dn}/{certificate_serial_number}/revoke",
              "/ejbca/ejbca-rest-api/v1/cryptotoken/{cryptotoken_name}/activate"):
        assert p in paths
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs", "https://"):
        assert cdn not in html
