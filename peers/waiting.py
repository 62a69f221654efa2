"""One ``LISTEN`` per RA web process for the answers its requesters wait for (PostgreSQL).

Each carried request holds a thread of the RA until the CA's answer is recorded (:func:`peers.queue.answer_many`,
whose statement sends ``NOTIFY peers_done, '<item id>'`` at commit). Had every waiting thread its own ``LISTEN``,
each answer would wake every waiting thread's database backend and every waiting thread (PostgreSQL signals
every listening backend of the database; the payload is filtered by the receiver), and each wait would pay a
``LISTEN`` and an ``UNLISTEN``: work growing with the square of the devices enrolling at once. Here one thread
per process listens on a connection of its own and wakes only the waiter of the item named, so a carried request
costs its requester one look after its answer came, whatever else is waiting. An answer small enough travels in
its notification (``<item id> <answer JSON>``, up to :data:`NOTICE_ANSWER_MAX` bytes of JSON: a SCEP CertRep does)
and is handed to its waiter, which then sends no statement at all; a larger one is looked up.

Nothing is lost when the listener is not listening: :meth:`Listener.covers` tells a waiter whether a ``LISTEN``
was in place before its last look (otherwise an answer committed in between would have gone unheard), and a waiter
that is not covered looks again at once when the listener is back, or every 50 ms while it is down; a covered
waiter still looks every five seconds. A notification that arrives before its waiter registered is remembered
for a while, so it still wakes it.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from django.db import connections

logger = logging.getLogger("peers")

CHANNEL = "peers_done"
#: How long a covered waiter sleeps between looks when no notification comes (one missed by the server).
COVERED_LOOK = 5.0
#: How often a waiter looks while no listener is in place.
UNCOVERED_LOOK = 0.05
#: A listener with no waiter for this long closes its connection and ends (an RA without traffic holds none).
IDLE_CLOSE = 60.0
_REMEMBERED = 4096  # notifications kept for waiters that register after theirs came
#: The longest answer (its JSON text, in bytes) sent in a notification: PostgreSQL takes payloads under 8000 bytes,
#: and the item id and a space go first.
NOTICE_ANSWER_MAX = 7900


class Listener:
    """The process's listener thread and its waiters (see the module doc). Started on first use, again after a
    fork (a gunicorn worker does not inherit its parent's thread)."""

    def __init__(self, connect: Callable[[], Any] | None = None) -> None:
        self._connect = connect or _connect
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._heard: OrderedDict[str, None] = OrderedDict()
        self._answers: dict[str, str] = {}  # answers that came with their notification, for registered waiters
        self._since: float | None = None  # time.monotonic() when the current LISTEN took effect
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _ensure_started(self) -> None:
        """Under the lock."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        if self._pid != os.getpid():  # a forked child: its parent's waiters are not here
            self._waiters, self._heard, self._answers = {}, OrderedDict(), {}
        self._pid, self._since = os.getpid(), None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="peers-answer-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection (tests: before their database is dropped); the next wait
        starts it again."""
        self._stop.set()
        with self._lock:
            thread, self._thread, self._since = self._thread, None, None
        if thread is not None:
            thread.join(timeout)

    def covers(self, looked_at: float) -> bool:
        """Whether a notification for anything answered after ``looked_at`` (time.monotonic()) reaches a waiter."""
        since = self._since
        return since is not None and since <= looked_at

    @property
    def listening(self) -> bool:
        return self._since is not None

    @contextmanager
    def waiting(self, key: str) -> Iterator[threading.Event]:
        """An event set when the answer ``key`` (an item id) is notified, from registration until the block ends;
        set at once when it was notified already."""
        event = threading.Event()
        with self._lock:
            self._ensure_started()
            self._waiters.setdefault(key, set()).add(event)
            if key in self._heard:
                event.set()
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[key]
                        self._answers.pop(key, None)

    def take_answer(self, key: str) -> str | None:
        """The answer to ``key`` that came with its notification (its JSON text), once; None if none did."""
        with self._lock:
            return self._answers.pop(key, None)

    def _wake(self, keys: set[str], answers: dict[str, str] | None = None) -> None:
        with self._lock:
            for key, answer in (answers or {}).items():
                if key in self._waiters:  # kept for a waiter only: the others look it up
                    self._answers[key] = answer
            if "" in keys:  # no item named: everyone looks
                targets = [e for events in self._waiters.values() for e in events]
            else:
                targets = [e for key in keys for e in self._waiters.get(key, ())]
            for key in keys - {""}:
                self._heard[key] = None
                self._heard.move_to_end(key)
            while len(self._heard) > _REMEMBERED:
                self._heard.popitem(last=False)
        for event in targets:
            event.set()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            raw = None
            try:
                raw = self._connect()
                with raw.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                with self._lock:
                    if self._thread is threading.current_thread():
                        self._since = time.monotonic()
                backoff = 0.1
                self._wake({""})  # whoever waited while nothing listened looks once, then is covered
                idle_since = time.monotonic()
                while not self._stop.is_set():
                    with self._lock:
                        if self._waiters:
                            idle_since = time.monotonic()
                        elif time.monotonic() - idle_since > IDLE_CLOSE:
                            self._thread, self._since = None, None  # the next waiter starts another
                            return
                    if not raw.notifies:
                        select.select([raw], [], [], 1.0)
                    raw.poll()
                    heard: set[str] = set()
                    answers: dict[str, str] = {}
                    for notice in raw.notifies:
                        key, _, answer = notice.payload.partition(" ")
                        heard.add(key)
                        if answer:
                            answers[key] = answer
                    raw.notifies.clear()
                    if heard:
                        self._wake(heard, answers)
            except Exception:  # noqa: BLE001 - a lost database: waiters poll until it is back
                logger.warning("The RA's answer listener lost its database connection; retrying in %.1f s",
                               backoff, exc_info=logger.isEnabledFor(logging.DEBUG))
            finally:
                with self._lock:
                    if self._thread is threading.current_thread():
                        self._since = None
                if raw is not None:
                    with suppress(Exception):  # closing a broken connection
                        raw.close()
            self._wake({""})
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)


def _connect() -> Any:
    """A connection of the listener's own (autocommit), made as Django makes the default database's."""
    wrapper = connections.create_connection("default")
    raw = wrapper.get_new_connection(wrapper.get_connection_params())
    raw.autocommit = True
    return raw


listener = Listener()


def wait(key: str, look: Callable[[], list[Any]], timeout: float, *, looked_at: float,
         heard: Callable[[str], list[Any]] | None = None) -> list[Any]:
    """Run ``look()`` until it returns something or ``timeout`` seconds pass, looking when ``key``'s answer is
    notified. ``looked_at``: time.monotonic() before the caller last saw no answer (before it submitted the item).
    ``heard``: turns an answer that came with its notification (its text) into the result, instead of a look;
    an empty result from it means "look"."""
    end = time.monotonic() + timeout
    with listener.waiting(key) as event:
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return []
            if listener.covers(looked_at):
                event.wait(min(remaining, COVERED_LOOK))
            elif not listener.listening:
                event.wait(min(remaining, UNCOVERED_LOOK))
            # else: a LISTEN newer than the last look is in place: one look now, covered from then on
            event.clear()
            text = listener.take_answer(key) if heard is not None else None
            if text is not None:
                found = heard(text)
                if found:
                    return found
            looked_at = time.monotonic()
            rows = look()
            if rows:
                return rows
