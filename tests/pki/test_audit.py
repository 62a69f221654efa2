"""The audit log: HMAC chain, tamper detection (deleted or edited rows), the verify command."""

import pytest
from django.core.management import CommandError, call_command

from pki import audit
from pki.models import AuditChainHead, AuditEvent


@pytest.fixture
def events(db):
    return [audit.record("TEST_EVENT", "tester", object_type="thing", object_id=i, details={"n": i})
            for i in range(1, 6)]


def test_chain_verifies_and_is_contiguous(events):
    report = audit.verify_chain()
    assert report.ok and report.checked == 5
    seqs = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert seqs == [1, 2, 3, 4, 5]
    assert AuditChainHead.objects.get(pk=1).last_sequence == 5


def test_deleted_row_is_detected(events):
    AuditEvent.objects.filter(sequence=3).delete()
    report = audit.verify_chain()
    assert not report.ok and report.broken_at == 3 and "missing" in report.problem


def test_deleted_last_row_is_detected(events):
    AuditEvent.objects.filter(sequence=5).delete()
    report = audit.verify_chain()
    assert not report.ok and report.broken_at == 5 and "removed" in report.problem


@pytest.mark.parametrize(
    ("field", "value"),
    [("details", {"n": 99}), ("actor", "mallory"), ("outcome", "FAILURE"), ("event_type", "OTHER"),
     ("object_id", "x")],
)
def test_edited_row_is_detected(events, field, value):
    AuditEvent.objects.filter(sequence=2).update(**{field: value})
    report = audit.verify_chain()
    assert not report.ok and report.broken_at == 2 and "altered" in report.problem


def test_recomputed_mac_without_key_breaks_next_link(events):
    # an attacker who rewrites a row and recomputes a plain SHA-256 still cannot produce the HMAC
    import hashlib

    AuditEvent.objects.filter(sequence=4).update(mac=hashlib.sha256(b"forged").hexdigest())
    assert audit.verify_chain().broken_at == 4


def test_failure_events_are_kept(db):
    audit.record_failure("LOGIN", "eve", "wrong password", details={"ip": "127.0.0.1"})
    event = AuditEvent.objects.get(event_type="LOGIN")
    assert event.outcome == "FAILURE" and event.details == {"ip": "127.0.0.1", "reason": "wrong password"}


def test_verify_command(events, capsys):
    call_command("audit", "verify")
    assert "Audit chain OK: 5 events verified" in capsys.readouterr().out
    AuditEvent.objects.filter(sequence=3).update(details={"n": 0})
    with pytest.raises(CommandError, match="BROKEN at event #3"):
        call_command("audit", "verify")
