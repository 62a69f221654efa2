"""The RA's work queue: requests that need the CA wait here until a CA connector leases them.

* :func:`submit` stores a work item and wakes waiting lease calls (PostgreSQL ``NOTIFY`` at commit);
  :func:`wait_for_answer` holds the requester until the answer or its deadline.
* :func:`lease` hands out up to ``limit`` items with ``SELECT ... FOR UPDATE SKIP LOCKED``: several RA processes
  and several CA connectors never get one item twice at once. A lease lasts ``PKI_PEER_LEASE_SECONDS``; an item whose
  lease ran out (its connector died mid-request) is handed out again, with the same idempotency key, so the CA
  answers it from its record of what it carried instead of running it twice.
* :func:`answer` accepts the first answer for an item and key; a repeated answer changes nothing.

Waiting uses ``LISTEN``/``NOTIFY`` on PostgreSQL (no polling delay; a requester through its process's one listener,
:mod:`peers.waiting`), and short sleeps elsewhere (SQLite).

Durability: on PostgreSQL the queue's own statements (submit, lease, answer) commit without waiting for the WAL
flush (``synchronous_commit`` off for their transaction only). A ``NOTIFY`` is delivered after its commit, flush
included, so each flush lay on a carried request's way twice (the wake-up of the lease, the requester's answer).
What an operating-system crash of the RA's database could lose is the last fraction of a second of queue changes,
whose requests are lost with that crash anyway: the devices and clients held open on the RA get no answer and send
again, and the CA keeps its own records of what it carried (the CA's issuance commits stay synchronous).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import select
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from pki.db import execute, execute_in_one, insert_statement, inserted, json_value

from . import waiting
from .choices import WorkStatus
from .models import IncomingPeer, PeerWorkItem

logger = logging.getLogger("peers")


def lease_seconds() -> float:
    """How long a leased item stays with its connector before it is handed out again (PKI_PEER_LEASE_SECONDS)."""
    return float(getattr(settings, "PKI_PEER_LEASE_SECONDS", 20))

WORK_CHANNEL = "peers_work"
DONE_CHANNEL = waiting.CHANNEL
MAX_LEASE = 32
#: Sent along with the queue's own statements, in their implicit transaction: see the module doc on durability.
NO_FLUSH = ("peers_no_flush", "SELECT set_config('synchronous_commit', 'off', true)", [])


def no_flush() -> list[tuple[str, str, list]]:
    """:data:`NO_FLUSH` for a statement that is its own transaction; nothing inside a caller's transaction (whose
    commit keeps the caller's durability)."""
    return [] if connection.in_atomic_block else [NO_FLUSH]


#: Carried HTTP requests: an answer that comes after its requester's deadline is kept without its body.
LATE_BODY_DROPPED = ("rest.call", "portal.page")


#: What PostgreSQL's text and jsonb cannot hold: a NUL character (a ``%00`` in a path or parameter, a ``\u0000`` in
#: JSON) and a lone surrogate (a JSON ``\ud800``).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def storable(value: Any) -> bool:
    """Whether every text of a JSON value (keys included) can be stored: a work item's payload, an answer, a push.
    Iterative, so a value nested as deep as JSON allows does not exhaust the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _notify(channel: str, payload: str = "") -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def _listening() -> bool:
    """Whether waiting here can sleep on ``LISTEN`` (PostgreSQL, outside a transaction: a notification is
    delivered between transactions only)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def submit(kind: str, payload: dict[str, Any], requester: str, timeout: float) -> PeerWorkItem:
    """Store a work item for the CA; the requester waits up to ``timeout`` seconds for its answer."""
    item = PeerWorkItem(kind=kind, payload=payload, requester=requester[:255], idempotency_key=uuid.uuid4().hex,
                        deadline=timezone.now() + dt.timedelta(seconds=timeout))
    if not _listening():
        with transaction.atomic():
            item.save()
            _notify(WORK_CHANNEL)  # delivered at commit
        return item
    purpose, sql, params = insert_statement([item])
    item.submitted_at = time.monotonic()  # no answer can be recorded before this (peers.waiting.wait)
    with connection.cursor() as cur:
        # One round trip: the wake-up for waiting leases and the INSERT, one implicit transaction (the
        # notification is delivered when the row is committed, never before).
        execute_in_one(cur, [NO_FLUSH, ("peers_wake", "SELECT pg_notify(%s, '')", [WORK_CHANNEL]),
                             (purpose, sql, params)])
        inserted([item], cur.fetchall())
    return item


