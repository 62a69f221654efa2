"""Reading numbers that callers send: database ids in references that may be either an id or a name, and codes.

The one place that decides what counts as a number here. ``str.isdigit`` and ``int`` also accept other scripts'
digits ("١٢" is 12 to ``int``; "¹" passes ``isdigit`` and then makes ``int`` raise), and numbers that overflow
the id column, which the database refuses with an error instead of "not found". Pure: no Django, so every layer
(``pki.x509`` included) may use it.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # the largest BigAutoField value; larger numbers name nothing
_DIGITS = frozenset("0123456789")


def parse_decimal(value: str | int, *, signed: bool = False) -> int | None:
    """``value`` as a whole number written in ASCII digits (surrounding blanks allowed; a leading ``-`` when
    ``signed``), or an int as it is; None for anything else. Never raises."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    digits = text[1:] if signed and text.startswith("-") else text
    # A cap on length (serial numbers reach 49 digits): int() refuses over 4,300 digits, and a long string costs
    # it real time for nothing we store.
    if not digits or len(digits) > 100 or not _DIGITS.issuperset(digits):
        return None
    return int(text)


def parse_db_id(ref: str | int) -> int | None:
    """The primary key ``ref`` names when it is an int or a string of ASCII digits within the id column's range;
    None when it cannot be an id (a name, other scripts' digits, an overflowing number)."""
    number = parse_decimal(ref) if isinstance(ref, str | int) else None
    if number is None or isinstance(ref, str) and ref != ref.strip():
        return None
    return number if 0 <= number <= MAX_ID else None


def is_db_id(ref: str | int) -> bool:
    """True when ``ref`` is an int or a string of ASCII digits small enough to be a primary key."""
    return parse_db_id(ref) is not None


def looks_numeric(text: str) -> bool:
    """True when ``text`` is digits of any script: meant as a number, even if not one :func:`parse_decimal`
    accepts (so a caller can be told "no such id" instead of "no such name")."""
    return isinstance(text, str) and text.strip().isdigit()
