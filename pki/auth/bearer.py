"""DRF authentication with OAuth bearer tokens (``Authorization: Bearer <JWT>``).

A refused token answers 401 with ``WWW-Authenticate: Bearer error="invalid_token", error_description=...``
(RFC 6750 section 3) and writes an ``OAUTH_LOGIN`` FAILURE audit event naming the reason and the provider;
the token is never logged, audited or echoed.
"""

from __future__ import annotations

import logging

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .. import audit
from .oauth import TokenRefused, VerifiedToken, actor_name, verify_bearer

logger = logging.getLogger("pki.auth.bearer")

AUDIT_EVENT = "OAUTH_LOGIN"
_ERROR_ATTR = "_pki_bearer_error"


class OAuthUser:
    """``request.user`` of a bearer-authenticated API call: no database row, just who the token names.

    ``pki_oauth`` carries the verified token; ``actor_for_request`` builds the actor's roles from it.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, verified: VerifiedToken):
        self.pki_oauth = verified
        self.username = actor_name(verified.provider, verified.claims)

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


def _quoted(text: str) -> str:
    # error_description is a quoted-string of visible ASCII without " and \ (RFC 6750 section 3).
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


class BearerTokenAuthentication(BaseAuthentication):
    """Accept JWT access tokens of trusted OAuth providers; other schemes are left to the next class."""

    def authenticate(self, request):
        header = get_authorization_header(request)
        scheme, _, rest = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        token = rest.strip()
        try:
            if not token or b" " in token:
                raise TokenRefused("malformed Authorization header")
            try:
                text = token.decode("ascii")
            except UnicodeDecodeError:
                raise TokenRefused("malformed token") from None
            verified = verify_bearer(text)
        except TokenRefused as exc:
            self._refuse(request, exc)
        return OAuthUser(verified), verified

    def _refuse(self, request, exc: TokenRefused) -> None:
        provider = exc.provider
        setattr(request, _ERROR_ATTR, exc.reason)
        details = {"ip": request.META.get("REMOTE_ADDR", ""), "provider": provider.label if provider else ""}
        audit.record_failure(AUDIT_EVENT, "bearer-token", exc.reason, object_type="oauth_provider",
                             object_id=provider.pk if provider else "", details=details)
        logger.info("bearer token refused (%s) from provider %s", exc.reason, details["provider"] or "-")
        raise exceptions.AuthenticationFailed(f"Bearer token refused: {exc.reason}")

    def authenticate_header(self, request) -> str:
        """The 401 challenge: the precise error after a refused token, else both schemes on offer."""
        reason = getattr(request, _ERROR_ATTR, None)
        if reason is None and hasattr(request, "_request"):
            reason = getattr(request._request, _ERROR_ATTR, None)
        if reason is not None:
            return f'Bearer error="invalid_token", error_description="{_quoted(reason)}"'
        # Basic first so clients that only speak Basic keep recognising the challenge.
        return 'Basic realm="api", Bearer realm="pki"'
