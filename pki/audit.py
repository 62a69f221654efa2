"""Writing the audit log (its verification is in :mod:`pki.audit_chain`, re-exported here).

Each event is chained to the previous one with HMAC-SHA256 under a key derived from PKI_MASTER_KEY, and
sequence numbers are contiguous, so a deleted row (a gap, or a head that points past the last row) and an
edited row (a MAC that no longer matches) are both detected by :func:`verify_chain`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

# The verification API is re-exported (``as``): views, the `audit` command and tests know it as pki.audit's.
from . import db
from .audit_chain import Anchor as Anchor
from .audit_chain import AuditChainError as AuditChainError
from .audit_chain import ChainBreak as ChainBreak
from .audit_chain import ChainReport as ChainReport
from .audit_chain import _canonical, _mac, head_mac
from .audit_chain import current_anchor as current_anchor
from .audit_chain import parse_anchors as parse_anchors
from .audit_chain import verify_chain as verify_chain
from .choices import AuditOutcome
from .models import AuditChainHead, AuditEvent

logger = logging.getLogger("pki.audit")


_EVENT_COLUMNS = "(sequence, timestamp, event_type, actor, object_type, object_id, outcome, details, mac)"
_EVENT_VALUES = "(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
# The same in a VALUES list of its own, where no column says the types (a prepared statement needs them).
_TYPED_EVENT_VALUES = "(%s::bigint, %s::timestamptz, %s, %s, %s, %s, %s, %s::jsonb, %s)"
# Generic path (SQLite): UPDATE ... RETURNING takes the write lock and the next sequence number.
_ADVANCE_HEAD = "UPDATE pki_auditchainhead SET last_sequence = last_sequence + %s WHERE id = 1 " \
    "RETURNING last_sequence, last_mac"
_SET_HEAD_MAC = "UPDATE pki_auditchainhead SET last_mac = %s, head_mac = %s WHERE id = 1"

# PostgreSQL path. Whoever updates the head row holds it until commit, so appends from every process
# serialize there, commit (and its WAL flush) included: the fewer round trips while it is held, the more
# events per second the whole installation can write. Several events (a batch of issuances) go in one
# statement, so the head is taken once for all of them.
_LOCK_HEAD = "SELECT last_sequence, last_mac FROM pki_auditchainhead WHERE id = 1 FOR UPDATE"


def _insert_events_sql(n: int) -> str:
    """With the head locked: the ``n`` events and the new head in one statement."""
    values = ", ".join([_EVENT_VALUES] * n)
    return (f"WITH new_event AS (INSERT INTO pki_auditevent {_EVENT_COLUMNS} VALUES {values}) "  # noqa: S608
            "UPDATE pki_auditchainhead SET last_sequence = %s, last_mac = %s, head_mac = %s WHERE id = 1")


@functools.lru_cache(maxsize=256)  # built for every issuance otherwise
def _try_append_sql(n: int, along: str | None = None) -> str:
    """Without the lock yet: append onto the head this process expects, in the statement that takes the lock.
    The head moves only if it is exactly the expected one (checked on the latest committed row, after any
    wait), and the events are inserted only if it moved; otherwise the row is locked unchanged and returned.
    ``along``: a data-modifying statement with RETURNING run by the same statement, whatever the head; its rows
    follow the head's columns (one result row per row of it, in the order of its first column)."""
    values = ", ".join([_TYPED_EVENT_VALUES] * n)
    # Only placeholders, constant names and the caller's own statement are interpolated.
    start = f"WITH along AS ({along}), head AS" if along else "WITH head AS"
    end = ("SELECT head.last_sequence, head.last_mac, along.* FROM head LEFT JOIN along ON true ORDER BY 3"
           if along else "SELECT last_sequence, last_mac FROM head")
    return (
        f"{start} (UPDATE pki_auditchainhead SET "  # noqa: S608
        "last_sequence = CASE WHEN last_sequence = %s AND last_mac = %s THEN %s ELSE last_sequence END, "
        "last_mac = CASE WHEN last_sequence = %s AND last_mac = %s THEN %s ELSE last_mac END, "
        "head_mac = CASE WHEN last_sequence = %s AND last_mac = %s THEN %s ELSE head_mac END "
        "WHERE id = 1 RETURNING last_sequence, last_mac), "
        f"new_event AS (INSERT INTO pki_auditevent {_EVENT_COLUMNS} "
        "SELECT v.seq, v.ts, v.event_type, v.actor, v.object_type, v.object_id, v.outcome, v.details, v.mac "
        f"FROM (VALUES {values}) AS v(seq, ts, event_type, actor, object_type, object_id, outcome, details, mac), "
        f"head WHERE head.last_sequence = %s AND head.last_mac = %s) {end}"
    )


