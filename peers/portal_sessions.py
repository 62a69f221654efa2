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

The record holds no ``_auth_user_id``: its key presented as a cookie at the CA logs nobody in. A logout at the RA
deletes the record here. Each login, refusal and logout is in the audit log (``LOGIN``/``LOGOUT`` as for a login
here, plus the connector's ``PEER_REQUEST_CARRIED``).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out

from pki.http.sessions import LAST_SEEN, LAST_SEEN_GRANULARITY, expired_reason, max_age

logger = logging.getLogger("peers")

USER = "_pki_ra_portal_user"
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

    A user holding a one-time password is refused (``"must-change"``) unless the login brings ``new_password``:
    then the one-time password is replaced by this CA's own rules (:func:`pki.services.users.change_own_password`:
    Django's password validators, audited) before the session is made; ``"new-password:<why>"`` when it is not
    accepted."""
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
    if password_change.must_change(user):
        if new_password is None:
            return None, None, "must-change"
        try:
            change_own_password(user, password, new_password)
        except ValidationError as exc:
            return None, None, f"new-password:{exc.message}"
        logger.info("RA portal login of %s: the one-time password replaced", user.get_username())
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
    store = _load(key, connector_pk)
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
