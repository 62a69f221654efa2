"""EJBCA's REST end entity resource and pkcs10enroll / enrollkeystore, with EJBCA's JSON names."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from endentities.choices import EndEntityStatus, TokenType
from endentities.models import EndEntity
from endentities.services.passwords import check_password
from pki.choices import CertificateStatus
from pki.models import AuditEvent, Certificate
from pki.x509.dn import format_dn
from tests.pki.test_api_auth import (
    V1,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

from .entities_support import *  # noqa: F403  (the shared fixtures)

ERROR_FIELDS = {"error_code", "error_message"}
CERTIFICATE_RESPONSE = {"certificate", "serial_number", "response_format", "certificate_chain",
                        "certificate_profile", "end_entity_profile"}


@pytest.fixture
def api(db):
    return superadmin_client()


def _pem(csr) -> str:
    return csr.public_bytes(Encoding.PEM).decode()


def _add_body(**kw) -> dict:
    body = {"username": "JohnDoe", "password": "foo123", "subject_dn": "CN=John Doe,O=Test,C=SE",
            "subject_alt_name": "dNSName=john.example", "email": "john@example.com", "ca_name": "TestRoot",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP", "token": "USERGENERATED"}
    body.update(kw)
    return body


def test_status(api):
    r = api.get(f"{V1}/endentity/status")
    assert r.status_code == 200 and r.json()["status"] == "OK"


def test_add(api, ee_profile):
    r = api.post(f"{V1}/endentity", _add_body(), format="json")
    assert r.status_code == 200, r.content
    ee = EndEntity.objects.get(username="JohnDoe")
    assert ee.subject_dn == "CN=John Doe,O=Test,C=SE" and ee.email == "john@example.com"
    assert ee.status == EndEntityStatus.NEW and check_password("foo123", ee.password_hash)
    assert AuditEvent.objects.get(event_type="RA_ADDENDENTITY", object_id="JohnDoe").actor == "apiadmin"


@pytest.mark.parametrize("change, status, field_in_message", [
    ({"username": "JohnDoe"}, 400, "already exists"),  # EJBCA's EndEntityExistsException is a 400
    ({"subject_dn": "O=Test,C=SE", "username": "x1"}, 400, "COMMONNAME"),
    ({"token": "FLOPPY", "username": "x2"}, 400, "token"),
    ({"ca_name": "NoSuchCA", "username": "x3"}, 400, "NoSuchCA"),
    ({"end_entity_profile_name": "NoSuchProfile", "username": "x4"}, 404, "NoSuchProfile"),
    ({"status": "BOGUS", "username": "x5"}, 400, "status"),
])
def test_add_refusals(api, ee_profile, entity_factory, change, status, field_in_message):
    entity_factory("JohnDoe")
    r = api.post(f"{V1}/endentity", _add_body(**change), format="json")
    assert r.status_code in (status, 404 if status == 400 else status), r.content
    assert set(r.json()) == ERROR_FIELDS and field_in_message in r.json()["error_message"]
    assert EndEntity.objects.count() == 1


def test_add_needs_rules(db, ee_profile, root_ca):
    client = make_client("weak", ["/ra_functionality/create_end_entity", f"/ca/{root_ca.pk}"])
    r = client.post(f"{V1}/endentity", _add_body(), format="json")
    assert r.status_code == 403
    assert f"/endentityprofilesrules/{ee_profile.pk}/create_end_entity" in r.json()["error_message"]
    assert not EndEntity.objects.exists()


def test_search(api, entity_factory):
    entity_factory("alice")
    entity_factory("bob", status="GENERATED", subject_alt_name="DNSNAME=bob.example")
    entity_factory("carol")
    body = {"max_number_of_results": 10, "criteria": [{"property": "STATUS", "value": "NEW", "operation": "EQUAL"}]}
    r = api.post(f"{V1}/endentity/search", body, format="json")
    assert r.status_code == 200
    assert [e["username"] for e in r.json()["end_entities"]] == ["alice", "carol"]
    assert r.json()["more_results"] is False
    first = r.json()["end_entities"][0]
    assert set(first) == {"username", "dn", "subject_alt_name", "email", "status", "token", "extension_data"}
    assert first["status"] == "NEW" and first["token"] == "USERGENERATED" and first["dn"] == "CN=alice,O=Test,C=SE"

    body = {"max_number_of_results": 1, "criteria": [{"property": "STATUS", "value": "NEW", "operation": "EQUAL"}]}
    r = api.post(f"{V1}/endentity/search", body, format="json").json()
    assert [e["username"] for e in r["end_entities"]] == ["alice"] and r["more_results"] is True
    body = {"max_number_of_results": 5, "criteria": [{"property": "QUERY", "value": "bob.ex", "operation": "LIKE"},
                                                     {"property": "END_ENTITY_PROFILE", "value": "TestEEP",
                                                      "operation": "EQUAL"}]}
    r = api.post(f"{V1}/endentity/search", body, format="json").json()
    assert [e["username"] for e in r["end_entities"]] == ["bob"] and r["more_results"] is False
    body = {"max_number_of_results": 5, "criteria": [{"property": "QUERY", "value": "bob", "operation": "EQUAL"},
                                                     {"property": "CA", "value": "TestRoot", "operation": "EQUAL"}]}
    assert [e["username"] for e in api.post(f"{V1}/endentity/search", body, format="json").json()["end_entities"]
            ] == ["bob"]


@pytest.mark.parametrize("criteria, message", [
    ([{"property": "CA", "value": "NoSuchCA", "operation": "EQUAL"}], "unknown CA"),
    ([{"property": "END_ENTITY_PROFILE", "value": "Nope", "operation": "EQUAL"}], "unknown end entity profile"),
    ([{"property": "CERTIFICATE_PROFILE", "value": "Nope", "operation": "EQUAL"}], "unknown certificate profile"),
    ([{"property": "STATUS", "value": "SLEEPING", "operation": "EQUAL"}], "unknown status"),
    ([{"property": "COLOR", "value": "red", "operation": "EQUAL"}], "property"),
    ([], "criteria"),
])
def test_search_refusals(api, criteria, message):
    r = api.post(f"{V1}/endentity/search", {"max_number_of_results": 5, "criteria": criteria}, format="json")
    assert r.status_code == 400 and message in r.json()["error_message"]


def test_setstatus(api, entity_factory):
    entity_factory("alice", status="GENERATED")
    r = api.post(f"{V1}/endentity/alice/setstatus", {"status": "NEW", "password": "newpw123", "token": "P12"},
                 format="json")
    assert r.status_code == 200, r.content
    ee = EndEntity.objects.get(username="alice")
    assert (ee.status, ee.token_type, ee.request_counter) == (EndEntityStatus.NEW, TokenType.P12, 1)
    assert check_password("newpw123", ee.password_hash)
    r = api.post(f"{V1}/endentity/nobody/setstatus", {"status": "NEW"}, format="json")
    assert r.status_code == 404
    r = api.post(f"{V1}/endentity/alice/setstatus", {"status": "ASLEEP"}, format="json")
    assert r.status_code == 400 and EndEntity.objects.get(username="alice").status == EndEntityStatus.NEW


def test_revoke_and_delete(api, entity_factory, csr_factory):
    from endentities.services import enroll

    entity_factory("alice")
    csr, _ = csr_factory("CN=alice")
    issued = enroll("alice", "foo123", csr=csr, interface="rest")
    r = api.put(f"{V1}/endentity/alice/revoke", {"reason_code": 1}, format="json")
    assert r.status_code == 200
    assert Certificate.objects.get(pk=issued.row.pk).status == CertificateStatus.REVOKED
    assert EndEntity.objects.get(username="alice").status == EndEntityStatus.REVOKED
    assert api.put(f"{V1}/endentity/alice/revoke", {"reason_code": 1}, format="json").status_code == 409
    assert api.put(f"{V1}/endentity/alice/revoke", {"reason_code": 7}, format="json").status_code == 400
    assert api.delete(f"{V1}/endentity/alice").status_code == 200
    assert not EndEntity.objects.filter(username="alice").exists()
    assert api.delete(f"{V1}/endentity/alice").status_code == 200  # EJBCA: success when absent
    entity_factory("bob")
    assert api.put(f"{V1}/endentity/bob/revoke", {"reason_code": 0, "delete": True}, format="json").status_code == 200
    assert not EndEntity.objects.filter(username="bob").exists()


def test_pkcs10enroll_existing_end_entity(api, entity_factory, csr_factory, root_ca):
    entity_factory("alice", subject_dn="CN=Alice,O=Test,C=SE")
    csr, _ = csr_factory("CN=whatever")
    body = {"certificate_request": _pem(csr), "username": "alice", "password": "foo123", "include_chain": True,
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot"}
    r = api.post(f"{V1}/certificate/pkcs10enroll", body, format="json")
    assert r.status_code == 201, r.content
    data = r.json()
    assert set(data) == CERTIFICATE_RESPONSE and data["response_format"] == "DER"
    cert = x509.load_der_x509_certificate(base64.b64decode(data["certificate"]))
    # An administrator who may edit it enrolls "using the CSR subject", as EJBCA's pkcs10enroll
    assert format_dn(cert.subject) == "CN=whatever"
    assert EndEntity.objects.get(username="alice").subject_dn == "CN=whatever"
    assert data["serial_number"] == format(cert.serial_number, "X")
    assert [base64.b64decode(c) for c in data["certificate_chain"]] == [root_ca.certificate.public_bytes(Encoding.DER)]
    assert data["end_entity_profile"] == "TestEEP" and data["certificate_profile"] == "ENDUSER"
    # An administrator who may edit the end entity enrolls it again, as EJBCA (tests/endentities/test_api_reenroll.py)
    r = api.post(f"{V1}/certificate/pkcs10enroll", body, format="json")
    assert r.status_code == 201, r.content


def test_pkcs10enroll_adds_new_end_entity(api, ee_profile, csr_factory):
    csr, _ = csr_factory("CN=New Device,O=Test", san=["device.example"])
    body = {"certificate_request": _pem(csr), "username": "device1", "password": "foo123",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot", "response_format": "PEM"}
    r = api.post(f"{V1}/certificate/pkcs10enroll", body, format="json")
    assert r.status_code == 201, r.content
    cert = x509.load_pem_x509_certificate(r.json()["certificate"].encode())
    assert "certificate_chain" not in r.json()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["device.example"]
    ee = EndEntity.objects.get(username="device1")
    assert ee.status == EndEntityStatus.GENERATED and ee.subject_dn == "CN=New Device,O=Test"


@pytest.mark.parametrize("change, status", [
    ({"certificate_request": "garbage"}, 400),
    ({"end_entity_profile_name": "Nope"}, 404),
    ({"certificate_authority_name": "NoSuchCA"}, 400),
    ({"password": ""}, 400),
    ({"response_format": "XML"}, 400),
])
def test_pkcs10enroll_refusals_leave_nothing(api, ee_profile, csr_factory, change, status):
    csr, _ = csr_factory("CN=New Device,O=Test")
    body = {"certificate_request": _pem(csr), "username": "device1", "password": "foo123",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot", **change}
    r = api.post(f"{V1}/certificate/pkcs10enroll", body, format="json")
    assert r.status_code in (status, 404), r.content
    assert set(r.json()) == ERROR_FIELDS
    assert not EndEntity.objects.exists() and not Certificate.objects.filter(username="device1").exists()


def test_enrollkeystore_p12(api, ee_profile_factory, root_ca, entity_factory):
    p12_profile = ee_profile_factory("P12s", ca=root_ca)
    entity_factory("keyuser", password="foo123", token_type="P12", profile=p12_profile)
    r = api.post(f"{V1}/certificate/enrollkeystore",
                 {"username": "keyuser", "password": "foo123", "key_alg": "EC", "key_spec": "secp256r1"}, format="json")
    assert r.status_code == 201, r.content
    data = r.json()
    assert data["response_format"] == "PKCS12"
    key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(data["certificate"]), b"foo123")
    assert cert.public_key() == key.public_key() and format(cert.serial_number, "X") == data["serial_number"]
    assert EndEntity.objects.get(username="keyuser").status == EndEntityStatus.GENERATED
    r = api.post(f"{V1}/certificate/enrollkeystore", {"username": "keyuser", "password": "foo123"}, format="json")
    assert r.status_code == 201  # re-enrolled by an administrator who may edit it (test_api_reenroll.py)


def test_enrollkeystore_refuses_user_generated(api, entity_factory):
    entity_factory("csruser", password="foo123")
    r = api.post(f"{V1}/certificate/enrollkeystore", {"username": "csruser", "password": "foo123"}, format="json")
    assert r.status_code == 400 and "USERGENERATED" in r.json()["error_message"]
    assert EndEntity.objects.get(username="csruser").status == EndEntityStatus.NEW


def test_unauthenticated(db):
    from rest_framework.test import APIClient

    assert APIClient().post(f"{V1}/endentity", _add_body(), format="json").status_code == 401


@pytest.mark.parametrize("path, method", [
    ("/endentity", "post"), ("/endentity/search", "post"), ("/endentity/{endentity_name}/setstatus", "post"),
    ("/endentity/{endentity_name}/revoke", "put"), ("/endentity/{endentity_name}", "delete"),
    ("/certificate/pkcs10enroll", "post"), ("/certificate/enrollkeystore", "post"),
])
def test_schema_lists_endpoints(api, path, method):
    schema = api.get("/api/schema/?format=json").json()
    operation = schema["paths"][f"{V1}{path}"][method]
    assert "400" in operation["responses"] or "401" in operation["responses"]


def test_schema_uses_ejbca_field_names(api):
    components = api.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert set(components["Pkcs10Enroll"]["properties"]) >= {
        "certificate_request", "certificate_profile_name", "end_entity_profile_name", "certificate_authority_name",
        "username", "password", "include_chain", "email", "response_format"}
    assert set(components["AddEndEntity"]["properties"]) >= {
        "username", "password", "subject_dn", "subject_alt_name", "email", "extension_data", "ca_name",
        "certificate_profile_name", "end_entity_profile_name", "token", "account_binding_id", "key_recoverable"}
    assert set(components["EnrollKeystore"]["properties"]) == {"username", "password", "key_alg", "key_spec"}