TURN_TIMEOUT = 0.1  # seconds a thread waits for its turn before appending the plain way


class _ChainPipeline:
    """This process's expectation of the chain's head: (sequence, mac) of its last append, committed or
    about to be. The next append chains onto it and takes the head lock in one statement, so the lock is
    held for one round trip and the commit instead of two round trips and the commit. ``turn`` lets one
    thread at a time send such a statement, so they reach the head in the order they chained. Nothing
    depends on the expectation being right: the database checks it, and a wrong one costs a round trip."""

    def __init__(self) -> None:
        self.turn = threading.Lock()
        self.expected: tuple[int, str] | None = None


_pipeline = _ChainPipeline()


def _reset_pipeline() -> None:
    global _pipeline
    _pipeline = _ChainPipeline()  # a forked child must not inherit a lock held by a thread of its parent


os.register_at_fork(after_in_child=_reset_pipeline)


REDACTED = "<redacted>"
# Higher apps say whose subject names stay out of the log (the end entity profile's "subject name log
# redaction"): callables of a username returning True to redact. The core cannot import them.
_redaction_checks: list[Callable[[str], bool]] = []


def register_subject_redaction(check: Callable[[str], bool]) -> None:
    """Register a check ``(username) -> bool``; any True redacts that user's subject names in audit details."""
    if check not in _redaction_checks:
        _redaction_checks.append(check)


def subject_for_audit(subject: str, username: str = "", redact: bool = False) -> str:
    """``subject`` as an audit detail: REDACTED when asked, or when a registered check says so for ``username``."""
    if not subject:
        return subject
    if redact or (username and any(check(username) for check in _redaction_checks)):
        return REDACTED
    return subject


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What an edit changed, for its audit event's ``changes``: ``{field: {"before": old, "after": new}}`` for
    each field of ``after`` whose value differs (compared as the audit log stores them, JSON)."""
    def stored(value: Any) -> Any:
        return json.loads(json.dumps(value, sort_keys=True, default=str))

    out = {}
    for key, new in after.items():
        old = stored(before.get(key))
        new = stored(new)
        if old != new:
            out[key] = {"before": old, "after": new}
    return out



_PLAIN = (str, int, bool, type(None))


_on_behalf = threading.local()


@contextmanager
def on_behalf(context: dict[str, str | int]) -> Iterator[None]:
    """Every event written on this thread inside this block gets ``context``'s keys in its details (where it
    has no such key itself). A CA running a request carried from an RA names the connector and the RA's work
    item this way in each event the operation writes, in the operation's own transaction (peers.carry)."""
    outer = getattr(_on_behalf, "context", None)
    _on_behalf.context = {**(outer or {}), **context}
    try:
        yield
    finally:
        _on_behalf.context = outer


def _json_safe(details: dict[str, Any]) -> tuple[dict[str, Any], str]:
    # Round-trip through JSON so the stored value (jsonb) and the MAC input are the same thing. Details of text,
    # integers, booleans and None under text keys (an issuance's) come back from JSON as they are: a copy will do.
    context = getattr(_on_behalf, "context", None)
    if context:
        details = {**context, **details}
    text = json.dumps(details, default=str)
    if all(type(k) is str and type(v) in _PLAIN for k, v in details.items()):
        return dict(details), text
    return json.loads(text), text


def _head_or_create(cur, lock_sql: str, params: list | None = None):
    db.execute(cur, "audit_head", lock_sql, params or ())
    row = cur.fetchone()
    if row is None:  # a database created without the data migration
        AuditChainHead.objects.get_or_create(pk=1)
        db.execute(cur, "audit_head", lock_sql, params or ())
        row = cur.fetchone()
    return row


# One event to append: (event_type, actor, object_type, object_id, outcome), details, details as JSON text.
_Event = tuple[tuple[str, str, str, str, str], dict[str, Any], str]


