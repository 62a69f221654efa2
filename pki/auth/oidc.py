"""Browser login through trusted OAuth providers with mozilla-django-oidc, one provider per login attempt.

mozilla-django-oidc reads one provider from settings; here its views and backend are subclassed so the
provider travels with the login attempt instead: the login view stores the provider's id in the
session's entry for the attempt's ``state`` (next to the nonce and PKCE verifier mozilla keeps there),
and the callback hands that provider to the backend. The authorization code flow runs with PKCE (S256),
state and nonce; the ID token is verified by :mod:`pki.auth.oauth` (the provider's cached JWKS, issuer,
audience = our client ID, nonce).

The Django user is ``oauth-<provider id>:<user claim>`` so two providers cannot share an account; the
session keeps the provider and the claims role members match on (``pki_oauth``). A provider whose user
claim is ``email`` logs in only users whose address it has verified (``email_verified``).

A failed login is shown to the user without the ID token's refusal reason (no oracle for which algorithms
or keys are accepted); the reason goes to the server log and a throttled audit summary
(:mod:`pki.auth.refusals`), as the callback can be requested by anyone any number of times.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from . import refusals
from .oauth import SESSION_KEY, ProviderConfig, TokenRefused, email_verified, oidc_username, verify_id_token

logger = logging.getLogger("pki.auth.oidc")

PROVIDER_ATTR = "_pki_oidc_provider"
STATE_PROVIDER_KEY = "pki_provider_id"
AUDIT_EVENT = "OAUTH_LOGIN"
# Claims that only describe the token itself: not kept in the session.
_TOKEN_CLAIMS = {"nonce", "at_hash", "c_hash", "s_hash", "sid", "auth_time", "iat", "exp", "nbf", "aud", "azp",
                 "iss", "jti", "acr", "amr"}
_MAX_SESSION_CLAIMS_CHARS = 8192


def _provider_row(pk: Any):
    from ..models import TrustedOAuthProvider

    try:
        return TrustedOAuthProvider.objects.filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def session_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The claims worth keeping for role matching: strings and lists of strings, bounded in size."""
    kept: dict[str, Any] = {}
    size = 0
    for name, value in claims.items():
        if name in _TOKEN_CLAIMS:
            continue
        if name == "email_verified":  # e-mail members match only verified addresses
            value = "true" if email_verified(claims) else "false"
        if isinstance(value, list):
            value = [v for v in value if isinstance(v, str)]
        elif not isinstance(value, str):
            continue
        size += len(name) + len(str(value))
        if size > _MAX_SESSION_CLAIMS_CHARS:
            break
        kept[name] = value
    return kept


class ProviderOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend configured per login attempt from a ``TrustedOAuthProvider``."""

    def __init__(self, *args, **kwargs):
        # mozilla reads single-provider settings here; ours come from the provider of each attempt.
        self.UserModel = get_user_model()
        self.provider_row = None
        self.provider: ProviderConfig | None = None

    def get_settings(self, attr, *args):
        if attr == "OIDC_RP_SCOPES" and self.provider_row is not None:
            return self.provider_row.scopes
        return import_from_settings(attr, *args)

    def authenticate(self, request, **kwargs):
        row = getattr(request, PROVIDER_ATTR, None) if request is not None else None
        if row is None or "nonce" not in kwargs:
            return None  # not an OIDC callback (a password login, say)
        self.configure(row)
        return super().authenticate(request, **kwargs)

    def configure(self, row) -> None:
        """Use the endpoints and client of the provider ``row`` (also for a login an RA carried here)."""
        self.provider_row = row
        self.provider = ProviderConfig.from_model(row)
        self.OIDC_OP_TOKEN_ENDPOINT = row.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = row.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = row.jwks_uri
        self.OIDC_RP_CLIENT_ID = row.client_id
        self.OIDC_RP_CLIENT_SECRET = row.get_client_secret()

    def verify_token(self, token, **kwargs):
        """The ID token, verified against the provider's cached JWKS with our client ID as audience."""
        if not token:
            raise TokenRefused("the provider returned no ID token", self.provider)
        return verify_id_token(self.provider, token, self.OIDC_RP_CLIENT_ID, kwargs.get("nonce"))

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims, completed from the userinfo endpoint when the provider has one."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT and access_token:
            try:
                info = super().get_userinfo(access_token, id_token, payload)
            except requests.RequestException as exc:
                logger.warning("OIDC userinfo of provider %s failed: %s", self.provider.label,
                               exc.__class__.__name__)
            else:
                # OIDC core 5.3.2: userinfo about another subject must not be used.
                if isinstance(info, dict) and info.get("sub") == payload.get("sub"):
                    claims = {**info, **payload}
        return claims

    def verify_claims(self, claims) -> bool:
        value = claims.get(self.provider.user_claim)
        if self.provider.user_claim == "email" and not email_verified(claims):
            # The account is named by the address: an unverified one could be anybody's.
            logger.warning("OIDC login with provider %s refused: email not verified", self.provider.label)
            return False
        return isinstance(value, str) and bool(value)

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=self._username(claims))

    def _username(self, claims) -> str:
        return oidc_username(self.provider, claims[self.provider.user_claim])

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(self._username(claims), email=claims.get("email") or "")
        return self._mark(user, claims)

    def update_user(self, user, claims):
        email = claims.get("email") or ""
        if email and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        return self._mark(user, claims)

    def _mark(self, user, claims):
        # Picked up by the callback view after auth.login(), which may flush the session.
        user.pki_oauth_session = {"provider_id": self.provider.pk, "claims": session_claims(claims)}
        return user


