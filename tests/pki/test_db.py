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


# (value, the prepared statement's type): each value comes back unchanged through an EXECUTE whose arguments
# pki.db writes as literals itself (quotes, backslashes and SQL in strings stay data; the rest goes to psycopg2).
LITERALS = [
    ("plain", "text"),
    ("it's", "text"),
    ("'; DROP TABLE pki_certificate; --", "text"),
    ("back\\slash \\' and \\\\ two", "text"),
    ("E'\\x41'", "text"),
    ("100% %s %%", "text"),
    ("Grüße, 東京, 🙂", "text"),
    ("", "text"),
    (0, "bigint"),
    (-42, "bigint"),
    (2**62, "bigint"),
    (True, "boolean"),
    (False, "boolean"),
    (None, "text"),
    (bytes(range(256)), "bytea"),
    (b"", "bytea"),
    (["a'b", "c\\d"], "text[]"),
    (1.5, "double precision"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "sql_type"), LITERALS, ids=[f"{t}-{i}" for i, (_, t) in enumerate(LITERALS)])
def test_values_written_as_literals_come_back_unchanged(value, sql_type):
    with connection.cursor() as cur:
        db.execute(cur, "test_literal", f"SELECT CAST(%s AS {sql_type})", [value])
        got = cur.fetchone()[0]
    assert (bytes(got) if isinstance(got, memoryview) else got) == value


@pytest.mark.django_db
@pytest.mark.parametrize("standard_conforming", ["on", "off"])
def test_backslashes_and_bytes_read_the_same_whatever_the_string_setting(standard_conforming):
    with connection.cursor() as cur:
        cur.execute(f"SET LOCAL standard_conforming_strings = {standard_conforming}")
        db.execute(cur, "test_literal_pair", "SELECT CAST(%s AS text), CAST(%s AS bytea)", ["a\\'b\\", b"\\x00'"])
        text, data = cur.fetchone()
    assert (text, bytes(data)) == ("a\\'b\\", b"\\x00'")


@pytest.mark.django_db
def test_datetimes_and_text_enums_are_sent_as_their_values():
    from datetime import UTC, datetime

    from pki.choices import CertificateStatus

    when = datetime(2031, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
    with connection.cursor() as cur:
        db.execute(cur, "test_literal_dt", "SELECT CAST(%s AS timestamptz), CAST(%s AS text)",
                   [when, CertificateStatus.REVOKED])
        assert cur.fetchone() == (when, CertificateStatus.REVOKED.value)


@pytest.mark.django_db
def test_a_nul_in_a_string_is_refused_as_psycopg2_refuses_it():
    with connection.cursor() as cur, pytest.raises(ValueError, match="NUL"):
        db.execute(cur, "test_literal", "SELECT CAST(%s AS text)", ["a\x00b"])


@pytest.mark.django_db
def test_new_row_is_the_instance_init_makes_and_stores_the_same(root_ca):
    from datetime import UTC, datetime

    from pki.models import Certificate, CertificateProfile

    profile = CertificateProfile.objects.get(name="ENDUSER")
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    values = {"serial": "abc1", "fingerprint_sha256": "f" * 64, "subject_dn": "CN=Row", "issuer_dn": "CN=CA",
              "not_before": when, "not_after": when, "der": b"\x30\x00", "username": "u", "public_key_sha256": "e" * 64}
    made = db.new_row(Certificate, values, {"ca": root_ca, "certificate_profile": profile})
    init = Certificate(**values, ca=root_ca, certificate_profile=profile)
    fields = [f.attname for f in Certificate._meta.concrete_fields]
    assert [getattr(made, f) for f in fields] == [getattr(init, f) for f in fields]
    assert made._state.adding and made._state.db is None
    with CaptureQueriesContext(connection) as queries:
        assert made.ca is root_ca and made.certificate_profile is profile
    assert not queries.captured_queries
    db.insert_rows([made])
    stored = Certificate.objects.get(pk=made.pk)
    stored.der = bytes(stored.der)  # read back as a memoryview
    assert [getattr(stored, f) for f in fields if f not in ("id", "created_at", "updated_at")] == \
        [getattr(init, f) for f in fields if f not in ("id", "created_at", "updated_at")]
    assert stored.created_at == made.created_at and stored.status == "ACTIVE"