def _look_listening(channel: str, statement: Callable[[], tuple[str, str, list]], timeout: float,
                    before: Sequence[tuple[str, str, list]] = ()) -> list[tuple]:
    """PostgreSQL: run ``statement()`` ((purpose, sql, params) as for :func:`pki.db.execute_in_one`) until it returns
    rows or ``timeout`` passes, sleeping between looks until a ``NOTIFY`` on ``channel``. ``LISTEN`` and ``UNLISTEN``
    travel with a look (one round trip each, no round trip of their own); five seconds without any notification
    look anyway (one missed, or a lost connection). (A connector's waiting lease; the RA's requesters wait through
    peers.waiting's one listener per process.)"""
    end = time.monotonic() + timeout
    listen, unlisten = ("", f"LISTEN {channel}", []), ("", f"UNLISTEN {channel}", [])
    listening = False
    rows: list[tuple] = []
    try:
        with connection.cursor() as cur:
            def look(*extra) -> list[tuple]:
                execute_in_one(cur, [*extra, *before, statement()])
                return cur.fetchall()

            rows = look()
            while not rows and time.monotonic() < end:
                if not listening:
                    # Look once more with LISTEN: what came before it is seen now, what comes after wakes us.
                    listening, rows = True, look(listen)
                    continue
                raw = connection.connection
                if not raw.notifies:
                    select.select([raw], [], [], max(0.0, min(end - time.monotonic(), 5.0)))
                raw.poll()
                heard = bool(raw.notifies)
                raw.notifies.clear()
                if heard:  # most likely ready now: stop listening in the same round trip
                    listening, rows = False, look(unlisten)
                elif time.monotonic() < end:
                    rows = look()
        return rows
    finally:
        if listening and connection.connection is not None:
            try:
                with connection.cursor() as cur:
                    cur.execute(f"UNLISTEN {channel}")
                connection.connection.notifies.clear()
            except Exception:  # noqa: BLE001 - a lost connection needs no UNLISTEN
                logger.debug("UNLISTEN %s failed", channel, exc_info=True)


def _poll(ready: Callable[[], Any], timeout: float, *, look_first: bool = True) -> Any:
    """Where :func:`_look_listening` cannot be used (SQLite, or inside a transaction): call ``ready()`` every 50 ms
    until it returns something true or ``timeout`` passes; returns its last answer."""
    end = time.monotonic() + timeout
    result = ready() if look_first else None
    while not result and time.monotonic() < end:
        time.sleep(max(0.0, min(end - time.monotonic(), 0.05)))
        result = ready()
    return result


# The requester's look for its answer: every column but the payload (the request it sent stays in the database).
_ANSWERED_COLUMNS = ("id", "kind", "idempotency_key", "requester", "status", "created_at", "deadline", "lease_until",
                     "leased_by", "attempts", "result", "answered_by", "completed_at")
_ANSWERED_SQL = (f"SELECT {', '.join(_ANSWERED_COLUMNS)} FROM peers_peerworkitem "  # noqa: S608 - constant names
                 f"WHERE id = %s AND status = '{WorkStatus.DONE}'")


def _answered_item(row: tuple) -> PeerWorkItem:
    values = dict(zip(_ANSWERED_COLUMNS, row, strict=True))
    values["result"] = json_value(values["result"])
    return PeerWorkItem.from_db(connection.alias, list(_ANSWERED_COLUMNS), list(values.values()))


def _heard_item(item: PeerWorkItem, result: dict[str, Any]) -> PeerWorkItem:
    """``item`` answered with ``result``, as its notification told (the columns the answer set, other than the
    result and status, are not read back: nobody waiting uses them)."""
    done = PeerWorkItem(pk=item.pk, kind=item.kind, idempotency_key=item.idempotency_key, requester=item.requester,
                        deadline=item.deadline, status=WorkStatus.DONE, result=result)
    done._state.adding, done._state.db = False, connection.alias
    return done


def wait_for_answer(item: PeerWorkItem, timeout: float | None = None) -> PeerWorkItem | None:
    """The answered item, or None when its deadline passed first. An item nobody leased by then is marked
    EXPIRED (never handed out later); one a connector holds keeps going and its answer is still recorded."""
    if timeout is None:
        timeout = max(0.0, (item.deadline - timezone.now()).total_seconds())

    def answered():
        return PeerWorkItem.objects.filter(pk=item.pk, status=WorkStatus.DONE).defer("payload").first()

    if _listening():
        # Woken by its own answer only, through the process's one listener (peers.waiting), which hands over the
        # answer itself when it came with the notification.
        def look() -> list[PeerWorkItem]:
            with connection.cursor() as cur:
                execute(cur, "peers_answered", _ANSWERED_SQL, [item.pk])
                return [_answered_item(row) for row in cur.fetchall()]

        def heard(text: str) -> list[PeerWorkItem]:
            try:
                result = json.loads(text)
            except ValueError:
                return []  # not an answer this code wrote: look it up
            return [_heard_item(item, result)] if isinstance(result, dict) else []

        found = waiting.wait(str(item.pk), look, timeout, looked_at=getattr(item, "submitted_at", float("-inf")),
                             heard=heard)
        done = found[0] if found else None
    else:
        done = _poll(answered, timeout, look_first=False)
    if done is None:
        PeerWorkItem.objects.filter(pk=item.pk, status=WorkStatus.WAITING).update(status=WorkStatus.EXPIRED)
        # It may have been answered between the last look and the update.
        done = answered()
    return done