def _chain(prev_seq: int, prev_mac: str, events: list[_Event], vendor: str = "postgresql",
           ) -> tuple[list[tuple[int, datetime, str]], list]:
    """Sequence numbers, timestamps and MACs of ``events`` appended after (prev_seq, prev_mac), and the
    statement parameters of their rows (for the database ``vendor``: an aware datetime is PostgreSQL's value)."""
    ts = timezone.now()
    db_ts = ts if vendor == "postgresql" else connection.ops.adapt_datetimefield_value(ts)
    chained, params = [], []
    seq, mac = prev_seq, prev_mac
    for fields, details, details_json in events:
        seq += 1
        mac = _mac(mac, _canonical(seq, ts, *fields, details))
        chained.append((seq, ts, mac))
        params += [seq, db_ts, *fields, details_json, mac]
    return chained, params


def _append_generic(cur, events: list[_Event]):
    last_seq, prev_mac = _head_or_create(cur, _ADVANCE_HEAD, [len(events)])  # locks the head until commit
    chained, params = _chain(last_seq - len(events), prev_mac, events, cur.db.vendor)
    values = ", ".join([_EVENT_VALUES] * len(events))
    cur.execute(f"INSERT INTO pki_auditevent {_EVENT_COLUMNS} VALUES {values}", params)  # noqa: S608
    cur.execute(_SET_HEAD_MAC, [chained[-1][2], head_mac(chained[-1][0], chained[-1][2])])
    return chained


def _append_locked(cur, events: list[_Event], head=None):
    """Append with the head row locked by this transaction (``head``: its values, when already read)."""
    if head is None:
        head = _head_or_create(cur, _LOCK_HEAD)
    chained, params = _chain(head[0], head[1], events)
    seq, mac = chained[-1][0], chained[-1][2]
    db.execute(cur, "audit_append", _insert_events_sql(len(events)), [*params, seq, mac, head_mac(seq, mac)])
    return chained


# A statement for pki.db.execute: (purpose, sql, params).
Statement = tuple[str, str, list]


def _run_along(cur, along: Statement | None) -> list[tuple]:
    if along is None:
        return []
    db.execute(cur, *along)
    return cur.fetchall()


def _append_postgresql(cur, events: list[_Event], holds_head: bool, along: Statement | None = None):
    """Append ``events``; with ``along`` (see :func:`record_many_along`), also run it, in the same statement when
    the expected head is known. Returns the events' (sequence, timestamp, mac) and ``along``'s rows."""
    pipeline = _pipeline
    # A transaction that appended before holds the head already: it must not wait for a thread that
    # waits for its commit.
    if holds_head or not pipeline.turn.acquire(timeout=TURN_TIMEOUT):
        rows = _run_along(cur, along)
        chained = _append_locked(cur, events)
        pipeline.expected = chained[-1][0], chained[-1][2]
        return chained, rows
    try:
        expected = pipeline.expected
        if expected is None:
            rows = _run_along(cur, along)
            chained = _append_locked(cur, events)
        else:
            prev_seq, prev_mac = expected
            chained, params = _chain(prev_seq, prev_mac, events)
            seq, mac = chained[-1][0], chained[-1][2]
            params = [prev_seq, prev_mac, seq, prev_seq, prev_mac, mac, prev_seq, prev_mac, head_mac(seq, mac),
                      *params, seq, mac]
            if along is None:
                db.execute(cur, "audit_try_append", _try_append_sql(len(events)), params)
                head = cur.fetchone()
                rows = []
            else:
                db.execute(cur, f"audit_try_append_{along[0]}", _try_append_sql(len(events), along[1]),
                           [*along[2], *params])
                result = cur.fetchall()
                if not result:  # no head row (removed since this process appended): along's rows are unknown
                    raise AuditChainHead.DoesNotExist("the audit chain head row is missing")
                head = result[0][:2]
                rows = [r[2:] for r in result if r[2] is not None]
            if head is None or head[0] != seq or head[1] != mac:
                # another process appended meanwhile (or a rollback): the row is locked by us now
                chained = _append_locked(cur, events, head)
        pipeline.expected = chained[-1][0], chained[-1][2]
        return chained, rows
    finally:
        pipeline.turn.release()


class _Held:
    """Events held by :func:`combined` on this thread, each with the on-commit marker that tells whether the
    block it was recorded in is still part of the transaction (Django drops a rolled-back savepoint's
    on-commit callbacks, and so the marker)."""

    def __init__(self, into: str):
        self.into = into
        self.events: list[tuple[tuple[str, str, str, str, str], dict[str, Any], Callable[[], None]]] = []


_held = threading.local()


def _held_marker() -> Callable[[], None]:
    return lambda: None  # a distinct object per held event; running it at commit does nothing


