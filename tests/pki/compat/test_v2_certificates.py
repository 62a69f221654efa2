"""EJBCA's v2 certificate resource: status, count, certificate profile info, the paginated and sorted search
(criteria of SearchCertificatesRestRequestV2, END_ENTITY_PROFILE included) and key recovery (not available)."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from cryptography import x509

from pki.models import AuditEvent, Certificate
from tests.endentities.entities_support import *  # noqa: F403  (ee_profile_factory, entity_factory)
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    issue_cert,
    make_client,
    superadmin_client,
)

V2 = "/ejbca/ejbca-rest-api/v2"
SEARCH = f"{V2}/certificate/search"
# EJBCA's CertificateRestResponseV2 (camelCase in its OpenAPI document, "udpateTime" as EJBCA spells it)
CERT_V2_FIELDS = {"fingerprint", "cAFingerprint", "certificateProfileId", "endEntityProfileId", "expireDate",
                  "issuerDN", "notBefore", "revocationDate", "revocationReason", "serialNumber", "status",
                  "subjectAltName", "subjectDN", "subjectKeyId", "tag", "type", "udpateTime", "username",
                  "base64Cert", "certificateRequest", "crlPartitionIndex"}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def world(api, root_ca, sub_ca, actor, csr_factory, ee_profile_factory, entity_factory):
    """Profiles Alpha and Beta; end entities alice (Alpha), bob (Alpha, revoked), mallory (Beta); their
    certificates from the sub-CA, and dave's (no end entity) from the root."""
    alpha = ee_profile_factory("Alpha", ca=root_ca)
    beta = ee_profile_factory("Beta", ca=root_ca)
    entity_factory("alice", profile=alpha)
    entity_factory("bob", profile=alpha)
    entity_factory("mallory", profile=beta)
    certs = {
        "alice": issue_cert(sub_ca, actor, csr_factory, "CN=alice,O=Leaf", profile="SERVER", username="alice",
                            san=["alice.example"]),
        "bob": issue_cert(sub_ca, actor, csr_factory, "CN=bob,O=Leaf", username="bob"),
        "mallory": issue_cert(sub_ca, actor, csr_factory, "CN=mallory,O=Leaf", username="mallory"),
        "dave": issue_cert(root_ca, actor, csr_factory, "CN=dave,O=Leaf", username="dave"),
    }
    assert api.put(f"{V1}/certificate/{dn(sub_ca)}/{certs['bob'].serial}/revoke?reason=KEY_COMPROMISE"
                   ).status_code == 200
    return {"alpha": alpha, "beta": beta, "certs": certs}


def _cn(item: dict) -> str:
    cert = x509.load_der_x509_certificate(base64.b64decode(item["base64Cert"]))
    return cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def search(client, criteria, page_size=50, current_page=1, sort=None, status=200) -> dict:
    body = {"pagination": {"page_size": page_size, "current_page": current_page},
            "criteria": [{"property": p, "value": v, "operation": o} for p, v, o in criteria]}
    if sort:
        body["sort"] = {"property": sort[0], "operation": sort[1]}
    r = client.post(SEARCH, body, format="json")
    assert r.status_code == status, r.content
    return r.json()


def names(client, criteria, **kw) -> list[str]:
    return [_cn(c) for c in search(client, criteria, **kw)["certificates"]]


def test_status_is_version_2(api):
    r = api.get(f"{V2}/certificate/status")
    assert r.status_code == 200 and r.json()["status"] == "OK" and r.json()["version"] == "2.0"


def test_count_all_and_active(api, world):
    total = Certificate.objects.count()
    assert api.get(f"{V2}/certificate/count").json() == {"count": total}
    assert api.get(f"{V2}/certificate/count?isActive=true").json() == {"count": total - 1}  # bob is revoked


def test_count_only_the_callers_cas(db, world, sub_ca):
    client = make_client("subonly", ["/ca_functionality/view_certificate", f"/ca/{sub_ca.pk}"])
    # alice, bob and mallory, not the root's certificates (root, sub-CA certificate, dave)
    assert client.get(f"{V2}/certificate/count").json() == {"count": 3}


def test_count_needs_view_certificate(db, world):
    assert make_client("nobody", []).get(f"{V2}/certificate/count").status_code == 403


def test_profile_info(api, root_ca, sub_ca):
    r = api.get(f"{V2}/certificate/profile/ENDUSER")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"available_key_algs", "available_bit_lenghts", "available_ecdsa_curves", "available_cas"}
    assert "RSA" in body["available_key_algs"] and 2048 in body["available_bit_lenghts"]
    assert "secp256r1" in body["available_ecdsa_curves"]
    assert {"TestRoot", "TestSub"} <= set(body["available_cas"])


@pytest.mark.parametrize(("client_rules", "name", "status"), [
    (["/"], "NoSuchProfile", 400),  # EJBCA: "unknown certificate profile", 400
    ([], "ENDUSER", 403),
])
def test_profile_info_refusals(db, builtin_profiles, client_rules, name, status):
    r = make_client("p", client_rules).get(f"{V2}/certificate/profile/{name}")
    assert r.status_code == status and set(r.json()) == {"error_code", "error_message"}


