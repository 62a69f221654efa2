"""Certificates record the end entity profile they were issued under (search END_ENTITY_PROFILE, the
end_entity_profile of responses), and a revocation's invalidity_date is stored and returned."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from pki.models import Certificate
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

from .entities_support import *  # noqa: F403  (the shared fixtures)


@pytest.fixture
def api(db):
    return superadmin_client()


def _enroll(api, csr_factory, username: str, profile: str) -> dict:
    csr, _ = csr_factory(f"CN={username},O=Test")
    r = api.post(f"{V1}/certificate/pkcs10enroll", {
        "certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": username, "password": "foo123",
        "certificate_profile_name": "ENDUSER", "end_entity_profile_name": profile,
        "certificate_authority_name": "TestRoot"}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def test_certificates_record_their_end_entity_profile(api, ee_profile, ee_profile_factory, root_ca, csr_factory):
    other = ee_profile_factory("OtherEEP", ca=root_ca)
    _enroll(api, csr_factory, "alpha", "TestEEP")
    _enroll(api, csr_factory, "beta", "OtherEEP")
    assert Certificate.objects.get(username="beta").end_entity_profile_id == other.pk
    body = {"max_number_of_results": 10, "criteria": [{"property": "END_ENTITY_PROFILE", "value": "OtherEEP"}]}
    found = api.post(f"{V1}/certificate/search", body, format="json").json()["certificates"]
    assert [c["end_entity_profile"] for c in found] == ["OtherEEP"]
    assert found[0]["serial_number"] == Certificate.objects.get(username="beta").serial.upper()
    expiring = api.get(f"{V1}/certificate/expire", {"days": 3650}).json()["certificates_rest_response"]
    assert {c["end_entity_profile"] for c in expiring["certificates"]} == {"TestEEP", "OtherEEP"}


def test_end_entity_profile_criterion_respects_profile_rules(db, ee_profile, root_ca, api, csr_factory):
    _enroll(api, csr_factory, "alpha", "TestEEP")
    viewer = make_client("viewer", ["/ca_functionality/view_certificate", f"/ca/{root_ca.pk}"])
    body = {"max_number_of_results": 10, "criteria": [{"property": "END_ENTITY_PROFILE", "value": "TestEEP"}]}
    r = viewer.post(f"{V1}/certificate/search", body, format="json")
    assert r.status_code == 400 and "unknown end entity profile" in r.json()["error_message"]


def test_invalidity_date_is_stored_and_returned(api, ee_profile, root_ca, csr_factory):
    cert = _enroll(api, csr_factory, "alpha", "TestEEP")
    base = f"{V1}/certificate/{dn(root_ca)}/{cert['serial_number']}"
    r = api.put(f"{base}/revoke?reason=KEY_COMPROMISE&invalidity_date=2024-05-01T10:00:00Z")
    assert r.status_code == 200, r.content
    assert r.json()["invalidity_date"] == "2024-05-01T10:00:00Z"
    status = api.get(f"{base}/revocationstatus").json()
    assert status["invalidity_date"] == "2024-05-01T10:00:00Z" and status["revoked"] is True
    row = Certificate.objects.get(username="alpha")
    assert row.invalidity_date.isoformat().startswith("2024-05-01T10:00:00")


def test_invalidity_date_in_the_future_is_refused(api, ee_profile, root_ca, csr_factory):
    cert = _enroll(api, csr_factory, "alpha", "TestEEP")
    r = api.put(f"{V1}/certificate/{dn(root_ca)}/{cert['serial_number']}/revoke?invalidity_date=2999-01-01T00:00:00Z")
    assert r.status_code == 400 and "invalidity" in r.json()["error_message"]
    assert Certificate.objects.get(username="alpha").status == "ACTIVE"