class ProviderLoginView(OIDCAuthenticationRequestView):
    """``/oidc/<provider id>/login/``: redirect to the provider's authorization endpoint."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # mozilla's __init__ reads single-provider settings
        self.row = None

    def get_settings(self, attr, *args):
        if attr == "OIDC_RP_SCOPES" and self.row is not None:
            return self.row.scopes
        return import_from_settings(attr, *args)

    def get(self, request, provider_id: int):
        row = _provider_row(provider_id)
        if row is None or not row.supports_browser_login:
            raise Http404("No such OAuth provider for browser login")
        self.row = row
        self.OIDC_OP_AUTH_ENDPOINT = row.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = row.client_id
        response = super().get(request)
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        request.session["oidc_states"][state][STATE_PROVIDER_KEY] = row.pk
        request.session.modified = True
        return response


class ProviderCallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: finish the attempt with the provider recorded for its ``state``."""

    failure_reason = ""
    failure_code = ""
    shown_reason = ""  # what the user sees, when it must say less than failure_reason
    provider_row = None

    def get(self, request):
        state = request.GET.get("state", "")
        entry = request.session.get("oidc_states", {}).get(state) if state else None
        row = _provider_row(entry.get(STATE_PROVIDER_KEY)) if isinstance(entry, dict) else None
        self.provider_row = row
        if row is None:
            self.failure_reason = "no login attempt matches this reply (state)"
            return self.login_failure()
        if request.GET.get("error"):
            # The provider's own error code (access_denied, ...): a fixed vocabulary, safe to show.
            self.failure_reason = f"the provider answered {request.GET['error'][:64]}"
        setattr(request, PROVIDER_ATTR, row)
        try:
            return super().get(request)
        except TokenRefused as exc:
            self.failure_reason = f"ID token refused: {exc.reason}"
            self.failure_code = f"ID token refused: {exc.code}"
            self.shown_reason = "the ID token was not accepted"
        except SuspiciousOperation as exc:
            self.failure_reason = str(exc)[:200]
        except requests.RequestException as exc:
            status = getattr(getattr(exc, "response", None), "status_code", "")
            self.failure_reason = f"the provider's token endpoint failed ({exc.__class__.__name__} {status})".strip()
        return self.login_failure()

    def login_failure(self):
        label = self.provider_row.label if self.provider_row is not None else ""
        reason = self.failure_reason or "the provider did not authenticate the user"
        # The code keys the throttling: a fixed text, not the provider's error string or a quoted alg.
        code = self.failure_code or ("provider error" if reason.startswith("the provider answered") else reason[:80])
        refusals.record("OIDC login", AUDIT_EVENT, code, reason, actor="oidc-login",
                        ip=self.request.META.get("REMOTE_ADDR", ""), object_type="oauth_provider",
                        object_id=self.provider_row.pk if self.provider_row is not None else "",
                        details={"provider": label})
        shown = self.shown_reason or reason
        messages.error(self.request, f"Login{' with ' + label if label else ''} failed: {shown}")
        return redirect("login")

    def login_success(self):
        response = super().login_success()
        data = getattr(self.user, "pki_oauth_session", None)
        if data is not None:
            self.request.session[SESSION_KEY] = data
        return response


def end_session_url(request, row) -> str | None:
    """Where to send the browser to end the provider's session too (RP-initiated logout), if it can."""
    if row is None or not row.end_session_endpoint:
        return None
    params = {"client_id": row.client_id, "post_logout_redirect_uri": request.build_absolute_uri(reverse("login"))}
    separator = "&" if urlsplit(row.end_session_endpoint).query else "?"
    return f"{row.end_session_endpoint}{separator}{urlencode(params)}"

