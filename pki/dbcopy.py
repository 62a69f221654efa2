"""One new row with a large binary column written through PostgreSQL's binary COPY.

An INSERT sends a ``bytea`` as hex text that the server parses back, at twice the size: for a million-entry CRL
(about 50 MB) that parsing was most of the time of storing it. Binary COPY sends the bytes as they are. Only the
column types this project stores this way are encoded (integers, booleans, timestamps, bytes, NULL); anything
else is a TypeError, never a silently wrong row.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection, models

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INTEGERS = {
    "SmallIntegerField": "!h", "PositiveSmallIntegerField": "!h",
    "IntegerField": "!i", "PositiveIntegerField": "!i", "AutoField": "!i",
    "BigIntegerField": "!q", "PositiveBigIntegerField": "!q", "BigAutoField": "!q",
}
_lz4: bool | None = None  # whether the server can compress with lz4 (a property of its build: asked once)

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)


def _value(field: models.Field, value) -> bytes | memoryview | None:
    kind = field.get_internal_type()
    if isinstance(field, models.ForeignKey):
        kind = field.target_field.get_internal_type()
    if value is None:
        return None
    if kind in _INTEGERS:
        return struct.pack(_INTEGERS[kind], int(value))
    if kind == "BooleanField":
        return b"\x01" if value else b"\x00"
    if kind == "DateTimeField":
        if value.tzinfo is None:
            raise TypeError(f"{field.name}: a naive datetime")
        delta = value - _PG_EPOCH
        return struct.pack("!q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if kind == "BinaryField":
        return memoryview(value)
    raise TypeError(f"{field.name}: {kind} is not written by binary COPY here")


class _Parts:
    """A file-like reader over byte strings, so the large value is never copied into one buffer."""

    def __init__(self, parts: Iterable[bytes | memoryview]):
        self._parts = [memoryview(p).cast("B") for p in parts if len(p)]

    def read(self, size: int = -1) -> bytes:
        if not self._parts:
            return b""
        head = self._parts[0]
        if size < 0 or size >= len(head):
            self._parts.pop(0)
            return bytes(head)
        self._parts[0] = head[size:]
        return bytes(head[:size])

    def readline(self, size: int = -1) -> bytes:  # psycopg2 asks for read() only; defined for completeness
        return self.read(size)


def copy_insert(instance: models.Model) -> None:
    """Write the new row ``instance`` (primary key left to the database) with one binary COPY. PostgreSQL only;
    the caller reads the primary key back by a unique key if it needs it. Field defaults and ``auto_now_add``
    are not applied: set every value first."""
    if connection.vendor != "postgresql":
        raise RuntimeError("binary COPY is PostgreSQL's")
    fields = [f for f in instance._meta.concrete_fields if not f.primary_key]
    parts: list[bytes | memoryview] = [_HEADER, struct.pack("!h", len(fields))]
    for field in fields:
        value = _value(field, getattr(instance, field.attname))
        if value is None:
            parts.append(struct.pack("!i", -1))
        else:
            parts += [struct.pack("!i", len(value)), value]
    parts.append(_TRAILER)
    table = connection.ops.quote_name(instance._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    connection.ensure_connection()
    with connection.cursor() as cur:
        cur.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)", _Parts(parts),
                             size=1 << 20)


def prefer_fast_compression() -> None:
    """Inside a transaction on PostgreSQL: the large values it writes are compressed with lz4 instead of the
    default pglz, where the server has lz4 (PostgreSQL 14+ built with it). A million-entry CRL (48 MiB) stored in
    about a quarter of the time at the same size; reading needs nothing, each value names its own method."""
    global _lz4
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return
    with connection.cursor() as cur:
        if _lz4 is None:
            cur.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            row = cur.fetchone()
            _lz4 = bool(row and row[0])
        if _lz4:
            cur.execute("SET LOCAL default_toast_compression = 'lz4'")
