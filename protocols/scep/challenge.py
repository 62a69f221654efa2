"""What every RA-mode challenge validator works with: the request it sees (:class:`ChallengeContext`), the
refusal it raises (:class:`ChallengeRefused`), the interface it implements (:class:`ChallengeValidator`) and
the alias's encrypted settings it reads (:func:`secret`: the RA shared secret, the Intune keys).

Its own module, below :mod:`.validators` (which picks the validator of an alias), :mod:`.intune` (one such
validator) and :mod:`.services` (which edits the settings), so none of those has to import another to use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptotokens.secrets import decrypt_secret

if TYPE_CHECKING:
    from .models import ScepAlias


class ChallengeRefused(Exception):
    """The challenge is wrong or could not be checked; the text is logged, never sent to the client."""


@dataclass
class ChallengeContext:
    """What a validator sees of one request."""

    transaction_id: str
    challenge_password: str
    csr_der: bytes
    username: str = ""


class ChallengeValidator(Protocol):
    def __init__(self, alias: ScepAlias) -> None: ...

    def validate(self, ctx: ChallengeContext) -> None:
        """Return to accept; raise ChallengeRefused to refuse."""

    def notify_success(self, ctx: ChallengeContext, certificate_der: bytes) -> None: ...

    def notify_failure(self, ctx: ChallengeContext, reason: str) -> None: ...


def secret(alias: ScepAlias, field: str) -> str:
    """The plaintext of an encrypted setting ('' when none is set)."""
    stored = getattr(alias, field)
    if not stored:
        return ""
    return decrypt_secret(stored, alias.secret_context(field)).decode()
