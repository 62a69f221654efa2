"""Django's SQLite backend, with write transactions queued on a file lock instead of SQLite's busy handler.

SQLite has one write lock per database file. A writer that finds it taken waits in SQLite's busy handler, which
sleeps and retries in steps that grow to 100 ms: it does not wake when the lock is freed. Under concurrent
writes (gunicorn's processes and threads enrolling at once) the lock is then often free while every waiter
sleeps, and the unlucky ones wait seconds (issue 17: SCEP's p99 on make run's default was 1.8-4.4 s while one
write transaction takes a few milliseconds).

Here every write transaction (Django starts them with ``BEGIN IMMEDIATE``: ``transaction_mode`` in
pki/settings.py) first takes an exclusive ``flock`` on ``<database>-lock`` through its own file descriptor,
and gives it back when the transaction ends. The kernel wakes a waiter as soon as the lock is released, in
every process of the installation (gunicorn's workers, the scheduler, ``manage.py`` commands). The file lock is
only a queue in front of SQLite's lock, which still guards the data: whatever writes without it (a statement
outside a transaction, another program on the file) is waited for by SQLite's busy handler as before. Like a
row lock on PostgreSQL, the queue has no time limit: the transaction ahead ends or its process does (the kernel
frees the lock of a process that dies).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os

from django.db.backends.sqlite3 import base

logger = logging.getLogger("pki.sqlite")

LOCK_SUFFIX = "-lock"


@functools.lru_cache(maxsize=1024)
def _qmark(query: str) -> str:
    # Django's cursor rewrites every statement's %s placeholders with a regular expression, each time it runs;
    # the statements of a request are a few texts that repeat (the same as sqlite3's statement cache keeps).
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class CursorWrapper(base.SQLiteCursorWrapper):
    """Django's SQLite cursor, its placeholder conversion done once per statement text."""

    def convert_query(self, query, *, param_names=None):
        if param_names is None:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)


class DatabaseWrapper(base.DatabaseWrapper):
    """SQLite with write transactions queued on ``<NAME>-lock`` (see the module doc), and Django's cursor with
    its placeholder conversion cached (:class:`CursorWrapper`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._queue_fd: int | None = None
        self._queue_pid = 0  # the process that opened _queue_fd: a forked child opens its own
        self._queue_held = False

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=CursorWrapper)

    def _queue_file(self) -> int | None:
        if self._queue_fd is not None and self._queue_pid == os.getpid():
            return self._queue_fd
        self._queue_fd = None  # inherited through fork: sharing the parent's descriptor would share its lock
        if self.is_in_memory_db():
            return None
        path = f"{self.settings_dict['NAME']}{LOCK_SUFFIX}"
        try:
            self._queue_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # another user's lock file, a read-only directory: SQLite's own lock still works
            logger.warning("SQLite writers are not queued (%s): %s", path, exc)
            return None
        self._queue_pid = os.getpid()
        return self._queue_fd

    def _start_transaction_under_autocommit(self) -> None:
        fd = self._queue_file()
        if fd is not None and not self._queue_held:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL; woken when the writer ahead releases it
            self._queue_held = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._leave_queue()
            raise

    def _leave_queue(self) -> None:
        if self._queue_held:
            self._queue_held = False
            if self._queue_fd is not None and self._queue_pid == os.getpid():
                fcntl.flock(self._queue_fd, fcntl.LOCK_UN)

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._leave_queue()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._leave_queue()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._leave_queue()
            if self._queue_fd is not None and self._queue_pid == os.getpid():
                os.close(self._queue_fd)
            self._queue_fd = None
