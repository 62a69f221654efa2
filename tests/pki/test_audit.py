"""The audit log: HMAC chain, tamper detection (deleted or edited rows), the verify command."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

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


def _another_process_appended() -> None:
    """What an append by another process leaves: the head moved on, this process's expectation did not."""
    expected = audit._pipeline.expected
    audit.record("ELSEWHERE", "other")
    audit._pipeline.expected = expected


@pytest.mark.parametrize("pipeline", ["expected-head", "stale-expectation", "no-expectation"])
def test_record_many_along_runs_the_statement_and_appends_in_order(db, pipeline):
    from django.db import transaction
    from django.test.utils import CaptureQueriesContext

    from pki import db as pki_db
    from pki.models import Role

    audit.record("FIRST", "tester")
    if pipeline == "stale-expectation":
        _another_process_appended()
    elif pipeline == "no-expectation":
        audit._pipeline.expected = None
    # The test case's transaction appended already; appending as a new transaction would (with the head chained
    # onto) is what is tested here.
    connection.audit_head_holder = None
    roles = [Role(name=f"along{i}") for i in range(3)]
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        rows = audit.record_many_along(pki_db.insert_statement(roles), [
            audit.Entry("ALONG", "tester", "role", r.name, {"n": i}) for i, r in enumerate(roles)])
        assert pki_db.inserted(roles, rows) == 3
    # Round trips of the append itself (a statement prepared on first use in a session is not one of them).
    statements = [q["sql"] for q in queries.captured_queries
                  if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "PREPARE"))]
    # One statement when the head is the expected one; else the append locks the head (and reads it) itself.
    assert len(statements) == {"expected-head": 1, "stale-expectation": 2, "no-expectation": 3}[pipeline], statements
    assert [r.pk for r in roles] == list(Role.objects.filter(name__startswith="along").order_by("name")
                                         .values_list("pk", flat=True))
    assert list(AuditEvent.objects.filter(event_type="ALONG").order_by("sequence")
                .values_list("object_id", flat=True)) == ["along0", "along1", "along2"]
    assert audit.verify_chain().ok


def test_record_many_along_rolls_back_with_its_statement(db):
    from django.db import transaction

    from pki import db as pki_db
    from pki.models import Role

    audit.record("FIRST", "tester")
    before = AuditChainHead.objects.get(pk=1).last_sequence
    with pytest.raises(pki_db.ConditionFailed), transaction.atomic():
        role = Role(name="refused")
        condition = ("%s = 1", [0])
        rows = audit.record_many_along(pki_db.insert_statement([role], condition=condition),
                                       [audit.Entry("ALONG", "tester", "role", "refused", {})])
        pki_db.inserted([role], rows, condition=condition)
    assert not Role.objects.filter(name="refused").exists() and not AuditEvent.objects.filter(event_type="ALONG")
    assert AuditChainHead.objects.get(pk=1).last_sequence == before
    audit.record("AFTER", "tester")  # the stale expectation costs a round trip, never a break
    assert audit.verify_chain().ok
