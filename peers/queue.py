"""The RA's work queue: requests that need the CA wait here until a CA connector leases them.

* :func:`submit` stores a work item and wakes waiting lease calls (PostgreSQL ``NOTIFY`` at commit);
  :func:`wait_for_answer` holds the requester until the answer or its deadline.
* :func:`lease` hands out up to ``limit`` items with ``SELECT ... FOR UPDATE SKIP LOCKED``: several RA processes
  and several CA connectors never get one item twice at once. A lease lasts ``PKI_PEER_LEASE_SECONDS``; an item whose
  lease ran out (its connector died mid-request) is handed out again, with the same idempotency key, so the CA
  answers it from its record of what it carried instead of running it twice.
* :func:`answer` accepts the first answer for an item and key; a repeated answer changes nothing.

Waiting uses ``LISTEN``/``NOTIFY`` on PostgreSQL (no polling delay), and short sleeps elsewhere (SQLite).
"""

from __future__ import annotations

import datetime as dt
import logging
import select
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .choices import WorkStatus
from .models import PeerWorkItem

logger = logging.getLogger("peers")


def lease_seconds() -> float:
    """How long a leased item stays with its connector before it is handed out again (PKI_PEER_LEASE_SECONDS)."""
    return float(getattr(settings, "PKI_PEER_LEASE_SECONDS", 20))

WORK_CHANNEL = "peers_work"
DONE_CHANNEL = "peers_done"
MAX_LEASE = 32
#: Carried HTTP requests: an answer that comes after its requester's deadline is kept without its body.
LATE_BODY_DROPPED = ("rest.call", "portal.page")


def _notify(channel: str, payload: str = "") -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def submit(kind: str, payload: dict[str, Any], requester: str, timeout: float) -> PeerWorkItem:
    """Store a work item for the CA; the requester waits up to ``timeout`` seconds for its answer."""
    with transaction.atomic():
        item = PeerWorkItem.objects.create(
            kind=kind, payload=payload, requester=requester[:255], idempotency_key=uuid.uuid4().hex,
            deadline=timezone.now() + dt.timedelta(seconds=timeout))
        _notify(WORK_CHANNEL)  # delivered at commit
    return item


def wait(channel: str, ready: Callable[[], Any], timeout: float, *, payload: str | None = None,
         look_first: bool = True) -> Any:
    """Call ``ready()`` until it returns something true or ``timeout`` passes; between calls sleep until a
    ``NOTIFY`` on ``channel`` (PostgreSQL) or a short while. Returns the last answer of ``ready()``.

    With ``payload``, only a notification carrying that payload (or none) calls ``ready()`` again: every requester
    at the RA listens on one channel, and without it each answer would wake them all into a query. Without
    ``look_first`` the first look comes after ``LISTEN`` (for what cannot be ready yet: one query less)."""
    end = time.monotonic() + timeout
    can_listen = connection.vendor == "postgresql" and not connection.in_atomic_block
    listening = False
    look = look_first or not can_listen
    result = None
    try:
        while True:
            if look:
                result = ready()
            remaining = end - time.monotonic()
            if result or remaining <= 0:
                return result
            if can_listen:
                if not listening:
                    with connection.cursor() as cur:
                        cur.execute(f"LISTEN {channel}")
                    listening, look = True, True
                    continue  # look (once more): the change may have come before LISTEN
                raw = connection.connection
                if not raw.notifies:
                    select.select([raw], [], [], min(remaining, 5.0))
                raw.poll()
                # Nothing heard within 5 s: look anyway (a lost connection, a missed notification).
                look = not raw.notifies or payload is None or any(n.payload in (payload, "") for n in raw.notifies)
                raw.notifies.clear()
            else:
                time.sleep(min(remaining, 0.05))
    finally:
        if listening and connection.connection is not None:
            try:
                with connection.cursor() as cur:
                    cur.execute(f"UNLISTEN {channel}")
                connection.connection.notifies.clear()
            except Exception:  # noqa: BLE001 - a lost connection needs no UNLISTEN
                logger.debug("UNLISTEN %s failed", channel, exc_info=True)


def wait_for_answer(item: PeerWorkItem, timeout: float | None = None) -> PeerWorkItem | None:
    """The answered item, or None when its deadline passed first. An item nobody leased by then is marked
    EXPIRED (never handed out later); one a connector holds keeps going and its answer is still recorded."""
    if timeout is None:
        timeout = max(0.0, (item.deadline - timezone.now()).total_seconds())

    def answered():
        # The requester reads the answer only; the payload (the request it sent) stays in the database.
        return PeerWorkItem.objects.filter(pk=item.pk, status=WorkStatus.DONE).defer("payload").first()

    # Just submitted: one look after LISTEN also sees an answer that came before it.
    done = wait(DONE_CHANNEL, answered, timeout, payload=str(item.pk), look_first=False)
    if done is None:
        PeerWorkItem.objects.filter(pk=item.pk, status=WorkStatus.WAITING).update(status=WorkStatus.EXPIRED)
        # It may have been answered between the last look and the update.
        done = answered()
    return done


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


def lease(peer: str, *, limit: int = 8, wait_seconds: float = 0.0, kinds: list[str] | None = None
          ) -> list[PeerWorkItem]:
    """Up to ``limit`` waiting items for the connector ``peer``, waiting up to ``wait_seconds`` for one."""
    limit = max(1, min(int(limit), MAX_LEASE))
    return wait(WORK_CHANNEL, lambda: _lease_once(peer, limit, kinds), max(0.0, wait_seconds)) or []


def answer(peer: str, item_id: int, key: str, result: dict[str, Any]) -> str:
    """Record the CA's answer to an item: ``accepted``, ``duplicate`` (answered before: nothing changes) or
    ``unknown`` (no such item and key)."""
    return answer_many(peer, [(item_id, key, result)])[0]


def answer_many(peer: str, answers: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    """Record several answers in one transaction (what :func:`answer` says of each, in order), each waking only
    its own requester. A connector posts the answers that finished while its previous post was on the way."""
    outcomes = []
    done: list[str] = []
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
            done.append(str(item.pk))
        if done and connection.vendor == "postgresql":
            with connection.cursor() as cur:  # delivered at commit, one per answered item
                cur.execute("SELECT pg_notify(%s, id) FROM unnest(%s::text[]) AS id", [DONE_CHANNEL, done])
    return outcomes
