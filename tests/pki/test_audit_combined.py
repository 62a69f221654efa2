"""``audit.combined``: the events of one transaction written as one chained event, nothing lost or invented."""

from __future__ import annotations

import pytest
from django.db import transaction

from pki import audit
from pki.choices import AuditOutcome
from pki.models import AuditEvent

pytestmark = pytest.mark.django_db


def _new(before: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("sequence")[before:])


def test_events_fold_into_the_main_event():
    before = AuditEvent.objects.count()
    with transaction.atomic(), audit.combined("CERT_CREATION"):
        held = audit.record("RA_ADDENDENTITY", "ra", object_type="endentity", object_id="u1",
                            details={"status": "NEW"}, in_transaction=True)
        assert held.sequence is None and not _new(before)  # held until the block ends
        audit.record("CERT_CREATION", "ra", object_type="certificate", object_id="ab12", details={"ca": "X"},
                     in_transaction=True)
    (event,) = _new(before)
    assert (event.event_type, event.object_id, event.details["ca"]) == ("CERT_CREATION", "ab12", "X")
    assert event.details["with"] == [{"event_type": "RA_ADDENDENTITY", "object_type": "endentity",
                                      "object_id": "u1", "details": {"status": "NEW"}}]
    assert audit.verify_chain().ok


def test_rolled_back_savepoint_failures_and_other_actors():
    before = AuditEvent.objects.count()
    with transaction.atomic(), audit.combined("CERT_CREATION"):
        try:
            with transaction.atomic():
                audit.record("RA_ADDENDENTITY", "ra", object_id="gone", in_transaction=True)
                raise RuntimeError("undo this savepoint")
        except RuntimeError:
            pass
        audit.record("SCEP_ENROLLMENT", "ra", outcome=AuditOutcome.FAILURE, details={"reason": "x"},
                     in_transaction=True)
        audit.record("RA_EDITENDENTITY", "someone-else", object_id="u2", in_transaction=True)
        audit.record("CERT_CREATION", "ra", object_id="cd34", in_transaction=True)
    events = _new(before)
    assert [(e.event_type, e.outcome) for e in events] == [
        ("SCEP_ENROLLMENT", AuditOutcome.FAILURE), ("RA_EDITENDENTITY", AuditOutcome.SUCCESS),
        ("CERT_CREATION", AuditOutcome.SUCCESS)]
    assert "with" not in events[-1].details  # the rolled-back event is not described as done
    assert not AuditEvent.objects.filter(object_id="gone").exists()
    assert audit.verify_chain().ok


def test_without_the_main_event_each_is_written_and_an_exception_writes_none():
    before = AuditEvent.objects.count()
    with transaction.atomic(), audit.combined("CERT_CREATION"):
        audit.record("RA_ADDENDENTITY", "ra", object_id="u3", in_transaction=True)
        audit.record("RA_EDITENDENTITY", "ra", object_id="u3", in_transaction=True)
    assert [e.event_type for e in _new(before)] == ["RA_ADDENDENTITY", "RA_EDITENDENTITY"]
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError), transaction.atomic(), audit.combined("CERT_CREATION"):
        audit.record("CERT_CREATION", "ra", object_id="ef56", in_transaction=True)
        raise ValueError
    assert not _new(before)
    assert audit.verify_chain().ok
