"""Telling a database id from a name in references that may be either."""

from __future__ import annotations

MAX_ID = 2**63 - 1  # the largest BigAutoField value; larger numbers name nothing


def is_db_id(ref: str | int) -> bool:
    """True when ``ref`` is an int or a string of ASCII digits small enough to be a primary key.

    ``str.isdigit`` alone also accepts non-ASCII digits ("١٢") and numbers that overflow the column,
    which the database refuses with an error instead of "not found"."""
    if isinstance(ref, int):
        return 0 <= ref <= MAX_ID
    return ref.isascii() and ref.isdigit() and len(ref) <= 19 and int(ref) <= MAX_ID
