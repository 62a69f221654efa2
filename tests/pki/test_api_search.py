"""EJBCA's v1 certificate search: each criterion, the result shape, limits and refusals."""

import base64

import pytest
from cryptography import x509
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pki.api import search as search_module
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    issue_cert,
    make_client,
    superadmin_client,
)

SEARCH = f"{V1}/certificate/search"
RESULT_FIELDS = {"certificate", "serial_number", "response_format", "certificate_profile", "end_entity_profile"}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def population(api, root_ca, sub_ca, actor, csr_factory):
    """Five certificates: the two CA certificates, alice (SERVER, active), bob (revoked), carol (on hold)."""
    certs = {
        "alice": issue_cert(sub_ca, actor, csr_factory, "CN=alice.example,O=Test", profile="SERVER",
                            username="alice", san=["alice.example"]),
        "bob": issue_cert(sub_ca, actor, csr_factory, "CN=Bob,O=Test", username="bob"),
        "carol": issue_cert(root_ca, actor, csr_factory, "CN=Carol,O=Test", username="carol"),
    }
    assert api.put(f"{V1}/certificate/{dn(sub_ca)}/{certs['bob'].serial}/revoke?reason=KEY_COMPROMISE"
                   "&date=2026-02-01T00:00:00Z").status_code == 200
    assert api.put(f"{V1}/certificate/TestRoot/{certs['carol'].serial}/revoke?reason=CERTIFICATE_HOLD"
                   ).status_code == 200
    return certs


def found(client, criteria, limit=50) -> dict[str, dict]:
    """The search result keyed by subject CN."""
    r = client.post(SEARCH, {"max_number_of_results": limit, "criteria": criteria}, format="json")
    assert r.status_code == 200, r.content
    out = {}
    for item in r.json()["certificates"]:
        der = base64.b64decode(base64.b64decode(item["certificate"]))
        cert = x509.load_der_x509_certificate(der)
        out[cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value] = item
    return out


