"""Writing and verifying the audit log.

Each event is chained to the previous one with HMAC-SHA256 under a key derived from PKI_MASTER_KEY, and
sequence numbers are contiguous, so a deleted row (a gap, or a head that points past the last row) and an
edited row (a MAC that no longer matches) are both detected by :func:`verify_chain`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cryptotokens.secrets import derive_subkey

from .choices import AuditOutcome
from .models import AuditChainHead, AuditEvent

logger = logging.getLogger("pki.audit")


def _canonical(seq: int, ts: datetime, event_type: str, actor: str, object_type: str, object_id: str,
               outcome: str, details: dict[str, Any]) -> bytes:
    return json.dumps(
        [seq, ts.isoformat(), event_type, actor, object_type, object_id, outcome, details],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    ).encode()


_ADVANCE_HEAD = "UPDATE pki_auditchainhead SET last_sequence = last_sequence + 1 WHERE id = 1 " \
    "RETURNING last_sequence, last_mac"
_INSERT_EVENT = (
    "INSERT INTO pki_auditevent (sequence, timestamp, event_type, actor, object_type, object_id, outcome, details, mac)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_SET_HEAD_MAC = "UPDATE pki_auditchainhead SET last_mac = %s WHERE id = 1"


def _mac(prev_mac: str, payload: bytes) -> str:
    return hmac.new(derive_subkey(b"audit-chain"), prev_mac.encode() + payload, hashlib.sha256).hexdigest()


def _json_safe(details: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so the stored value (jsonb) and the MAC input are the same thing.
    return json.loads(json.dumps(details, default=str))


def record(
    event_type: str,
    actor: str,
    *,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = AuditOutcome.SUCCESS,
    details: dict[str, Any] | None = None,
    in_transaction: bool = False,
) -> AuditEvent:
    """Append an event. Call inside the transaction of the change it records (last, to hold the
    chain lock briefly); a failure is recorded on its own after the failed transaction rolled back."""
    details = _json_safe(details or {})
    obj_id = str(object_id)
    # Inside the caller's transaction no savepoint is needed: the caller's rollback undoes this too.
    # Plain SQL: this runs on every state change, and the ORM's per-object cost showed in issuance figures.
    with transaction.atomic(savepoint=not in_transaction), connection.cursor() as cur:
        # UPDATE ... RETURNING locks the head row until commit: concurrent writers queue here.
        cur.execute(_ADVANCE_HEAD)
        row = cur.fetchone()
        if row is None:  # a database created without the data migration
            AuditChainHead.objects.get_or_create(pk=1)
            cur.execute(_ADVANCE_HEAD)
            row = cur.fetchone()
        seq, prev_mac = row
        ts = timezone.now()
        mac = _mac(prev_mac, _canonical(seq, ts, event_type, actor, object_type, obj_id, outcome, details))
        cur.execute(_INSERT_EVENT, [seq, connection.ops.adapt_datetimefield_value(ts), event_type, actor,
                                    object_type, obj_id, outcome, json.dumps(details), mac])
        cur.execute(_SET_HEAD_MAC, [mac])
    event = AuditEvent(sequence=seq, timestamp=ts, event_type=event_type, actor=actor, object_type=object_type,
                       object_id=obj_id, outcome=outcome, details=details, mac=mac)
    log = logger.info if outcome == AuditOutcome.SUCCESS else logger.warning
    log("audit %s %s by %s on %s %s", event_type, outcome, actor, object_type, obj_id)
    return event


def record_failure(event_type: str, actor: str, reason: str, **kwargs: Any) -> AuditEvent:
    """Record a refused or failed operation (in its own transaction)."""
    details = {**kwargs.pop("details", {}), "reason": reason}
    return record(event_type, actor, outcome=AuditOutcome.FAILURE, details=details, **kwargs)


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str = ""


def verify_chain() -> ChainReport:
    """Walk the chain from the first event and report the first broken link."""
    prev_mac = ""
    expected = 1
    checked = 0
    fields = ("sequence", "timestamp", "event_type", "actor", "object_type", "object_id", "outcome", "details", "mac")
    for row in AuditEvent.objects.order_by("sequence").values_list(*fields).iterator(chunk_size=5000):
        seq, ts, event_type, actor, object_type, object_id, outcome, details, mac = row
        if seq != expected:
            return ChainReport(False, checked, expected, f"event #{expected} is missing (next found is #{seq})")
        payload = _canonical(seq, ts, event_type, actor, object_type, object_id, outcome, details)
        if not hmac.compare_digest(_mac(prev_mac, payload), mac):
            return ChainReport(False, checked, seq, f"event #{seq} was altered (its MAC does not match)")
        prev_mac = mac
        expected += 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.last_sequence != checked or head.last_mac != prev_mac):
        return ChainReport(
            False, checked, checked + 1,
            f"the chain ends at #{checked} but the head records #{head.last_sequence}: events were removed",
        )
    return ChainReport(True, checked)