def test_profile_info_lists_only_the_callers_cas(db, root_ca, sub_ca):
    client = make_client("p", ["/ca_functionality/view_certificate_profiles", f"/ca/{sub_ca.pk}"])
    assert client.get(f"{V2}/certificate/profile/ENDUSER").json()["available_cas"] == ["TestSub"]


def test_search_result_shape(api, world, sub_ca):
    body = search(api, [("QUERY", "alice", "EQUAL")])
    assert set(body) == {"certificates", "pagination_summary"}
    assert body["pagination_summary"] == {"page_size": 50, "current_page": 1}
    (item,) = body["certificates"]
    assert set(item) == CERT_V2_FIELDS
    alice = world["certs"]["alice"]
    assert item["serialNumber"] == alice.serial.upper() and item["username"] == "alice"
    assert item["endEntityProfileId"] == world["alpha"].pk and item["status"] == 20 and item["type"] == 1
    assert item["revocationDate"] == -1 and item["revocationReason"] == -1
    assert item["expireDate"] == int(alice.not_after.timestamp() * 1000)
    assert item["certificateProfileId"] == alice.certificate_profile_id and item["issuerDN"] == sub_ca.subject_dn


def test_revoked_certificate_fields(api, world):
    (item,) = search(api, [("USERNAME", "bob", "EQUAL")])["certificates"]
    assert item["status"] == 40 and item["revocationReason"] == 1 and item["revocationDate"] > 0


@pytest.mark.parametrize(("criteria", "expected"), [
    ([("QUERY", "ali", "LIKE")], {"alice"}),
    ([("END_ENTITY_PROFILE", "Alpha", "EQUAL")], {"alice", "bob"}),
    ([("END_ENTITY_PROFILE", "Alpha", "EQUAL"), ("END_ENTITY_PROFILE", "Beta", "EQUAL")],
     {"alice", "bob", "mallory"}),
    ([("END_ENTITY_PROFILE", "Alpha", "EQUAL"), ("STATUS", "CERT_ACTIVE", "EQUAL")], {"alice"}),
    ([("CERTIFICATE_PROFILE", "SERVER", "EQUAL")], {"alice"}),
    ([("CA", "TestRoot", "EQUAL"), ("SUBJECT_DN", "O=Leaf", "LIKE")], {"dave"}),
    ([("STATUS", "CERT_REVOKED", "EQUAL")], {"bob"}),
    ([("STATUS", "REVOCATION_REASON_KEYCOMPROMISE", "EQUAL")], {"bob"}),
    ([("REVOCATION_DATE", "2000-01-01T00:00:00Z", "AFTER")], {"bob"}),
    ([("ISSUED_DATE", "2000-01-01T00:00:00Z", "BEFORE")], set()),
    ([("EXPIRE_DATE", "2000-01-01T00:00:00Z", "AFTER"), ("USERNAME", "mallory", "EQUAL")], {"mallory"}),
    ([("UPDATE_TIME", "2999-01-01T00:00:00Z", "AFTER")], set()),
    ([("SUBJECT_DN", "CN=dave,O=Leaf", "EQUAL")], {"dave"}),
])
def test_search_criteria(api, world, criteria, expected):
    assert set(names(api, criteria)) == expected


def test_the_profile_recorded_at_issuance_counts(api, world, sub_ca, actor, csr_factory):
    """A certificate issued under Alpha to an end entity that has moved to Beta since is Alpha's (as EJBCA records
    it); one issued before profiles were recorded falls back to its end entity's profile."""
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    csr, _ = csr_factory("CN=mallory-old,O=Leaf")
    issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"), csr=csr,
                          username="mallory", end_entity_profile_id=world["alpha"].pk))
    assert set(names(api, [("END_ENTITY_PROFILE", "Alpha", "EQUAL")])) == {"alice", "bob", "mallory-old"}
    Certificate.objects.filter(username="mallory").update(end_entity_profile_id=None)
    assert set(names(api, [("END_ENTITY_PROFILE", "Beta", "EQUAL")])) == {"mallory", "mallory-old"}


def test_pages_are_disjoint_and_sorted(api, world):
    criteria = [("SUBJECT_DN", "O=Leaf", "LIKE")]
    first = names(api, criteria, page_size=2, current_page=1, sort=("USERNAME", "ASC"))
    second = names(api, criteria, page_size=2, current_page=2, sort=("USERNAME", "ASC"))
    third = names(api, criteria, page_size=2, current_page=3, sort=("USERNAME", "ASC"))
    assert first + second == ["alice", "bob", "dave", "mallory"] and third == []
    assert names(api, criteria, sort=("USERNAME", "DESC")) == ["mallory", "dave", "bob", "alice"]


def test_count_only_page(api, world):
    body = search(api, [("SUBJECT_DN", "O=Leaf", "LIKE")], page_size=1, current_page=-1)
    assert body["certificates"] == []
    assert body["pagination_summary"] == {"page_size": 1, "current_page": -1, "total_certs": 4}


