"""pki.db: hot statements prepared once per PostgreSQL session."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pki import db

SQL = "SELECT %s::int + %s::int"


def _run(*params):
    with connection.cursor() as cur:
        db.execute(cur, "test_sum", SQL, params)
        return cur.fetchone()[0]


def _session_has(name: str) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [name])
        return cur.fetchone() is not None


@pytest.mark.django_db
def test_prepared_once_then_executed_by_name():
    name = db.statement_name("test_sum", SQL)
    assert _run(1, 2) == 3
    assert _session_has(name)
    with CaptureQueriesContext(connection) as queries:
        assert _run(40, 2) == 42
    assert [q["sql"] for q in queries.captured_queries] == [f"EXECUTE {name}(40, 2)"]


@pytest.mark.django_db
def test_a_session_that_lost_its_statements_prepares_them_again():
    assert _run(1, 1) == 2
    with connection.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    db.forget()
    assert _run(2, 2) == 4
    db.forget()  # the registry lost, the session still holds it: not prepared twice (that would be an error)
    assert _run(3, 3) == 6


@pytest.mark.django_db
def test_turned_off_sends_the_plain_text(settings):
    settings.PKI_DB_PREPARE = False
    with CaptureQueriesContext(connection) as queries:
        assert _run(5, 6) == 11
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 5::int + 6::int"]


def test_names_differ_by_text():
    assert db.statement_name("x", "SELECT 1") != db.statement_name("x", "SELECT 2")
    assert db.statement_name("x", "SELECT 1") == db.statement_name("x", "SELECT 1")
