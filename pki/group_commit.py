"""Group commit of the issuances of one process's threads (used by :mod:`pki.issuance`).

Each item is an issuance on its way to the database: it carries ``wake`` (a ``threading.Event``), ``leads`` and
``outcome``, which only this class sets and reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger("pki.issuance")


class GroupCommit:
    """Group commit of the issuances of one process's threads.

    A durable commit waits for the disk (~1 ms here) and the audit chain's head is held from the append to
    the commit, so certificates stored one transaction each queue up behind each other's commits. Here the
    first thread to arrive becomes the leader and stores its certificate; certificates signed by other
    threads meanwhile wait, and the next leader stores all of them in one transaction (one uniqueness lock
    and query, one multi-row INSERT, one audit append, one commit). Every caller returns only after the
    commit that holds its certificate. One thread alone gets a batch of one: the same statements as before.
    Each waiting thread is woken once: when its batch is committed, or to lead the next one.

    A batch that fails as a whole (a serial collision, a database error) is rolled back and each caller
    stores its certificate alone, so one bad item never costs the others theirs.
    """

    MAX_BATCH = 64

    def __init__(self, store: Callable[[list[Any]], None]) -> None:
        self.store = store  # stores a batch inside the transaction opened here
        self.lock = threading.Lock()
        self.queue: list[Any] = []
        self.leading = False

    def submit(self, item: Any) -> bool:
        """Store ``item`` with the next batch. True: committed (``item.refusal`` tells whether it was refused);
        False: the batch failed, store it alone. Raises what storing it raised when it was alone."""
        with self.lock:
            follow = self.leading
            if follow:
                item.wake = threading.Event()  # only a follower waits (a leader alone needs none)
                self.queue.append(item)
            else:
                self.leading = True
        if follow:
            item.wake.wait()
            if not item.leads:
                return self._outcome(item)
        with self.lock:
            batch = [item, *self.queue[: self.MAX_BATCH - 1]]
            del self.queue[: self.MAX_BATCH - 1]
        try:
            with transaction.atomic():
                self.store(batch)
            for member in batch:
                member.outcome = True
        except BaseException as exc:  # noqa: BLE001 - handed to the caller it belongs to, or retried alone
            if len(batch) == 1:
                item.outcome = exc
            else:
                logger.warning("Group commit of %d certificates failed (%s); storing them one by one",
                               len(batch), exc.__class__.__name__)
                for member in batch:
                    member.outcome = False
        finally:
            with self.lock:
                successor = self.queue.pop(0) if self.queue else None
                self.leading = successor is not None
            for member in batch[1:]:
                member.wake.set()
            if successor is not None:
                successor.leads = True
                successor.wake.set()
        return self._outcome(item)

    @staticmethod
    def _outcome(item: Any) -> bool:
        if isinstance(item.outcome, BaseException):
            raise item.outcome
        return bool(item.outcome)