@pytest.mark.parametrize(("change", "needle"), [
    ({"pagination": {"page_size": 0, "current_page": 1}}, "page_size"),
    ({"pagination": {"page_size": 501, "current_page": 1}}, "page_size"),
    ({"pagination": {"page_size": 10, "current_page": 0}}, "current_page"),
    ({"pagination": {"page_size": 500, "current_page": 10_000}}, "deep"),
    ({"sort": {"property": "PASSWORD", "operation": "ASC"}}, "sort property"),
    ({"sort": {"property": "USERNAME", "operation": "UP"}}, "ASC or DESC"),
    ({"criteria": []}, "criteria"),
    ({"criteria": [{"property": "END_ENTITY_PROFILE", "value": "Nope", "operation": "EQUAL"}]}, "Nope"),
    ({"criteria": [{"property": "END_ENTITY_PROFILE", "value": "Alpha", "operation": "LIKE"}]}, "EQUAL"),
    ({"criteria": [{"property": "COLOR", "value": "x", "operation": "EQUAL"}]}, "COLOR"),
    ({"pagination": None}, "pagination"),
])
def test_bad_requests_are_precise_400s(api, world, tracebacks, change, needle):
    body = {"pagination": {"page_size": 10, "current_page": 1},
            "criteria": [{"property": "QUERY", "value": "a", "operation": "LIKE"}], **change}
    r = api.post(SEARCH, body, format="json")
    assert r.status_code == 400, r.content
    assert needle in r.json()["error_message"] and not tracebacks.records


def test_search_shows_only_what_the_role_may_see(db, world, sub_ca):
    """The attack: a role limited to the sub-CA and to end entities of profile Alpha asks for everything, for
    Beta's certificates, and for the root's; it gets Alpha's certificates of the sub-CA only, and the names it
    may not use answer exactly as names that do not exist."""
    alpha, beta = world["alpha"], world["beta"]
    eve = make_client("eve", ["/ca_functionality/view_certificate", f"/ca/{sub_ca.pk}",
                              f"/endentityprofilesrules/{alpha.pk}/view_end_entity"])
    everything = [("SUBJECT_DN", "O=Leaf", "LIKE")]
    assert sorted(names(eve, everything)) == ["alice", "bob"]
    assert sorted(names(eve, [("ISSUED_DATE", "2000-01-01T00:00:00Z", "AFTER")])) == ["alice", "bob"]
    assert search(eve, everything, current_page=-1)["pagination_summary"]["total_certs"] == 2
    assert names(eve, [("USERNAME", "mallory", "EQUAL")]) == []
    assert names(eve, [("QUERY", world["certs"]["mallory"].serial, "EQUAL")]) == []
    hidden = search(eve, [("END_ENTITY_PROFILE", "Beta", "EQUAL")], status=400)["error_message"]
    missing = search(eve, [("END_ENTITY_PROFILE", "Gamma", "EQUAL")], status=400)["error_message"]
    assert hidden.replace("Beta", "X") == missing.replace("Gamma", "X")
    assert "unknown CA" in search(eve, [("CA", "TestRoot", "EQUAL")], status=400)["error_message"]
    # sorting by a hidden column does not reveal hidden rows either
    assert sorted(names(eve, everything, sort=("END_ENTITY_PROFILE", "DESC"))) == ["alice", "bob"]
    assert beta.pk not in {c["endEntityProfileId"] for c in search(eve, everything)["certificates"]}


def test_search_needs_view_certificate_before_the_body(db, world):
    r = make_client("nobody", []).post(SEARCH, {"garbage": True}, format="json")
    assert r.status_code == 403 and "view_certificate" in r.json()["error_message"]


def test_search_query_count_does_not_grow_with_the_page(api, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    search(api, [("USERNAME", "alice", "EQUAL")])  # warm the credential cache
    counts = []
    for criteria in ([("USERNAME", "alice", "EQUAL")], [("SUBJECT_DN", "O=Leaf", "LIKE")]):
        with CaptureQueriesContext(connection) as queries:
            assert search(api, criteria)["certificates"]
        counts.append(len(queries))
    assert counts[0] == counts[1], counts  # one certificate or four: the same queries (no N+1)


def test_keyrecover_is_not_available(api, world, sub_ca):
    alice = world["certs"]["alice"]
    before = AuditEvent.objects.count()
    r = api.put(f"{V2}/certificate/{quote(sub_ca.subject_dn, safe='')}/{alice.serial}/keyrecover")
    assert r.status_code == 400 and "Key recovery is not available" in r.json()["error_message"]
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize(("rules", "serial", "status"), [
    (["/"], "abcdef0123", 400),  # no such certificate
    (["/"], "not-hex", 400),
    (["/ca_functionality/view_certificate"], "{alice}", 403),  # no key recovery rule
])
def test_keyrecover_refusals(db, world, sub_ca, rules, serial, status):
    serial = serial.format(alice=world["certs"]["alice"].serial)
    r = make_client("k", rules).put(f"{V2}/certificate/{quote(sub_ca.subject_dn, safe='')}/{serial}/keyrecover")
    assert r.status_code == status and set(r.json()) == {"error_code", "error_message"}
