"""Small formatting helpers for values the templates show."""

from __future__ import annotations

from datetime import timedelta


def duration_text(value: timedelta | None) -> str:
    """A duration as an operator reads it: ``10 min``, ``1 h 30 min``, ``24 h``, ``3 d 12 h``, ``90 s``;
    hours up to two days, days beyond; zero is ``0``."""
    if not value:
        return "0"
    seconds = int(value.total_seconds())
    if seconds % 60:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    days = 0
    if hours >= 48:
        days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n)


def crl_timing(ca) -> dict[str, str]:
    """A CA's CRL period, overlap and delta CRL period as text."""
    return {"period": duration_text(ca.crl_period), "overlap": duration_text(ca.crl_overlap),
            "delta": duration_text(ca.delta_crl_period)}
