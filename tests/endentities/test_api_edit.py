"""POST v1/endentity/edit, and the AddEndEntityRestRequest fields that are honoured or refused by name."""

from __future__ import annotations

import pytest

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from endentities.services.passwords import check_password
from pki.models import AuditEvent
from tests.pki.test_api_auth import (
    V1,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

from .entities_support import *  # noqa: F403  (the shared fixtures)


@pytest.fixture
def api(db):
    return superadmin_client()


def _body(**kw) -> dict:
    body = {"username": "JohnDoe", "password": "foo123", "subject_dn": "CN=John Doe,O=Test,C=SE",
            "subject_alt_name": "dNSName=john.example", "email": "john@example.com", "ca_name": "TestRoot",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP", "token": "USERGENERATED"}
    body.update(kw)
    return body


def test_edit_changes_the_end_entity(api, ee_profile, entity_factory):
    entity_factory("JohnDoe")
    r = api.post(f"{V1}/endentity/edit", _body(subject_dn="CN=John Q Doe,O=Test,C=SE", password="new-pass-9",
                                               status="GENERATED"), format="json")
    assert r.status_code == 200 and r.content == b"", r.content
    ee = EndEntity.objects.get(username="JohnDoe")
    assert ee.subject_dn == "CN=John Q Doe,O=Test,C=SE" and ee.status == EndEntityStatus.GENERATED
    assert check_password("new-pass-9", ee.password_hash)
    assert AuditEvent.objects.filter(event_type="RA_EDITENDENTITY", object_id="JohnDoe", actor="apiadmin").exists()


def test_edit_refusals(api, ee_profile, entity_factory):
    assert api.post(f"{V1}/endentity/edit", _body(username="Nobody"), format="json").status_code == 404
    entity_factory("JohnDoe")
    r = api.post(f"{V1}/endentity/edit", _body(subject_dn="O=Test"), format="json")
    assert r.status_code == 400 and "COMMONNAME" in r.json()["error_message"]
    assert EndEntity.objects.get(username="JohnDoe").subject_dn == "CN=JohnDoe,O=Test,C=SE"
    assert api.post(f"{V1}/endentity/edit", _body(username=""), format="json").status_code == 400


def test_edit_needs_the_edit_rule(db, ee_profile, entity_factory, root_ca):
    entity_factory("JohnDoe")
    creator = make_client("creator", ["/ra_functionality/create_end_entity", f"/ca/{root_ca.pk}",
                                      f"/endentityprofilesrules/{ee_profile.pk}/create_end_entity"])
    r = creator.post(f"{V1}/endentity/edit", _body(subject_dn="CN=Taken Over"), format="json")
    assert r.status_code == 403
    assert EndEntity.objects.get(username="JohnDoe").subject_dn == "CN=JohnDoe,O=Test,C=SE"


def test_duplicate_is_400(api, ee_profile, entity_factory):
    entity_factory("JohnDoe")
    r = api.post(f"{V1}/endentity", _body(), format="json")
    assert r.status_code == 400 and "already exists" in r.json()["error_message"]


@pytest.mark.parametrize("field, value", [
    ("account_binding_id", "eab-1"), ("custom_data", [{"name": "x", "value": "y"}]), ("card_number", "1234"),
    ("certificate_serial_number", "0x1234"),
])
def test_unused_fields_are_refused_by_name(api, ee_profile, field, value):
    r = api.post(f"{V1}/endentity", _body(**{field: value}), format="json")
    assert r.status_code == 400 and field in r.json()["error_message"]
    assert not EndEntity.objects.filter(username="JohnDoe").exists()


def test_validity_times_and_notification_are_honoured(api, ee_profile_factory, root_ca):
    ee_profile_factory("TimedEEP", ca=root_ca, validity_start_use=True, validity_start_modifiable=True,
                       validity_end_use=True, validity_end_modifiable=True, send_notification_use=True)
    r = api.post(f"{V1}/endentity", _body(end_entity_profile_name="TimedEEP", start_time="2030-01-01 00:00",
                                          end_time="30:0:0", send_notification=True), format="json")
    assert r.status_code == 200, r.content
    ee = EndEntity.objects.get(username="JohnDoe")
    assert ee.extended_information["validity_start"] == "2030-01-01 00:00"
    assert ee.extended_information["validity_end"] == "30:0:0" and ee.send_notification is True


def test_validity_times_refused_by_a_profile_that_does_not_use_them(api, ee_profile):
    r = api.post(f"{V1}/endentity", _body(start_time="2030-01-01 00:00"), format="json")
    assert r.status_code == 400 and r.json()["error_message"].startswith("start_time")
    assert not EndEntity.objects.filter(username="JohnDoe").exists()


def test_pkcs10enroll_refuses_account_binding(api, ee_profile, csr_factory):
    from cryptography.hazmat.primitives.serialization import Encoding

    csr, _ = csr_factory("CN=dev,O=Test")
    r = api.post(f"{V1}/certificate/pkcs10enroll", {
        "certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": "dev", "password": "foo123",
        "account_binding_id": "eab-1"}, format="json")
    assert r.status_code == 400 and "account_binding_id" in r.json()["error_message"]


def test_alt_names_come_back_in_ejbca_spelling(api, ee_profile):
    assert api.post(f"{V1}/endentity", _body(subject_alt_name="DNSNAME=john.example, RFC822NAME=j@example.com"),
                    format="json").status_code == 200
    body = {"max_number_of_results": 5, "criteria": [{"property": "QUERY", "value": "JohnDoe", "operation": "EQUAL"}]}
    found = api.post(f"{V1}/endentity/search", body, format="json").json()["end_entities"]
    assert found[0]["subject_alt_name"] == "dNSName=john.example, rfc822name=j@example.com"


def test_search_pages_are_1_based(api, entity_factory):
    for name in ("a1", "a2", "a3"):
        entity_factory(name)
    crit = [{"property": "STATUS", "value": "NEW", "operation": "EQUAL"}]
    pages = [api.post(f"{V1}/endentity/search", {"max_number_of_results": 2, "current_page": p, "criteria": crit},
                      format="json").json() for p in (1, 2)]
    assert [e["username"] for e in pages[0]["end_entities"]] == ["a1", "a2"] and pages[0]["more_results"] is True
    assert [e["username"] for e in pages[1]["end_entities"]] == ["a3"] and pages[1]["more_results"] is False
    default = api.post(f"{V1}/endentity/search", {"max_number_of_results": 2, "criteria": crit}, format="json").json()
    assert default == pages[0]
