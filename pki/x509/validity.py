"""Validity expressions as EJBCA writes them: ``730`` (days), ``1y 6mo``, ``2y 3d 4h 5m 6s``,
or an absolute date ``2030-12-31`` / ``2030-12-31 23:59:59``. Units may also be written out as people
type them: ``397 days``, ``1 year 6 months``, ``12 hours``."""

from __future__ import annotations

import calendar
import functools
import re
from datetime import UTC, datetime, timedelta

from ..ids import parse_decimal


class ValidityError(ValueError):
    """An expression that is not a validity."""


# Longest spellings first, so "mo" is not read as "m" and "days" not as "d".
_UNITS = {"years": "y", "year": "y", "yrs": "y", "yr": "y", "y": "y", "months": "mo", "month": "mo", "mo": "mo",
          "days": "d", "day": "d", "d": "d", "hours": "h", "hour": "h", "hrs": "h", "hr": "h", "h": "h",
          "minutes": "m", "minute": "m", "mins": "m", "min": "m", "m": "m",
          "seconds": "s", "second": "s", "secs": "s", "sec": "s", "s": "s"}
_UNIT_RE = re.compile(r"(\d+)\s*(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")(?![a-z])",
                      re.IGNORECASE)


def add_months(dt: datetime, months: int) -> datetime:
    month0 = dt.month - 1 + months
    year = dt.year + month0 // 12
    month = month0 % 12 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


def parse_absolute(text: str) -> datetime | None:
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=256)  # a profile's validity is read for every certificate it issues
def _relative(text: str, expr: str) -> tuple[int, timedelta]:
    """Months and the rest of a unit expression (``1y 6mo``, ``397 days``)."""
    pos = 0
    total_months = 0
    delta = timedelta()
    compact = text.replace(" ", "")
    for m in _UNIT_RE.finditer(compact):
        if m.start() != pos:
            raise ValidityError(f"Cannot read validity '{expr}'")
        pos = m.end()
        n, unit = int(m.group(1)), _UNITS[m.group(2).lower()]
        if unit == "y":
            total_months += 12 * n
        elif unit == "mo":
            total_months += n
        elif unit == "d":
            delta += timedelta(days=n)
        elif unit == "h":
            delta += timedelta(hours=n)
        elif unit == "m":
            delta += timedelta(minutes=n)
        else:
            delta += timedelta(seconds=n)
    if pos != len(compact) or pos == 0:
        raise ValidityError(f"Cannot read validity '{expr}': use days or units y mo d h m s, e.g. '1y 6mo'")
    return total_months, delta


def parse_validity(expr: str, start: datetime) -> datetime:
    """The end time for ``expr`` counted from ``start``."""
    text = (expr or "").strip()
    if not text:
        raise ValidityError("Validity is empty")
    days = parse_decimal(text)
    if days is not None:
        if days <= 0:
            raise ValidityError("Validity must be positive")
        return start + timedelta(days=days)
    absolute = parse_absolute(text) if re.match(r"^\d{4}-\d{2}-\d{2}", text) else None
    if absolute is not None:
        if absolute <= start:
            raise ValidityError(f"Validity end {text} is not after the start")
        return absolute
    total_months, delta = _relative(text, expr)
    end = add_months(start, total_months) + delta
    if end <= start:
        raise ValidityError("Validity must be positive")
    return end
