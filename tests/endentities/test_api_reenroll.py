"""REST pkcs10enroll / enrollkeystore add or edit the end entity and issue every time (EJBCA's
createCertificateRest), for callers who may edit end entities; others stay bound to the one-time code."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from endentities.services.passwords import check_password
from pki.models import AuditEvent, Certificate
from pki.x509.dn import format_dn
from tests.pki.test_api_auth import (
    V1,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

from .entities_support import *  # noqa: F403  (the shared fixtures)

ENROLL = f"{V1}/certificate/pkcs10enroll"
KEYSTORE = f"{V1}/certificate/enrollkeystore"


@pytest.fixture
def api(db):
    return superadmin_client()


def _body(csr, username="device1", password="foo123", **kw) -> dict:
    return {"certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": username,
            "password": password, "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot", **kw}


def _cert(response) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(response.json()["certificate"]))


def test_same_username_enrolls_three_times(api, ee_profile, csr_factory):
    serials = set()
    for n in range(3):
        csr, _ = csr_factory(f"CN=Device {n},O=Test")
        r = api.post(ENROLL, _body(csr, password=f"pw-{n}-123"), format="json")
        assert r.status_code == 201, r.content
        cert = _cert(r)
        assert format_dn(cert.subject) == f"CN=Device {n},O=Test"  # the request's subject, as EJBCA
        serials.add(cert.serial_number)
    assert len(serials) == 3 and Certificate.objects.filter(username="device1").count() == 3
    ee = EndEntity.objects.get(username="device1")
    assert ee.status == EndEntityStatus.GENERATED and ee.subject_dn == "CN=Device 2,O=Test"
    assert check_password("pw-2-123", ee.password_hash)  # the request's password, as EJBCA's edit sets it
    edits = AuditEvent.objects.filter(event_type="RA_EDITENDENTITY", object_id="device1", details__status="NEW")
    assert edits.count() == 2  # the two re-enrollments edited it back to NEW (then issuance made it GENERATED)


def test_reenrollment_keeps_the_profile_rules(api, ee_profile, csr_factory):
    csr, _ = csr_factory("CN=Device,O=Test")
    assert api.post(ENROLL, _body(csr), format="json").status_code == 201
    before = EndEntity.objects.get(username="device1")
    # The profile requires a CN: the edit is refused, and nothing changes.
    bad, _ = csr_factory("O=Test,C=SE")
    r = api.post(ENROLL, _body(bad, password="other-456"), format="json")
    assert r.status_code == 400 and "COMMONNAME" in r.json()["error_message"]
    after = EndEntity.objects.get(username="device1")
    assert (after.status, after.subject_dn, after.password_hash) == (before.status, before.subject_dn,
                                                                     before.password_hash)
    assert Certificate.objects.filter(username="device1").count() == 1
    assert AuditEvent.objects.filter(event_type="RA_EDITENDENTITY", object_id="device1",
                                     outcome="FAILURE").exists()


@pytest.fixture
def enroller(db, root_ca):
    """A client allowed to issue on the CA but not to add or edit end entities: it enrolls with the code."""
    return make_client("enroller", ["/ca_functionality/create_certificate", f"/ca/{root_ca.pk}"])


def test_caller_without_edit_rights_is_bound_to_the_one_time_code(enroller, entity_factory, csr_factory):
    entity_factory("alice", subject_dn="CN=Alice,O=Test,C=SE")
    csr, _ = csr_factory("CN=whatever")
    r = enroller.post(ENROLL, _body(csr, username="alice"), format="json")
    assert r.status_code == 201, r.content
    r = enroller.post(ENROLL, _body(csr, username="alice"), format="json")
    assert r.status_code == 403 and "GENERATED" in r.json()["error_message"]  # the right code, spent
    assert Certificate.objects.filter(username="alice").count() == 1
    assert EndEntity.objects.get(username="alice").status == EndEntityStatus.GENERATED


def test_edit_right_on_another_profile_does_not_open_this_one(db, root_ca, ee_profile_factory, entity_factory,
                                                             csr_factory):
    """Attack: an RA operator who may edit end entities of profile A tries to take over one of profile B
    (its code unknown): the request falls back to the code, which is wrong, and changes nothing."""
    other = ee_profile_factory("OtherEEP", ca=root_ca)
    victim = entity_factory("victim", subject_dn="CN=Victim,O=Test,C=SE")
    rules = ["/ca_functionality/create_certificate", f"/ca/{root_ca.pk}", "/ra_functionality/edit_end_entity",
             "/ra_functionality/create_end_entity", f"/endentityprofilesrules/{other.pk}/edit_end_entity",
             f"/endentityprofilesrules/{other.pk}/create_end_entity"]
    operator = make_client("operator", rules)
    csr, _ = csr_factory("CN=Attacker,O=Test")
    r = operator.post(ENROLL, _body(csr, username="victim", password="guess-999", end_entity_profile_name="OtherEEP"),
                      format="json")
    assert r.status_code == 403
    victim.refresh_from_db()
    assert victim.subject_dn == "CN=Victim,O=Test,C=SE" and victim.end_entity_profile.name == "TestEEP"
    assert victim.status == EndEntityStatus.NEW and not Certificate.objects.filter(username="victim").exists()


def test_enrollkeystore_twice_for_an_editor(api, ee_profile_factory, root_ca, entity_factory):
    p12 = ee_profile_factory("P12s", ca=root_ca)
    entity_factory("keyuser", password="foo123", token_type="P12", profile=p12)
    for password in ("foo123", "bar456"):
        r = api.post(KEYSTORE, {"username": "keyuser", "password": password, "key_alg": "EC",
                                "key_spec": "secp256r1"}, format="json")
        assert r.status_code == 201, r.content
    assert Certificate.objects.filter(username="keyuser").count() == 2
    assert check_password("bar456", EndEntity.objects.get(username="keyuser").password_hash)


def test_enrollkeystore_without_edit_rights_is_one_time(enroller, ee_profile_factory, root_ca, entity_factory):
    p12 = ee_profile_factory("P12s", ca=root_ca)
    entity_factory("keyuser", password="foo123", token_type="P12", profile=p12)
    body = {"username": "keyuser", "password": "foo123", "key_alg": "EC", "key_spec": "secp256r1"}
    assert enroller.post(KEYSTORE, body, format="json").status_code == 201
    assert enroller.post(KEYSTORE, body, format="json").status_code == 403
    assert Certificate.objects.filter(username="keyuser").count() == 1
