"""Challenge validators for RA mode: who decides whether a PKCSReq's challengePassword is good.

The default compares it with the alias's RA shared secret (``ra.authPwd``; with none set every request is
refused, where EJBCA would accept any). An alias may name another class by dotted path (``challengeValidator``), e.g.
:class:`protocols.scep.intune.IntuneValidator`, which asks Microsoft Intune. A validator is constructed
with the alias and called once per PKCSReq; it raises :class:`ChallengeRefused` to refuse (the client
gets a CertRep FAILURE badRequest) and may be told the outcome afterwards (Intune wants to know).
"""

from __future__ import annotations

import hmac
import logging
from importlib import import_module
from typing import TYPE_CHECKING

from pki.errors import ValidationError

from .challenge import ChallengeContext, ChallengeRefused, ChallengeValidator, secret
from .intune import IntuneValidator

if TYPE_CHECKING:
    from .models import ScepAlias


class SharedSecretValidator:
    """The RA authentication password (EJBCA's ``ra.authPwd``)."""

    def __init__(self, alias: ScepAlias) -> None:
        self.expected = secret(alias, "ra_auth_password")

    def validate(self, ctx: ChallengeContext) -> None:
        if not self.expected:
            # EJBCA's empty ra.authPwd accepts anyone; here such an alias cannot be saved enabled, and one saved
            # before that rule (or whose secret went missing) refuses rather than issue to whoever asks.
            raise ChallengeRefused("the alias has neither an RA shared secret nor a challenge validator: "
                                   "RA mode refuses every request until one is set")
        from pki.auth import throttle

        # Guessing budget per client address (shared by every process): refused before any comparison.
        address = throttle.current_client_address()
        try:
            throttle.check((throttle.SCEP_RA, address))
        except throttle.Throttled as exc:
            logging.getLogger("protocols.scep").info("RA shared secret from %s refused unchecked (%d s left)",
                                                     address, exc.retry_after)
            raise ChallengeRefused(f"too many wrong RA shared secrets from {address}; refused unchecked for "
                                   f"{exc.retry_after} s") from None
        if not hmac.compare_digest(ctx.challenge_password.encode(), self.expected.encode()):
            throttle.record_failure(throttle.SCEP_RA, address, ip=address)
            raise ChallengeRefused("the challenge password is not the alias's RA shared secret")

    def notify_success(self, ctx: ChallengeContext, certificate_der: bytes) -> None:
        pass

    def notify_failure(self, ctx: ChallengeContext, reason: str) -> None:
        pass


def load_validator_class(path: str) -> type:
    """The class at dotted ``path`` (ValidationError when it cannot be imported or is not a validator)."""
    module_name, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError):
        raise ValidationError(f"Challenge validator '{path}' cannot be imported.", field="challenge_validator") \
            from None
    if not callable(getattr(cls, "validate", None)):
        raise ValidationError(f"'{path}' has no validate() method.", field="challenge_validator")
    return cls


def validator_for(alias: ScepAlias) -> ChallengeValidator:
    """The validator of an RA-mode alias."""
    if alias.challenge_validator:
        return load_validator_class(alias.challenge_validator)(alias)
    if alias.use_intune:
        return IntuneValidator(alias)
    return SharedSecretValidator(alias)
