"""DRF authentication with OAuth bearer tokens (``Authorization: Bearer <JWT>``).

A refused token answers 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 section 3)
and one fixed description whatever the reason: the reply must not tell a caller which issuers are trusted,
which algorithms are allowed or which keys exist. The reason goes to the server log (rate limited) and to a
throttled ``OAUTH_LOGIN`` FAILURE audit summary (:mod:`pki.auth.refusals`), never one row per request; the
token is never logged, audited or echoed.
"""

from __future__ import annotations

import logging

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from . import refusals
from .oauth import TokenRefused, VerifiedToken, actor_name, verify_bearer

logger = logging.getLogger("pki.auth.bearer")

AUDIT_EVENT = "OAUTH_LOGIN"
_ERROR_ATTR = "_pki_bearer_error"
# The one reply to every refused token (RFC 6750 error_description: visible ASCII without " and \).
REFUSED_DESCRIPTION = "The access token is invalid"
REFUSED_MESSAGE = "Bearer token refused."


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
        setattr(request, _ERROR_ATTR, True)
        refusals.record("bearer token", AUDIT_EVENT, exc.code, exc.reason, actor="bearer-token",
                        ip=request.META.get("REMOTE_ADDR", ""), object_type="oauth_provider",
                        object_id=provider.pk if provider else "",
                        details={"provider": provider.label if provider else ""})
        raise exceptions.AuthenticationFailed(REFUSED_MESSAGE)

    def authenticate_header(self, request) -> str:
        """The 401 challenge: ``invalid_token`` after a refused token, else both schemes on offer."""
        refused = getattr(request, _ERROR_ATTR, None)
        if refused is None and hasattr(request, "_request"):
            refused = getattr(request._request, _ERROR_ATTR, None)
        if refused is not None:
            return f'Bearer error="invalid_token", error_description="{REFUSED_DESCRIPTION}"'
        # Basic first so clients that only speak Basic keep recognising the challenge.
        return 'Basic realm="api", Bearer realm="pki"'
