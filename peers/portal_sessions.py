"""CA side: the sessions of RA portal operators who logged in at an RA with the user name and password they have
here (the RA holds no users).

The RA carries one login (user name and password, in a work item it scrubs once the CA answered); this CA checks
it with its own login form (:class:`pki.views.auth.ThrottledAuthenticationForm`: the same throttling, lockout and
audit as a login here) and answers with the key of a new server-side session record. From then on the RA forwards
that key, never the password, with every carried page, and this CA checks the record each time:

* the key is a random session key of this CA's session store (guessing one is hopeless), looked up, never trusted;
* the record was made for an RA portal login through the **same peer connector** (an RA cannot use a session made
  through another RA, and a key of a browser session at the CA is not one of these records);
* the user still exists, is active and has the password of the login (Django's session auth hash): disabling or
  deleting the user, or changing the password, ends the session at the next page;
* the idle and absolute limits of browser sessions (:mod:`pki.http.sessions`) apply.

An operator may also log in at the RA with one of this CA's trusted OAuth providers (OpenID Connect): the RA asks
for the providers that allow a browser login, then carries the operator's choice; this CA builds the authorization
request (state, nonce, PKCE S256) with the RA's callback URL and keeps a **pending record** for it, bound to the
connector, whose random key is the ``state``. The provider sends the browser back to the RA, which carries the
code and state here: the pending record is taken (deleted, so a state works once) only through the connector it
was made through, this CA redeems the code at the provider's token endpoint, verifies the ID token with its own
OIDC login's checks (:mod:`pki.auth.oidc`: issuer, signature, audience = the client ID, the record's nonce), makes
or updates the same ``oauth-<provider>:<user>`` account, and answers with a session record as for a password
login, which also keeps the provider and the claims: on each page the caller is the OAuth actor of those claims
(the roles whose OAuth members match them), as at this CA's own OIDC login. A provider removed or no longer
trusted for browser logins ends the session at the next page.

The record holds no ``_auth_user_id``: its key presented as a cookie at the CA logs nobody in. A logout at the RA
deletes the record here. Each login, refusal and logout is in the audit log (``LOGIN``/``LOGOUT`` as for a login
here, plus the connector's ``PEER_REQUEST_CARRIED``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from importlib import import_module
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out

from pki.http.sessions import LAST_SEEN, LAST_SEEN_GRANULARITY, expired_reason, max_age

logger = logging.getLogger("peers")

USER = "_pki_ra_portal_user"
OAUTH = "_pki_ra_portal_oauth"
PENDING = "_pki_ra_portal_oidc_pending"
#: How long a started OIDC login waits for the provider's answer (seconds).
PENDING_SECONDS = 600
HASH = "_pki_ra_portal_hash"
CONNECTOR = "_pki_ra_portal_connector"
#: What a session key looks like (Django's: 32 of [a-z0-9]); anything else is refused before a lookup.
KEY_FORMAT = re.compile(r"[a-z0-9]{32,40}")


class SessionEnded(Exception):
    """The forwarded session is not (or no longer) a valid RA portal session of this connector."""


def _store(key: str | None = None):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)


def login(request, username: Any, password: Any, connector_pk: int,
          new_password: Any = None) -> tuple[str | None, Any, str]:
    """Check a carried login with this CA's own login form. Returns ``(session key, user, "")`` or
    ``(None, None, reason)``; the reason is ``"throttled:<seconds>"`` when the form refused it unchecked.

    A login that brings ``new_password`` replaces the password by this CA's own rules
    (:func:`pki.services.users.change_own_password`: Django's password validators, audited) before the session is
    made (``"new-password:<why>"`` when it is not accepted): how an operator at an RA changes their password, and
    must, when it is a one-time password (without ``new_password`` such a login is refused: ``"must-change"``). The
    new password changes the session auth hash, so the user's other RA portal sessions end at their next page."""
    from pki.auth import password_change
    from pki.errors import ValidationError
    from pki.services.users import change_own_password
    from pki.views.auth import ThrottledAuthenticationForm

    if not isinstance(username, str) or not isinstance(password, str) or len(username) > 150 or len(password) > 4096:
        return None, None, "unreadable"
    if new_password is not None and (not isinstance(new_password, str) or len(new_password) > 4096):
        return None, None, "unreadable"
    form = ThrottledAuthenticationForm(request, data={"username": username, "password": password})
    if not form.is_valid():
        if form.throttled is not None:
            return None, None, f"throttled:{form.throttled.retry_after}"
        return None, None, "invalid"
    user = form.get_user()
    if new_password is None and password_change.must_change(user):
        return None, None, "must-change"
    if new_password is not None:
        try:
            change_own_password(user, password, new_password)
        except ValidationError as exc:
            return None, None, f"new-password:{exc.message}"
        logger.info("RA portal login of %s with a new password", user.get_username())
    store = _store()
    store[USER] = str(user.pk)
    store[HASH] = user.get_session_auth_hash()
    store[CONNECTOR] = int(connector_pk)
    store.set_expiry(max_age())
    request.session = store
    # The same signal as a login here: the LOGIN audit event, the login clocks of pki.http.sessions, last_login.
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    store.create()
    logger.info("RA portal login of %s through connector %s", user.get_username(), connector_pk)
    return store.session_key, user, ""


def _load(key: Any, connector_pk: int | None):
    if not isinstance(key, str) or not KEY_FORMAT.fullmatch(key) or connector_pk is None:
        raise SessionEnded("not a session of this CA")
    store = _store(key)
    if USER not in store or store.get(CONNECTOR) != connector_pk:
        raise SessionEnded("not an RA portal session of this connector")
    return store


def user_of(key: Any, connector_pk: int | None):
    """The user of a forwarded RA portal session key, checked as the module doc says (raises
    :class:`SessionEnded`); ends a session that expired or whose user changed."""
    return _checked(_load(key, connector_pk))


def caller_of(key: Any, connector_pk: int | None):
    """``(user, actor)`` of a forwarded RA portal session key (checked as :func:`user_of`): the actor of a local
    user, or the OAuth actor of the claims an OIDC login kept (ended when its provider is no longer trusted)."""
    from pki.auth.access import actor_for_user
    from pki.auth.oauth import actor_for_oauth, provider_by_pk

    store = _load(key, connector_pk)
    user = _checked(store)
    oauth = store.get(OAUTH)
    if not isinstance(oauth, dict):
        return user, actor_for_user(user)
    provider = provider_by_pk(int(oauth.get("provider_id") or 0))
    row = _provider_row(oauth.get("provider_id"))
    if provider is None or row is None or not row.supports_browser_login:
        store.delete()
        logger.info("RA portal session of %s ended: its OAuth provider is no longer trusted", user.get_username())
        raise SessionEnded("the OAuth provider is no longer trusted")
    return user, actor_for_oauth(provider, oauth.get("claims") or {})


def _checked(store):
    now = int(time.time())
    reason = expired_reason(store, now)
    user = get_user_model().objects.filter(pk=store.get(USER)).first()
    if reason is None:
        if user is None:
            reason = "the user no longer exists"
        elif not user.is_active:
            reason = "the user is disabled"
        elif not hmac.compare_digest(str(store.get(HASH, "")), user.get_session_auth_hash()):
            reason = "the user's password changed"
    if reason is not None:
        store.delete()
        logger.info("RA portal session of user id %s ended: %s", store.get(USER), reason)
        raise SessionEnded(reason)
    last_seen = store.get(LAST_SEEN)
    if not isinstance(last_seen, int) or now - last_seen >= LAST_SEEN_GRANULARITY:
        store[LAST_SEEN] = now
        store.save()
    return user


def logout(request, key: Any, connector_pk: int | None) -> bool:
    """End a forwarded RA portal session here (the LOGOUT audit event); False when there was none."""
    try:
        store = _load(key, connector_pk)
    except SessionEnded:
        return False
    user = get_user_model().objects.filter(pk=store.get(USER)).first()
    store.delete()
    if user is not None:
        user_logged_out.send(sender=user.__class__, request=request, user=user)
    return True


# --- OpenID Connect login at an RA -------------------------------------------------------------------------

class OidcRefused(Exception):
    """A carried OIDC login step refused: ``shown`` is for the operator, ``code`` a fixed key of the reason (for
    the throttled audit summary), ``reason`` the detail for the server log and the audit log only."""

    def __init__(self, status: int, shown: str, code: str, reason: str = "", row=None):
        super().__init__(code)
        self.status, self.shown, self.code, self.reason, self.row = status, shown, code, reason or code, row


def _provider_row(pk: Any):
    from pki.models import TrustedOAuthProvider

    try:
        return TrustedOAuthProvider.objects.filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


def _pending_store(key: str | None = None):
    # Pending logins are rows of the database session store whatever SESSION_ENGINE is: taking one is a DELETE
    # whose row count says whether this was the first use (one-time by the database, across processes).
    from django.contrib.sessions.backends.db import SessionStore

    return SessionStore(session_key=key)


def oidc_providers() -> list[dict[str, Any]]:
    """The trusted providers an operator may log in with (id and label), as the CA's own login page lists them."""
    from pki.models import TrustedOAuthProvider

    return [{"id": row.pk, "label": row.label} for row in TrustedOAuthProvider.objects.order_by("label", "pk")
            if row.supports_browser_login]


def _callback_ok(value: Any) -> bool:
    """The RA's callback URL: an absolute http(s) URL of the RA's login page, nothing else (the provider checks it
    against the client's registered redirect URIs too)."""
    if not isinstance(value, str) or len(value) > 2048:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.hostname) and parts.path == "/ra/login/" \
        and not parts.query and not parts.fragment and not parts.username and not parts.password