ALL = {"TestRoot", "TestSub", "alice.example", "Bob", "Carol"}


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ([("QUERY", "alice", "LIKE")], {"alice.example"}),
        ([("QUERY", "ali", "LIKE")], {"alice.example"}),
        ([("QUERY", "ali", "EQUAL")], set()),
        ([("QUERY", "alice", "EQUAL")], {"alice.example"}),  # user name
        ([("QUERY", "CN=Bob,O=Test", "EQUAL")], {"Bob"}),  # subject DN
        ([("QUERY", "dNSName=alice.example", "EQUAL")], {"alice.example"}),  # alt name as stored
        ([("QUERY", "{bob_serial}", "EQUAL")], {"Bob"}),
        ([("QUERY", "{bob_serial_dec}", "EQUAL")], {"Bob"}),
        ([("query", "bob", "like")], {"Bob"}),  # property and operation in any case
        ([("SERIAL_NUMBER", "0x{bob_serial}", "EQUAL")], {"Bob"}),
        ([("USERNAME", "bob", "EQUAL")], {"Bob"}),
        ([("USERNAME", "ro", "LIKE")], {"Carol"}),
        ([("SUBJECT_DN", "CN=Bob,O=Test", "EQUAL")], {"Bob"}),
        ([("SUBJECT_DN", "o=test", "LIKE")], ALL),
        ([("SUBJECT_ALT_NAME", "alice.exa", "LIKE")], {"alice.example"}),
        ([("SUBJECT_ALT_NAME", "dnsname=ALICE.example", "EQUAL")], {"alice.example"}),
        ([("SUBJECT_ALT_NAME", "alice.example", "EQUAL")], set()),
        ([("FINGERPRINT", "{alice_fp}", "EQUAL")], {"alice.example"}),
        ([("CA", "TestRoot", "EQUAL")], {"TestRoot", "TestSub", "Carol"}),
        ([("CA", "TestSub", "EQUAL")], {"alice.example", "Bob"}),
        ([("CA", "CN=TestSub,O=Test,C=SE", "EQUAL")], {"alice.example", "Bob"}),
        ([("CA", "TestSub", "EQUAL"), ("CA", "TestRoot", "EQUAL")], ALL),
        ([("CERTIFICATE_PROFILE", "SERVER", "EQUAL")], {"alice.example"}),
        ([("CERTIFICATE_PROFILE", "ENDUSER", "EQUAL")], {"Bob", "Carol"}),
        ([("CERTIFICATE_PROFILE", "SERVER", "EQUAL"), ("CERTIFICATE_PROFILE", "ENDUSER", "EQUAL")],
         {"alice.example", "Bob", "Carol"}),
        ([("STATUS", "CERT_ACTIVE", "EQUAL")], {"TestRoot", "TestSub", "alice.example"}),
        ([("STATUS", "CERT_REVOKED", "EQUAL")], {"Bob", "Carol"}),
        ([("STATUS", "CERT_ACTIVE", "EQUAL"), ("STATUS", "CERT_REVOKED", "EQUAL")], ALL),
        ([("STATUS", "REVOCATION_REASON_KEYCOMPROMISE", "EQUAL")], {"Bob"}),
        ([("STATUS", "REVOCATION_REASON_CERTIFICATEHOLD", "EQUAL")], {"Carol"}),
        ([("STATUS", "REVOCATION_REASON_PRIVILEGESWITHDRAWN", "EQUAL")], set()),
        ([("STATUS", "CERT_REVOKED", "EQUAL"), ("STATUS", "REVOCATION_REASON_KEYCOMPROMISE", "EQUAL")], {"Bob"}),
        ([("ISSUED_DATE", "2000-01-01T00:00:00Z", "AFTER")], ALL),
        ([("ISSUED_DATE", "2000-01-01T00:00:00Z", "BEFORE")], set()),
        ([("EXPIRE_DATE", "2000-01-01T00:00:00Z", "BEFORE")], set()),
        ([("EXPIRE_DATE", "2099-01-01T00:00:00Z", "BEFORE")], ALL),
        ([("REVOCATION_DATE", "2026-01-01T00:00:00Z", "AFTER")], {"Bob", "Carol"}),
        ([("REVOCATION_DATE", "2026-03-01T00:00:00Z", "BEFORE")], {"Bob"}),
        ([("REVOCATION_DATE", "2026-01-01T00:00:00Z", "AFTER"),
          ("REVOCATION_DATE", "2026-03-01T00:00:00Z", "BEFORE")], {"Bob"}),
        ([("UPDATE_TIME", "2000-01-01T00:00:00", "AFTER")], ALL),  # no time zone: UTC
        ([("STATUS", "CERT_ACTIVE", "EQUAL"), ("CERTIFICATE_PROFILE", "SERVER", "EQUAL")], {"alice.example"}),
        ([("QUERY", "bob", "LIKE"), ("USERNAME", "alice", "EQUAL")], set()),
    ],
)
def test_search_by_each_criterion(api, population, criteria, expected):
    values = {"bob_serial": population["bob"].serial, "bob_serial_dec": str(population["bob"].serial_int),
              "alice_fp": population["alice"].fingerprint_sha256}
    body = [{"property": p, "value": v.format(**values), "operation": o} for p, v, o in criteria]
    assert set(found(api, body)) == expected


def test_result_shape_is_ejbcas(api, population):
    r = api.post(SEARCH, {"max_number_of_results": 10,
                          "criteria": [{"property": "QUERY", "value": "alice", "operation": "EQUAL"}]}, format="json")
    body = r.json()
    assert set(body) == {"certificates", "more_results"} and body["more_results"] is False
    (item,) = body["certificates"]
    assert set(item) == RESULT_FIELDS
    alice = population["alice"]
    assert item["serial_number"] == alice.serial.upper() and item["response_format"] == "DER"
    assert (item["certificate_profile"], item["end_entity_profile"]) == ("SERVER", None)
    # EJBCA's v1 search encodes the DER twice (its own system tests decode twice): so do we
    assert base64.b64decode(base64.b64decode(item["certificate"])) == bytes(alice.der)


def test_limit_and_more_results(api, population, monkeypatch):
    r = api.post(SEARCH, {"max_number_of_results": 2, "criteria": [{"property": "SUBJECT_DN", "value": "O=Test",
                                                                    "operation": "LIKE"}]}, format="json")
    assert len(r.json()["certificates"]) == 2 and r.json()["more_results"] is True
    monkeypatch.setattr(search_module, "MAX_RESULTS", 3)
    r = api.post(SEARCH, {"max_number_of_results": 400, "criteria": [{"property": "SUBJECT_DN", "value": "O=Test",
                                                                      "operation": "LIKE"}]}, format="json")
    assert len(r.json()["certificates"]) == 3 and r.json()["more_results"] is True
    r = api.post(SEARCH, {"criteria": [{"property": "USERNAME", "value": "bob"}]}, format="json")
    assert len(r.json()["certificates"]) == 1  # max_number_of_results and operation have defaults


