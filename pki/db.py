"""Hot statements prepared once per database session.

psycopg2 sends every statement as text, and PostgreSQL parses and plans it each time. For the few statements
that run on every certificate (the token state, the uniqueness lock and lookup, the certificate INSERT, the
audit append, the SCEP alias check) planning cost the server more CPU than executing them, on a machine where
PostgreSQL and the web workers share the cores. :func:`execute` prepares such a statement the first time a
session runs it (``PREPARE``) and afterwards sends only ``EXECUTE name(values)``.

Prepared statements belong to the database session: a new connection prepares again, and a session that lost
them (``DEALLOCATE``) is noticed on its next first use here, because the registry is per connection object and
checked against ``pg_prepared_statements`` once. Behind a connection pooler that hands one client's session
to another between transactions (PgBouncer in transaction mode) set ``PKI_DB_PREPARE=0``: every statement is
then sent as plain text, as on SQLite.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Sequence

from django.conf import settings
from django.db import connection

_PLACEHOLDER = re.compile(r"%s")
# Per psycopg2 connection (one database session): the names of the statements prepared in it.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def statement_name(purpose: str, sql: str) -> str:
    """The session-wide name of ``sql``: its purpose and a digest of its text (one text, one name)."""
    return f"pki_{purpose}_{hashlib.sha256(sql.encode()).hexdigest()[:12]}"


def execute(cur, purpose: str, sql: str, params: Sequence = ()) -> None:
    """Run ``sql`` (psycopg2 ``%s`` placeholders, no other ``%``) on the Django cursor ``cur``: on PostgreSQL
    as a statement prepared once per session, elsewhere (or with ``PKI_DB_PREPARE=0``) as it is. Parameter
    types are inferred from where each placeholder stands; give a cast (``%s::bigint``) where nothing says."""
    if connection.vendor != "postgresql" or not getattr(settings, "PKI_DB_PREPARE", True) or "%%" in sql:
        cur.execute(sql, params)
        return
    name = statement_name(purpose, sql)
    raw = connection.connection
    names = _prepared.get(raw)
    if names is None:
        # First use in this session through this registry: the session may hold statements already (a
        # registry lost with a reloaded module); preparing one twice would be an error.
        cur.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'pki\\_%%'")
        names = _prepared[raw] = {row[0] for row in cur.fetchall()}
    if name not in names:
        numbered = iter(range(1, sql.count("%s") + 1))
        cur.execute(f"PREPARE {name} AS {_PLACEHOLDER.sub(lambda _: f'${next(numbered)}', sql)}")
        names.add(name)
    if params:
        cur.execute(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
    else:
        cur.execute(f"EXECUTE {name}")


def forget() -> None:
    """Forget which statements each session holds (tests that deallocate them)."""
    _prepared.clear()
