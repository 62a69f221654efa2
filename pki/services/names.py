"""Names that administrators give objects (profiles, roles): trimmed, required, within their column, printable."""

from __future__ import annotations

from ..errors import ValidationError


def clean_name(name: str | None, what: str, max_length: int = 255) -> str:
    """``name`` trimmed, or ValidationError (on field ``name``) when it is empty, longer than ``max_length`` or holds
    a control character (a NUL is what PostgreSQL's text cannot hold at all: a view that read the name straight
    from the request, without a form, sent it on to the INSERT)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError(f"A {what} needs a name.", field="name")
    if len(name) > max_length:
        raise ValidationError(f"A {what} name is at most {max_length} characters.", field="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError(f"A {what} name cannot hold control characters.", field="name")
    return name
