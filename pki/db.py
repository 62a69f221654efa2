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

import functools
import hashlib
import json
import re
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import signals
from django.db.models.base import ModelState

_PLACEHOLDER = re.compile(r"%s")
# Per psycopg2 connection (one database session): the names of the statements prepared in it.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=1024)  # the hot statements' texts repeat: a dictionary look-up instead of a digest
def statement_name(purpose: str, sql: str) -> str:
    """The session-wide name of ``sql``: its purpose and a digest of its text (one text, one name)."""
    return f"pki_{purpose}_{hashlib.sha256(sql.encode()).hexdigest()[:12]}"


def execute(cur, purpose: str, sql: str, params: Sequence = ()) -> None:
    """Run ``sql`` (psycopg2 ``%s`` placeholders, no other ``%``) on the Django cursor ``cur``: on PostgreSQL
    as a statement prepared once per session, elsewhere (or with ``PKI_DB_PREPARE=0``) as it is. Parameter
    types are inferred from where each placeholder stands; give a cast (``%s::bigint``) where nothing says."""
    execute_in_one(cur, [(purpose, sql, params)])


def execute_in_one(cur, statements: Sequence[tuple[str, str, Sequence]]) -> None:
    """Run several statements ((purpose, sql, params) each, as for :func:`execute`; an empty purpose sends its
    statement as text, unprepared) in order, on PostgreSQL in ONE round trip (one simple-query message); the
    cursor then holds the last statement's result. Each statement
    still takes its own snapshot (READ COMMITTED), so one that follows a lock sees what was committed while the
    lock was waited for. Elsewhere they run one by one."""
    # A Django cursor knows its connection (the module-level proxy costs a thread-local look-up per use); a raw
    # driver cursor (the OCSP responder's) is the default connection's.
    wrapper = getattr(cur, "db", None) or connection
    if wrapper.vendor != "postgresql":
        for _, sql, params in statements:
            cur.execute(sql, params)
        return
    prepare = getattr(settings, "PKI_DB_PREPARE", True)
    raw = cur.connection  # the session's psycopg2 connection
    if not prepare or any(not purpose or "%%" in sql for purpose, sql, _ in statements):
        # A statement sent as text keeps its placeholders: psycopg2 fills in every value of the message.
        texts, values = [], []
        for purpose, sql, params in statements:
            if not prepare or not purpose or "%%" in sql:  # no purpose: sent as text (LISTEN cannot be prepared)
                texts.append(sql)
            else:
                name = _prepared_name(cur, raw, purpose, sql)
                texts.append(f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}")
            values += params
        cur.execute("; ".join(texts), values)
        return
    texts = []
    for purpose, sql, params in statements:
        name = _prepared_name(cur, raw, purpose, sql)
        # The values written into the EXECUTE as literals (see sql_literal): psycopg2's own quoting of each
        # parameter took ~0.2 ms per certificate, more than the rest of storing it in this process.
        texts.append(f"EXECUTE {name}({', '.join([sql_literal(v, raw) for v in params])})" if params
                     else f"EXECUTE {name}")
    cur.execute("; ".join(texts))


def sql_literal(value, raw=None) -> str:
    """``value`` as a PostgreSQL literal, for an argument of ``EXECUTE`` (whose prepared parameter types say what
    it is). The common types are written here: strings as escape strings when they hold a backslash (right
    whatever ``standard_conforming_strings`` says), NUL refused as psycopg2 refuses it; any other value (lists,
    naive datetimes, floats, ...) is quoted by psycopg2's own adapter on the connection ``raw``."""
    kind = type(value)
    if kind is not str and isinstance(value, str):
        kind, value = str, str.__str__(value)  # a str enum (TextChoices): its text, as psycopg2 sends it
    if kind is str:
        if "\x00" in value:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        if "\\" in value:
            return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
        return "'" + value.replace("'", "''") + "'"
    if kind is int:
        return str(value)
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is datetime and value.tzinfo is not None:
        return "'" + value.isoformat() + "'"
    if kind is bytes:
        return "E'\\\\x" + value.hex() + "'::bytea"
    from psycopg2.extensions import adapt, encodings

    adapted = adapt(value)
    if raw is not None and hasattr(adapted, "prepare"):
        adapted.prepare(raw)
    return adapted.getquoted().decode(encodings[raw.encoding] if raw is not None else "utf-8")