@contextmanager
def combined(into: str) -> Iterator[None]:
    """Write the events recorded ``in_transaction`` inside this block as ONE event when it ends (inside the
    caller's transaction): the first successful ``into`` event, with the other successful events of the same
    actor listed in its details under ``"with"`` (event type, object type, object id, details each), so no
    state change goes unrecorded. Failures and events of other actors are written on their own, in order.

    Why: the chain head is locked from a transaction's first append until its commit, so an enrollment that
    audits "end entity added" first holds every other enrollment off for its whole issuance (signature
    included); one event at the end holds it for one statement and the commit. Use it around a
    ``transaction.atomic()`` body, innermost: ``with transaction.atomic(), audit.combined("CERT_CREATION"):``.
    """
    outer = getattr(_held, "batch", None)
    if outer is not None:  # already combining: the outer block writes
        yield
        return
    batch = _held.batch = _Held(into)
    try:
        yield
    finally:
        _held.batch = None
    # Only reached when the block succeeded: on an exception the transaction rolls back and nothing is written.
    live = [(f, d) for f, d, marker in batch.events
            if any(entry[1] is marker for entry in connection.run_on_commit)]
    main = next((i for i, (f, _) in enumerate(live) if f[0] == into and f[4] == AuditOutcome.SUCCESS), None)
    if main is not None:
        fields, details = live[main]
        fold = {i for i, (f, _) in enumerate(live)
                if i != main and f[1] == fields[1] and f[4] == AuditOutcome.SUCCESS}
        if fold:
            details = {**details, "with": [{"event_type": f[0], "object_type": f[2], "object_id": f[3],
                                            "details": d} for i, (f, d) in enumerate(live) if i in fold]}
        live = [item for i, item in enumerate(live) if i != main and i not in fold] + [(fields, details)]
    for (event_type, actor, object_type, object_id, outcome), details in live:
        record(event_type, actor, object_type=object_type, object_id=object_id, outcome=outcome, details=details,
               in_transaction=True)


_kept = threading.local()


@contextmanager
def failures_outlive_rollback() -> Iterator[None]:
    """Around an operation, outside its ``transaction.atomic()``: failure events recorded inside an open transaction
    are held and written when this block ends, after that transaction committed or rolled back, so a refused
    operation stays on record although its changes are undone. (Ending inside a caller's transaction, they are
    written there, as without this block.) Successful events belong to their transaction and are not held."""
    if getattr(_kept, "events", None) is not None:  # an outer block writes
        yield
        return
    held: list[tuple[tuple, dict[str, Any]]] = []
    _kept.events = held
    try:
        yield
    finally:
        _kept.events = None
        for args, kwargs in held:
            try:
                record(*args, **kwargs)
            except Exception:  # never hide the operation's own error behind a failed audit write
                logger.exception("audit: could not write the held failure event %s", args[0])


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
    chain lock briefly); a failure is recorded on its own after the failed transaction rolled back.
    Inside :func:`combined` an ``in_transaction`` event is held and written when that block ends (the
    returned event then has no sequence number yet). Inside :func:`failures_outlive_rollback` a failure recorded
    in an open transaction is held until that block ends (the returned event then has no sequence number)."""
    kept = getattr(_kept, "events", None)
    # Held while a transaction other than a test case's own wrapper is open.
    if kept is not None and outcome != AuditOutcome.SUCCESS and any(
            not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks):
        kept.append(((event_type, actor), {"object_type": object_type, "object_id": object_id, "outcome": outcome,
                                           "details": dict(details or {})}))
        return AuditEvent(event_type=event_type, actor=actor, object_type=object_type, object_id=str(object_id),
                          outcome=outcome, details=details or {})
    batch = _holding() if in_transaction else None
    if batch is not None:
        _hold(batch, (event_type, actor, object_type, str(object_id), outcome), details or {})
        return AuditEvent(event_type=event_type, actor=actor, object_type=object_type, object_id=str(object_id),
                          outcome=outcome, details=details or {})
    details, details_json = _json_safe(details or {})
    object_id = str(object_id)
    ((seq, ts, mac),), _ = _write([((event_type, actor, object_type, object_id, outcome), details, details_json)],
                                  in_transaction)
    return AuditEvent(sequence=seq, timestamp=ts, event_type=event_type, actor=actor, object_type=object_type,
                      object_id=object_id, outcome=outcome, details=details, mac=mac)


class Entry(NamedTuple):
    """One successful event for :func:`record_many`."""

    event_type: str
    actor: str
    object_type: str
    object_id: str
    details: dict[str, Any]


def record_many(entries: list[Entry]) -> list[int]:
    """Append several successful events, in order, inside the caller's transaction: one head lock and one
    statement for all of them (a batch of issuances committed together). Returns their sequence numbers;
    inside :func:`combined` the events are held like :func:`record`'s instead (and the list is empty)."""
    batch = _holding()
    if batch is not None:
        for entry in entries:
            _hold(batch, (entry.event_type, entry.actor, entry.object_type, str(entry.object_id),
                          AuditOutcome.SUCCESS), entry.details)
        return []
    events: list[_Event] = []
    for entry in entries:
        details, details_json = _json_safe(entry.details)
        events.append(((entry.event_type, entry.actor, entry.object_type, str(entry.object_id),
                        AuditOutcome.SUCCESS), details, details_json))
    return [seq for seq, _, _ in _write(events, in_transaction=True)[0]] if events else []