def test_query_count_does_not_grow_with_results(api, sub_ca, actor, csr_factory):
    criteria = {"max_number_of_results": 50, "criteria": [{"property": "CA", "value": "TestSub"}]}
    issue_cert(sub_ca, actor, csr_factory, "CN=one,O=Test")
    api.post(SEARCH, criteria, format="json")  # the first call also checks the Basic password; later ones don't
    with CaptureQueriesContext(connection) as one:
        assert len(api.post(SEARCH, criteria, format="json").json()["certificates"]) == 1
    for n in range(4):
        issue_cert(sub_ca, actor, csr_factory, f"CN=more{n},O=Test")
    with CaptureQueriesContext(connection) as five:
        assert len(api.post(SEARCH, criteria, format="json").json()["certificates"]) == 5
    assert len(five) == len(one)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"criteria": [{"property": "COLOR", "value": "red"}]}, "'COLOR'"),
        ({"criteria": [{"property": "END_ENTITY_PROFILE", "value": "NoSuchEEP"}]}, "unknown end entity profile"),
        ({"criteria": [{"property": "EXTERNAL_ACCOUNT_BINDING_ID", "value": "x"}]}, "'EXTERNAL_ACCOUNT_BINDING_ID'"),
        ({"criteria": [{"property": "CA", "value": "TestSub", "operation": "LIKE"}]}, "should be EQUAL"),
        ({"criteria": [{"property": "QUERY", "value": "x", "operation": "BEFORE"}]}, "EQUAL or LIKE"),
        ({"criteria": [{"property": "EXPIRE_DATE", "value": "2030-01-01T00:00:00Z"}]}, "BEFORE or AFTER"),
        ({"criteria": [{"property": "EXPIRE_DATE", "value": "soon", "operation": "AFTER"}]}, "ISO 8601"),
        ({"criteria": [{"property": "ISSUED_DATE", "value": "2030-01-01T00:00:00Z", "operation": "AFTER"},
                       {"property": "ISSUED_DATE", "value": "2031-01-01T00:00:00Z", "operation": "AFTER"}]},
         "overlapping"),
        ({"criteria": [{"property": "STATUS", "value": "CERT_SLEEPY"}]}, "'CERT_SLEEPY'"),
        ({"criteria": [{"property": "STATUS", "value": "CERT_ACTIVE"}, {"property": "STATUS", "value": "cert_active"}]},
         "repetition"),
        ({"criteria": [{"property": "QUERY", "value": "a"}, {"property": "QUERY", "value": "b"}]}, "multiple 'QUERY'"),
        ({"criteria": [{"property": "CA", "value": "NoSuchCA"}]}, "unknown CA 'NoSuchCA'"),
        ({"criteria": [{"property": "CERTIFICATE_PROFILE", "value": "NOPE"}]}, "unknown certificate profile"),
        ({"criteria": [{"property": "SERIAL_NUMBER", "value": "xyz"}]}, "Invalid serial number"),
        ({"criteria": [{"property": "FINGERPRINT", "value": "abc"}]}, "SHA-256"),
        ({"criteria": [{"property": "QUERY", "value": ""}]}, "value"),
        ({"criteria": [{"property": "QUERY"}]}, "value"),
        ({"criteria": []}, "criteria"),
        ({}, "criteria"),
        ({"max_number_of_results": 0, "criteria": [{"property": "QUERY", "value": "x"}]}, "max_number_of_results"),
        ({"max_number_of_results": "many", "criteria": [{"property": "QUERY", "value": "x"}]},
         "max_number_of_results"),
        ({"criteria": "QUERY=x"}, "criteria"),
    ],
)
def test_bad_criteria_are_400_naming_the_problem(api, sub_ca, body, message):
    r = api.post(SEARCH, body, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error_code"] == 400 and message in r.json()["error_message"]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_malformed_bodies_are_400(api, raw):
    r = api.generic("POST", SEARCH, raw, content_type="application/json")
    assert r.status_code == 400 and set(r.json()) == {"error_code", "error_message"}


def test_a_ca_the_caller_may_not_see_is_unknown(db, root_ca, sub_ca):
    limited = make_client("subonly", ["/ca_functionality/view_certificate", f"/ca/{sub_ca.pk}"])
    r = limited.post(SEARCH, {"criteria": [{"property": "CA", "value": "TestRoot"}]}, format="json")
    assert r.status_code == 400 and "unknown CA" in r.json()["error_message"]