def json_value(value: Any) -> Any:
    """A json or jsonb column read through a raw cursor: Django's PostgreSQL backend has psycopg2 hand jsonb over as
    text (its JSONField parses it), while json arrives parsed."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _prepared_name(cur, raw, purpose: str, sql: str) -> str:
    """The name of ``sql`` prepared in this session (prepared now if it is not yet); ``raw``: the session's
    psycopg2 connection."""
    name = statement_name(purpose, sql)
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
    return name


class ConditionFailed(Exception):
    """The condition given to :func:`insert_rows` was false when the rows were written (the caller's transaction
    must roll back: the rows are in it)."""


def insert_row(obj, *, unless_taken: str | None = None) -> bool:
    """INSERT one model instance and set its primary key; see :func:`insert_rows`.

    ``unless_taken``: a field with a unique constraint; when its value is taken already, nothing is written and
    the result is False (``INSERT ... ON CONFLICT DO NOTHING``: no error, so a caller inside a transaction
    needs no savepoint to go on)."""
    return insert_rows([obj], unless_taken=unless_taken) == 1


def insert_rows(objs: list, *, unless_taken: str | None = None, condition: tuple[str, list] | None = None) -> int:
    """INSERT instances of one model with one prepared statement (one row each) and set their primary keys, in
    order (PostgreSQL and SQLite return the rows of a multi-row INSERT in VALUES order, as Django's
    bulk_create relies on too). Same columns and conversions as ``save()``, without the ORM's per-call query
    building: issuance inserts rows for every certificate. Returns the number of rows written.

    ``unless_taken`` (one instance only): see :func:`insert_row`.
    ``condition``: a boolean SQL expression and its parameters, evaluated by the INSERT itself (no round trip of
    its own); when it is false, :class:`ConditionFailed` is raised and the caller's transaction must roll back."""
    if not objs:
        return 0
    purpose, sql, params = insert_statement(objs, unless_taken=unless_taken, condition=condition)
    with connection.cursor() as cur:
        execute(cur, purpose, sql, params)
        rows = cur.fetchall()
    return inserted(objs, rows, condition=condition)


def insert_statement(objs: list, *, unless_taken: str | None = None,
                     condition: tuple[str, list] | None = None) -> tuple[str, str, list]:
    """The (purpose, sql, params) of :func:`insert_rows`, to send along with other work (an ``INSERT ...
    RETURNING`` whose rows are the primary keys in order, then the condition's value when there is one);
    :func:`inserted` takes its rows."""
    if unless_taken is not None and len(objs) != 1:
        raise ValueError("unless_taken inserts one instance at a time")
    model = type(objs[0])
    key = (model, connection.vendor, unless_taken)
    cached = _INSERT_SQL.get(key)
    if cached is None:
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        # Only quoted names from the model go into the text; every value is a parameter.
        table, columns = quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields)
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        plan = [(f, _passthrough_types(f, connection.vendor),
                 getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)) for f in fields]
        conflict = (f" ON CONFLICT ({quote(model._meta.get_field(unless_taken).column)}) DO NOTHING"
                    if unless_taken else "")
        cached = _INSERT_SQL[key] = (
            f"INSERT INTO {table} ({columns}) VALUES ", row,  # noqa: S608
            f"{conflict} RETURNING {quote(model._meta.pk.column)}", plan)
    head, row, tail, plan = cached
    params = []
    for obj in objs:
        for f, passthrough, auto in plan:
            # auto_now(_add) sets the field now (pre_save); other fields are read as they are.
            value = (f.pre_save(obj, add=True) if auto else getattr(obj, f.attname)) if passthrough else None
            kind = type(value)
            if passthrough and (kind in passthrough or str in passthrough and isinstance(value, str)) and (
                    kind is not datetime or value.tzinfo):
                params.append(value)  # what get_db_prep_save would send, without its chain of calls
            else:
                params.append(f.get_db_prep_save(f.pre_save(obj, add=True), connection))
    if condition is not None:
        params += condition[1]
    text_key = (key, len(objs), condition[0] if condition is not None else None)
    text = _INSERT_TEXT.get(text_key)
    if text is None:  # the same text object for the same shape: its digest and look-ups downstream are cached
        text = _INSERT_TEXT[text_key] = (head + ", ".join([row] * len(objs)) + tail
                                         + (f", {condition[0]}" if condition is not None else ""))
    return f"insert_{model._meta.db_table}", text, params