def record_many_along(along: Statement, entries: list[Entry]) -> list[tuple]:
    """:func:`record_many`, with ``along`` — a data-modifying statement with RETURNING, (purpose, sql, params)
    as for :func:`pki.db.execute`, whose first column orders its rows — run in the same round trip where it can
    (the append chains onto the head this process expects: the usual case); returns ``along``'s rows. Issuance
    stores its certificates this way: the INSERT and the audit append in one statement."""
    events: list[_Event] = []
    batch = _holding()
    for entry in entries:
        if batch is not None:
            _hold(batch, (entry.event_type, entry.actor, entry.object_type, str(entry.object_id),
                          AuditOutcome.SUCCESS), entry.details)
        else:
            details, details_json = _json_safe(entry.details)
            events.append(((entry.event_type, entry.actor, entry.object_type, str(entry.object_id),
                            AuditOutcome.SUCCESS), details, details_json))
    if not events:
        with connection.cursor() as cur:
            return _run_along(cur, along)
    return _write(events, in_transaction=True, along=along)[1]


def _holding() -> _Held | None:
    """The :func:`combined` block that holds this thread's in-transaction events, if one is open."""
    batch = getattr(_held, "batch", None)
    return batch if batch is not None and connection.in_atomic_block else None


def _hold(batch: _Held, fields: tuple[str, str, str, str, str], details: dict[str, Any]) -> None:
    marker = _held_marker()
    transaction.on_commit(marker)
    batch.events.append((fields, dict(details), marker))


def _write(events: list[_Event], in_transaction: bool, along: Statement | None = None,
           ) -> tuple[list[tuple[int, datetime, str]], list[tuple]]:
    conn = transaction.get_connection()  # once: each use of the module's proxy is a thread-local look-up
    # The caller's transaction, if any (its outermost atomic block): the head lock taken here lasts as long.
    outer = conn.atomic_blocks[0] if conn.in_atomic_block else None
    # Inside the caller's transaction no savepoint is needed: the caller's rollback undoes this too.
    # Plain SQL: this runs on every state change, and the ORM's per-object cost showed in issuance figures.
    with transaction.atomic(savepoint=not in_transaction), conn.cursor() as cur:
        if conn.vendor == "postgresql":
            # Appended before in this same transaction: the head is held already. (A block object reused
            # by a decorator can make this wrongly true, which only costs pipelining: the plain way of
            # appending is always right.)
            holds_head = outer is not None and getattr(conn, "audit_head_holder", None) is outer
            chained, rows = _append_postgresql(cur, events, holds_head, along)
            if outer is not None:
                conn.audit_head_holder = outer
        else:
            rows = _run_along(cur, along)
            chained = _append_generic(cur, events)
    for (event_type, actor, object_type, object_id, outcome), _, _ in events:
        log = logger.info if outcome == AuditOutcome.SUCCESS else logger.warning
        log("audit %s %s by %s on %s %s", event_type, outcome, actor, object_type, object_id)
    return chained, rows  # (sequence, timestamp, mac) of each event, and the rows of along


def record_failure(event_type: str, actor: str, reason: str, **kwargs: Any) -> AuditEvent:
    """Record a refused or failed operation (in its own transaction)."""
    details = {**kwargs.pop("details", {}), "reason": reason}
    return record(event_type, actor, outcome=AuditOutcome.FAILURE, details=details, **kwargs)