# One statement: pick the free items (waiting, or leased by a connector whose lease ran out) under SKIP LOCKED, so
# several RA processes and connectors never get one item twice at once, and lease them.
_LEASE_SQL = (
    "WITH picked AS (SELECT id FROM peers_peerworkitem WHERE deadline > %s AND (status = 'waiting' OR "
    "(status = 'leased' AND lease_until < %s)) AND (%s::text[] IS NULL OR kind = ANY(%s::text[])) "
    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
    ", leased AS (UPDATE peers_peerworkitem AS w SET status = 'leased', lease_until = %s, leased_by = %s,"
    " attempts = w.attempts + 1 FROM picked WHERE w.id = picked.id"
    " RETURNING w.id, w.idempotency_key, w.kind, w.payload, w.requester, w.attempts, w.lease_until)"
    # The incoming peer's counter, in the same statement.
    ", counted AS (UPDATE peers_incomingpeer SET requests_leased = requests_leased + (SELECT count(*) FROM leased)"
    " WHERE id = %s AND EXISTS (SELECT 1 FROM leased))"
    " SELECT * FROM leased")


def _lease_statement(peer: str, limit: int, kinds: list[str] | None, peer_id: int | None
                     ) -> tuple[str, str, list]:
    now = timezone.now()
    until = now + dt.timedelta(seconds=lease_seconds())
    return ("peers_lease", _LEASE_SQL, [now, now, kinds, kinds, limit, until, peer[:255], peer_id])


def _leased_items(rows: list[tuple], peer: str) -> list[PeerWorkItem]:
    items = []
    for pk, key, kind, payload, requester, attempts, until in sorted(rows):
        items.append(PeerWorkItem(pk=pk, idempotency_key=key, kind=kind, requester=requester, attempts=attempts,
                                  payload=json_value(payload),
                                  status=WorkStatus.LEASED, lease_until=until, leased_by=peer[:255]))
    return items


def _lease_once(peer: str, limit: int, kinds: list[str] | None) -> list[PeerWorkItem]:
    now = timezone.now()
    with transaction.atomic():
        # A leased item is free again once its lease ran out.
        qs = PeerWorkItem.objects.filter(deadline__gt=now).filter(
            Q(status=WorkStatus.WAITING) | Q(status=WorkStatus.LEASED, lease_until__lt=now))
        if kinds:
            qs = qs.filter(kind__in=kinds)
        items = list(qs.select_for_update(skip_locked=True).order_by("id")[:limit])
        until = now + dt.timedelta(seconds=lease_seconds())
        for item in items:
            item.status, item.lease_until, item.leased_by = WorkStatus.LEASED, until, peer[:255]
            item.attempts += 1
        if items:  # one plain UPDATE (bulk_update's CASE per row costs more to build than to run)
            PeerWorkItem.objects.filter(pk__in=[i.pk for i in items]).update(
                status=WorkStatus.LEASED, lease_until=until, leased_by=peer[:255], attempts=F("attempts") + 1)
    return items


def _count(peer_id: int | None, *, leased: int = 0, answers: int = 0) -> None:
    """Add to an incoming peer's counters where the statement itself could not (one UPDATE)."""
    if peer_id is not None and (leased or answers):
        IncomingPeer.objects.filter(pk=peer_id).update(requests_leased=F("requests_leased") + leased,
                                                       answers=F("answers") + answers)


def lease(peer: str, *, limit: int = 8, wait_seconds: float = 0.0, kinds: list[str] | None = None,
          peer_id: int | None = None) -> list[PeerWorkItem]:
    """Up to ``limit`` waiting items for the connector ``peer``, waiting up to ``wait_seconds`` for one; counted on
    the :class:`~peers.models.IncomingPeer` ``peer_id`` when given."""
    limit = max(1, min(int(limit), MAX_LEASE))
    wait_seconds = max(0.0, wait_seconds)
    if _listening():
        rows = _look_listening(WORK_CHANNEL, lambda: _lease_statement(peer, limit, kinds or None, peer_id),
                               wait_seconds, before=[NO_FLUSH])
        return _leased_items(rows, peer)
    items = _poll(lambda: _lease_once(peer, limit, kinds), wait_seconds) or []
    _count(peer_id, leased=len(items))
    return items


