"""The RA-mode hot path: one combined audit event per enrollment, and the per-process alias cache seeing every
change of the alias, its CA, its profiles and approval requirements at the next request (also inside one
transaction, as a test runs)."""

from __future__ import annotations

import pytest

from endentities.models import EndEntity
from pki import audit
from pki.choices import CAStatus
from pki.models import AuditEvent, Certificate
from protocols.scep.messages import PkiStatus

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr

pytestmark = pytest.mark.django_db


@pytest.fixture
def ra(alias_factory, scep_ca):
    return alias_factory("scep", operation_mode="ra", ra_default_ca=scep_ca, ra_auth_password="s3cret",
                         ra_certificate_profile="ENDUSER", ra_end_entity_profile="EMPTY")


def test_one_audit_event_describes_creation_and_issuance(scep, scep_ca, ra):
    before = AuditEvent.objects.count()
    key = client_key(60)
    assert scep.enroll(make_csr(key, "CN=fast1,O=Test", "s3cret"), key, scep_ca.certificate).status \
        == PkiStatus.SUCCESS
    events = list(AuditEvent.objects.order_by("sequence")[before:])
    assert [e.event_type for e in events] == ["CERT_CREATION"]
    event = events[0]
    cert = Certificate.objects.get(username="fast1")
    assert event.object_id == cert.serial and event.actor == "scep:scep"
    folded = {item["event_type"]: item for item in event.details["with"]}
    assert folded["RA_ADDENDENTITY"]["object_id"] == "fast1"
    assert folded["RA_ADDENDENTITY"]["details"]["status"] == "NEW"
    assert folded["RA_EDITENDENTITY"]["details"]["status"] == "GENERATED"
    assert audit.verify_chain().ok


def test_second_enrollment_of_the_same_device_records_the_edit(scep, scep_ca, ra):
    key1, key2 = client_key(61), client_key(62)
    assert scep.enroll(make_csr(key1, "CN=fast2", "s3cret"), key1, scep_ca.certificate).status == PkiStatus.SUCCESS
    before = AuditEvent.objects.count()
    assert scep.enroll(make_csr(key2, "CN=fast2", "s3cret"), key2, scep_ca.certificate).status == PkiStatus.SUCCESS
    (event,) = AuditEvent.objects.order_by("sequence")[before:]
    assert event.event_type == "CERT_CREATION"
    assert [item["event_type"] for item in event.details["with"]] == ["RA_EDITENDENTITY", "RA_EDITENDENTITY"]
    assert Certificate.objects.filter(username="fast2").count() == 2


def test_alias_changes_are_seen_by_the_next_request(scep, scep_ca, ra, actor, client):
    from protocols.scep import approvals, services

    key = client_key(63)
    assert scep.enroll(make_csr(key, "CN=fast3", "s3cret"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    # A new shared secret (same transaction as the request before: the row version still differs).
    services.edit_alias(actor, "scep", ra_auth_password="changed")
    key = client_key(64)
    assert scep.enroll(make_csr(key, "CN=fast4", "s3cret"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert scep.enroll(make_csr(key, "CN=fast4", "changed"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    # An approval requirement on the RA CA: PENDING from now on.
    approvals.set_required(actor, ca=scep_ca, required=True)
    key = client_key(65)
    assert scep.enroll(make_csr(key, "CN=fast5", "changed"), key, scep_ca.certificate).status == PkiStatus.PENDING
    assert not EndEntity.objects.filter(username="fast5").exists()
    approvals.set_required(actor, ca=scep_ca, required=False)
    # The CA going offline is a refusal, not an issuance with the cached row.
    scep_ca.status = CAStatus.OFFLINE
    scep_ca.save(update_fields=["status"])
    key = client_key(66)
    assert scep.enroll(make_csr(key, "CN=fast6", "changed"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert not Certificate.objects.filter(username="fast6").exists()
    # A disabled alias answers 404.
    services.edit_alias(actor, "scep", enabled=False)
    assert client.get("/ejbca/publicweb/apply/scep/pkiclient.exe", {"operation": "GetCACaps"}).status_code == 404