def oidc_start(provider_id: Any, redirect_uri: Any, connector_pk: int) -> tuple[str, str]:
    """Start an OIDC login for an RA: ``(authorization URL, state)``; the pending record (nonce, PKCE verifier,
    provider, callback URL) is bound to the connector and its key is the state."""
    row = _provider_row(provider_id)
    if row is None or not row.supports_browser_login:
        raise OidcRefused(404, "no such OAuth provider for login", "unknown provider")
    if not _callback_ok(redirect_uri):
        raise OidcRefused(400, "the RA's callback URL is not its login page", "bad callback URL", row=row)
    nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    store = _pending_store()
    store[PENDING] = {"provider": row.pk, "nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri}
    store[CONNECTOR] = int(connector_pk)
    store.set_expiry(PENDING_SECONDS)
    store.create()
    params = {"response_type": "code", "client_id": row.client_id, "redirect_uri": redirect_uri,
              "scope": row.scopes, "state": store.session_key, "nonce": nonce, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    separator = "&" if urlsplit(row.authorization_endpoint).query else "?"
    return f"{row.authorization_endpoint}{separator}{urlencode(params)}", store.session_key


def _take_pending(state: Any, connector_pk: int) -> dict[str, Any]:
    """The pending record of ``state`` made through this connector, deleted (a state works once)."""
    from django.contrib.sessions.models import Session

    if not isinstance(state, str) or not KEY_FORMAT.fullmatch(state):
        raise OidcRefused(400, "no login was started for this reply", "unknown state")
    store = _pending_store(state)
    pending = store.get(PENDING)
    if not isinstance(pending, dict) or store.get(CONNECTOR) != connector_pk:
        # Unknown, expired, used, or started through another RA: that one's record stays for its own RA.
        raise OidcRefused(400, "no login was started for this reply", "state of no login started through this RA")
    deleted, _ = Session.objects.filter(session_key=state).delete()
    if not deleted:
        raise OidcRefused(400, "no login was started for this reply", "state already used")
    return pending


def oidc_finish(request, code: Any, state: Any, error: Any, connector_pk: int) -> tuple[str, Any, str]:
    """Finish an OIDC login an RA carried: ``(session key, user, actor name)``, or :class:`OidcRefused`."""
    import requests
    from django.core.exceptions import SuspiciousOperation

    from pki.auth.oauth import TokenRefused, actor_name
    from pki.auth.oidc import ProviderOIDCBackend

    pending = _take_pending(state, connector_pk)
    row = _provider_row(pending.get("provider"))
    if row is None or not row.supports_browser_login:
        raise OidcRefused(403, "the OAuth provider is not trusted for login", "provider not trusted")
    if error:
        text = str(error)[:64]
        shown = text if re.fullmatch(r"[A-Za-z0-9_.-]+", text) else "an error"
        raise OidcRefused(401, f"the provider answered {shown}", "provider error", f"the provider answered {shown}",
                          row=row)
    if not isinstance(code, str) or not code or len(code) > 4096:
        raise OidcRefused(400, "the provider's reply has no code", "no code", row=row)
    backend = ProviderOIDCBackend()
    backend.configure(row)
    try:
        token = backend.get_token({"client_id": row.client_id, "client_secret": backend.OIDC_RP_CLIENT_SECRET,
                                   "grant_type": "authorization_code", "code": code,
                                   "redirect_uri": pending["redirect_uri"], "code_verifier": pending["verifier"]})
        if not isinstance(token, dict):
            raise ValueError("not a JSON object")
        id_token = token.get("id_token")
        payload = backend.verify_token(id_token, nonce=pending["nonce"])
        user = backend.get_or_create_user(token.get("access_token"), id_token, payload)
    except TokenRefused as exc:
        raise OidcRefused(401, "the ID token was not accepted", f"ID token refused: {exc.code}",
                          f"ID token refused: {exc.reason}", row=row) from None
    except SuspiciousOperation as exc:
        raise OidcRefused(401, "the provider did not authenticate the user", str(exc)[:80], row=row) from None
    except (requests.RequestException, ValueError, KeyError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "")
        raise OidcRefused(401, "the provider did not accept the login", "token endpoint failed",
                          f"the provider's token endpoint failed ({exc.__class__.__name__} {status})".strip(),
                          row=row) from None
    if user is None or not user.is_active:
        raise OidcRefused(403, "the account is disabled", "account disabled", row=row)
    oauth = getattr(user, "pki_oauth_session", None) or {"provider_id": row.pk, "claims": {}}
    store = _store()
    store[USER] = str(user.pk)
    store[HASH] = user.get_session_auth_hash()
    store[CONNECTOR] = int(connector_pk)
    store[OAUTH] = oauth
    store.set_expiry(max_age())
    request.session = store
    user_logged_in.send(sender=user.__class__, request=request, user=user)  # LOGIN audit, as a login here
    store.create()
    name = actor_name(backend.provider, oauth.get("claims") or payload)
    logger.info("RA portal OIDC login of %s through connector %s", name, connector_pk)
    return store.session_key, user, name


def run_oidc(request, step: Any, connector_pk: int | None) -> dict[str, Any]:
    """One carried OIDC login step (``{"action": "providers" | "start" | "finish", ...}``) as the RA's answer."""
    import json

    from django.utils.html import escape

    from pki.auth import refusals
    from pki.auth.oidc import AUDIT_EVENT

    def answer(status: int, content_type: str, body: bytes, actor: str = "") -> dict[str, Any]:
        return {"status": status, "content_type": content_type, "body": base64.b64encode(body).decode(),
                "headers": {}, "actor": actor, "messages": []}

    def json_answer(data: dict[str, Any], actor: str = "") -> dict[str, Any]:
        return answer(200, "application/json", json.dumps(data).encode(), actor)

    def portal_page(text: str, status: int) -> dict[str, Any]:  # as carried_http.portal_page (no import circle)
        return answer(status, "text/html; charset=utf-8", f"<!doctype html><title>RA</title><p>{escape(text)}</p>"
                      .encode())

    step = step if isinstance(step, dict) else {}
    if connector_pk is None:
        return portal_page("A login is carried by a peer connector only.", 400)
    action = step.get("action")
    try:
        if action == "providers":
            return json_answer({"providers": oidc_providers()})
        if action == "start":
            url, state = oidc_start(step.get("provider"), step.get("redirect_uri"), connector_pk)
            return json_answer({"authorization_url": url, "state": state})
        if action == "finish":
            key, user, name = oidc_finish(request, step.get("code"), step.get("state"), step.get("error"),
                                          connector_pk)
            return json_answer({"session": key, "username": name}, actor=user.get_username())
    except OidcRefused as exc:
        label = exc.row.label if exc.row is not None else ""
        refusals.record("RA portal OIDC login", AUDIT_EVENT, exc.code, exc.reason, actor="oidc-login",
                        ip=request.META.get("REMOTE_ADDR", ""), object_type="oauth_provider",
                        object_id=exc.row.pk if exc.row is not None else "",
                        details={"provider": label, "connector": connector_pk})
        return portal_page(f"Login{' with ' + label if label else ''} failed: {exc.shown}.", exc.status)
    return portal_page("Not a step of an OIDC login.", 400)