def answer(peer: str, item_id: int, key: str, result: dict[str, Any], *, peer_id: int | None = None) -> str:
    """Record the CA's answer to an item: ``accepted``, ``duplicate`` (answered before: nothing changes) or
    ``unknown`` (no such item and key)."""
    return answer_many(peer, [(item_id, key, result)], peer_id=peer_id)[0]


def answer_many(peer: str, answers: list[tuple[int, str, dict[str, Any]]], *, peer_id: int | None = None
                ) -> list[str]:
    """Record several answers in one transaction (what :func:`answer` says of each, in order), each waking only
    its own requester, and count those for known items on the incoming peer ``peer_id`` when given. A connector
    posts the answers that finished while its previous post was on the way."""
    if connection.vendor == "postgresql":
        return _answer_all(peer, answers, peer_id)
    outcomes = []
    with transaction.atomic():
        for item_id, key, result in answers:
            item = PeerWorkItem.objects.select_for_update().defer("payload", "result").filter(
                pk=item_id, idempotency_key=key).first()
            if item is None:
                outcomes.append("unknown")
                continue
            if item.status == WorkStatus.DONE:
                outcomes.append("duplicate")
                continue
            if item.kind in LATE_BODY_DROPPED and item.deadline < timezone.now() and isinstance(result, dict):
                # Its requester stopped waiting (and got 503): nobody reads the body (a keystore) any more.
                result = {**{k: v for k, v in result.items() if k not in ("body", "messages")},
                          "body_forgotten": True}
            item.status, item.result, item.answered_by = WorkStatus.DONE, result, peer[:255]
            item.completed_at = timezone.now()
            item.save(update_fields=["status", "result", "answered_by", "completed_at"])
            outcomes.append("accepted")
        _count(peer_id, answers=sum(o != "unknown" for o in outcomes))
    return outcomes


# PostgreSQL: every answer of a post in one statement. The first answer for an item and key is recorded (the
# ``status <> 'done'`` condition is re-checked after a concurrent answer's row lock: the second one changes
# nothing), a carried HTTP request's body is dropped when its requester stopped waiting, and each recorded answer
# wakes its own requester (the notification is delivered at commit).
_ANSWER_SQL = (
    "WITH a AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]) WITH ORDINALITY AS a(id, key, result, n)),"
    " first AS (SELECT DISTINCT ON (id, key) id, key, result::jsonb AS result FROM a ORDER BY id, key, n),"
    " done AS (UPDATE peers_peerworkitem AS w SET status = 'done', answered_by = %s, completed_at = %s,"
    " result = CASE WHEN w.kind = ANY(%s::text[]) AND w.deadline < %s"
    " THEN (first.result - 'body' - 'messages') || jsonb_build_object('body_forgotten', true) ELSE first.result END"
    " FROM first WHERE w.id = first.id AND w.idempotency_key = first.key AND w.status <> 'done'"
    " RETURNING w.id, w.idempotency_key, w.result),"
    # The answer travels in the notification when it fits (7900: peers.waiting.NOTICE_ANSWER_MAX); its requester
    # then sends no statement.
    " woken AS (SELECT pg_notify('peers_done', CASE WHEN octet_length(result::text) <= 7900"
    " THEN id::text || ' ' || result::text ELSE id::text END) FROM done),"  # DONE_CHANNEL
    " known AS (SELECT a.n FROM a WHERE EXISTS (SELECT 1 FROM peers_peerworkitem AS w"
    " WHERE w.id = a.id AND w.idempotency_key = a.key)),"
    " counted AS (UPDATE peers_incomingpeer SET answers = answers + (SELECT count(*) FROM known)"
    " WHERE id = %s AND EXISTS (SELECT 1 FROM known))"
    " SELECT (a.id, a.key) IN (SELECT id, idempotency_key FROM done), a.n IN (SELECT n FROM known),"
    " (SELECT count(*) FROM woken)"
    " FROM a ORDER BY a.n")


def _answer_all(peer: str, answers: list[tuple[int, str, dict[str, Any]]], peer_id: int | None) -> list[str]:
    now = timezone.now()
    params = [[a[0] for a in answers], [a[1] for a in answers], [json.dumps(a[2]) for a in answers], peer[:255],
              now, list(LATE_BODY_DROPPED), now, peer_id]
    with connection.cursor() as cur:
        execute_in_one(cur, [*no_flush(), ("peers_answer", _ANSWER_SQL, params)])
        rows = cur.fetchall()
    outcomes, seen = [], set()
    for (item_id, key, _), (recorded, known, _) in zip(answers, rows, strict=True):
        if (item_id, key) in seen:
            outcomes.append("duplicate" if known else "unknown")  # twice in one post: the first counts
            continue
        seen.add((item_id, key))
        outcomes.append("accepted" if recorded else "duplicate" if known else "unknown")
    return outcomes