def inserted(objs: list, rows: list, *, condition: tuple[str, list] | None = None) -> int:
    """Set the primary keys of ``objs`` from the ``rows`` their :func:`insert_statement` returned; the number
    of rows written. Raises :class:`ConditionFailed` when the statement's condition was false."""
    if condition is not None:
        if not all(r[1] for r in rows):
            raise ConditionFailed(condition[0])
        rows = [r[:1] for r in rows]
    if len(rows) != len(objs):  # unless_taken, and it was
        return 0
    for obj, (pk,) in zip(objs, rows, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return len(rows)


_INSERT_SQL: dict[tuple, tuple[str, str, str, list]] = {}
_INSERT_TEXT: dict[tuple, str] = {}

# Values psycopg2 takes as they are for these fields: get_db_prep_save() would hand them on unchanged (aware
# datetimes only; a naive one goes the long way and gets Django's warning and conversion).
_PASSTHROUGH = {
    "CharField": (str,), "TextField": (str,), "IntegerField": (int,), "BigIntegerField": (int,),
    "SmallIntegerField": (int,), "PositiveIntegerField": (int,), "PositiveSmallIntegerField": (int,),
    "BooleanField": (bool,), "DateTimeField": (datetime,), "BinaryField": (bytes,), "ForeignKey": (int,),
}


def _passthrough_types(field, vendor: str) -> frozenset:
    """The value types of ``field`` that :func:`insert_rows` may send as they are (none: always convert); ``str``
    admits its subclasses too (a TextChoices member is sent as its text, as Django's conversion leaves it).
    An auto_now(_add) field's value is the aware datetime its pre_save gives."""
    if vendor != "postgresql":
        return frozenset()
    types = _PASSTHROUGH.get(field.get_internal_type(), ())
    if field.get_internal_type() == "ForeignKey" and field.target_field.get_internal_type() not in (
            "AutoField", "BigAutoField", "IntegerField", "BigIntegerField"):
        types = ()
    return frozenset((*types, type(None)) if types and field.null else types)


def new_row(model, values: dict[str, Any], related: dict[str, Any]):
    """An unsaved ``model`` instance as ``model(**fields)`` makes it — the fields' defaults, then ``values`` (by
    attribute name), then the objects of the foreign keys named in ``related``, cached as ``__init__`` caches them
    — without ``__init__``'s calls per field (issuance makes a certificate row for every certificate: 15-20 µs
    that way, ~2 µs this way). A model whose instances need ``__init__`` (a callable default, an init signal's
    receiver) gets it."""
    plan = _ROW_DEFAULTS.get(model)
    if plan is None:
        fields = model._meta.concrete_fields
        direct = not any(f.has_default() and callable(f.default) for f in fields)
        plan = _ROW_DEFAULTS[model] = ({f.attname: f.get_default() for f in fields} if direct else None,
                                       {f.name: f for f in model._meta.concrete_fields if f.is_relation})
    defaults, relations = plan
    if defaults is None or signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return model(**values, **related)
    obj = model.__new__(model)
    obj._state = ModelState()
    state = obj.__dict__
    state.update(defaults)
    state.update(values)
    for name, target in related.items():
        field = relations[name]
        state[field.attname] = None if target is None else getattr(target, field.target_field.attname)
        field.set_cached_value(obj, target)
    return obj


_ROW_DEFAULTS: dict[type, tuple[dict[str, Any] | None, dict[str, Any]]] = {}


def update_row(obj, field_names: tuple[str, ...]) -> None:
    """UPDATE the named fields of one stored instance by primary key, as ``save(update_fields=...)`` does
    (``auto_now`` fields named here are set), with one prepared statement per model and field set."""
    model = type(obj)
    key = (model, field_names)
    cached = _UPDATE_SQL.get(key)
    if cached is None:
        fields = [model._meta.get_field(name) for name in field_names]
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        sql = (f"UPDATE {quote(model._meta.db_table)} SET {assignments} "  # noqa: S608 - quoted model names only
               f"WHERE {quote(model._meta.pk.column)} = %s")
        cached = _UPDATE_SQL[key] = (sql, fields)
    sql, fields = cached
    params = [f.get_db_prep_save(f.pre_save(obj, add=False), connection) for f in fields]
    with connection.cursor() as cur:
        execute(cur, f"update_{model._meta.db_table}", sql, [*params, obj.pk])


_UPDATE_SQL: dict[tuple, tuple[str, list]] = {}


def forget() -> None:
    """Forget which statements each session holds (tests that deallocate them)."""
    _prepared.clear()
