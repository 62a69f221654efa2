"""The PostgreSQL backend's health check (pki/postgresql): a kept session that the server told nothing is used
without a ``SELECT 1`` round trip; one the server ended is found out and replaced before the request's first
query, as Django's own check does."""

from __future__ import annotations

import select
import time

import psycopg2
import pytest
from django.db import connection
from django.db.backends.postgresql import base as django_pg

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asked(monkeypatch) -> list[int]:
    """Each time Django's own check (the ``SELECT 1``) runs."""
    calls: list[int] = []
    original = django_pg.DatabaseWrapper.is_usable

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(django_pg.DatabaseWrapper, "is_usable", counting)
    return calls


def _other_session():
    settings = connection.settings_dict
    other = psycopg2.connect(dbname=settings["NAME"], user=settings["USER"], password=settings["PASSWORD"],
                             host=settings["HOST"] or None, port=settings["PORT"] or None)
    other.autocommit = True
    return other


def _backend_pid() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def _until_readable(what: str) -> None:
    """Wait until ``what`` the server sent reaches the kept connection's socket."""
    deadline = time.monotonic() + 5
    while not select.select([connection.connection], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, f"{what} never arrived"


def test_the_backend_is_ours():
    assert connection.settings_dict["ENGINE"] == "pki.postgresql"
    assert connection.vendor == "postgresql"


def test_a_quiet_session_is_usable_without_a_round_trip(asked):
    _backend_pid()
    assert connection.is_usable() is True
    assert asked == []


def test_a_session_the_server_ended_is_replaced_before_the_next_query(asked):
    pid = _backend_pid()
    other = _other_session()
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    _until_readable("the server's notice")
    assert connection.is_usable() is False
    assert asked == [1]  # something came: Django's own check decided
    # As at a request's start: the dead session is closed, and the first query runs on a new one.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    assert connection.connection is None
    assert _backend_pid() != pid


def test_a_notification_is_not_taken_for_a_lost_session(asked):
    pid = _backend_pid()
    with connection.cursor() as cur:
        cur.execute("LISTEN pki_health_test")
    other = _other_session()
    try:
        with other.cursor() as cur:
            cur.execute("NOTIFY pki_health_test")
    finally:
        other.close()
    _until_readable("the notification")
    assert connection.is_usable() is True  # asked with SELECT 1, which the live session answers
    assert asked == [1]
    assert _backend_pid() == pid
    with connection.cursor() as cur:
        cur.execute("UNLISTEN pki_health_test")
