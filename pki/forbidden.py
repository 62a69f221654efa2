"""EJBCA's "forbidden characters": refused in subject DN values, alt names, usernames and e-mail addresses,
of end entities and of CAs alike (setting ``PKI_FORBIDDEN_CHARACTERS``)."""

from __future__ import annotations

import re
from functools import lru_cache

from django.conf import settings

from .errors import ValidationError

# EJBCA's default forbidden characters (its "forbidden.characters" setting): \n \r ; ! \0 % ` ? $ ~
DEFAULT_FORBIDDEN_CHARACTERS = "\n\r;!\0%`?$~"


def forbidden_characters() -> str:
    """The characters refused in DN values, alt names, usernames and e-mail addresses
    (setting ``PKI_FORBIDDEN_CHARACTERS``; empty string: none)."""
    value = getattr(settings, "PKI_FORBIDDEN_CHARACTERS", None)
    return DEFAULT_FORBIDDEN_CHARACTERS if value is None else value


@lru_cache(maxsize=8)
def _forbidden_re(chars: str) -> re.Pattern[str] | None:
    return re.compile("[" + re.escape(chars) + "]") if chars else None


def has_forbidden(text: str, chars: str | None = None) -> bool:
    """Whether ``text`` holds any forbidden character (a quick test of a whole DN or alt-name string)."""
    pattern = _forbidden_re(forbidden_characters() if chars is None else chars)
    return pattern is not None and pattern.search(text) is not None


def check_forbidden(value: str, what: str, field: str, chars: str | None = None) -> None:
    """Refuse ``value`` if it holds a forbidden character; the message names the character.
    ``chars``: the forbidden characters when the caller already read them (hot loops)."""
    pattern = _forbidden_re(forbidden_characters() if chars is None else chars)
    if pattern is not None:
        m = pattern.search(value)
        if m:
            raise ValidationError(f"{what} contains the forbidden character {m.group()!r}.", field=field)
