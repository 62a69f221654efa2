"""HTTP Basic authentication for the REST API, made cheap to refuse and cheap to repeat.

A local account's password hash costs ~0.7 s of CPU to check (PBKDF2 with Django's rounds), for unknown
users too (Django hashes a dummy password so both take as long). DRF's own class paid that on every request,
so a few clients sending wrong passwords could stall the server, and a right client paid it on each call.
Here, in this order:

1. The header is read strictly: base64, UTF-8, ``user:password``, no control characters (a NUL reached the
   database), nothing absurdly long. Anything else is 401 before the database is asked anything.
2. A credential that succeeded in the last ``PKI_BASIC_AUTH_CACHE_SECONDS`` is accepted without hashing: the
   shared cache maps an HMAC of user name and password under a server secret (never the password) to the
   user and a fingerprint of the stored hash, so a changed password or a disabled user misses the cache.
3. A client address or an account name with too many recent failures (:mod:`pki.auth.throttle`) is answered
   429 with ``Retry-After``, before any hashing.
4. Otherwise the password is checked (Django's backends); a failure is counted for the address and the
   account name, whether it exists or not, and answered 401 like an unknown user.
5. A right one-time password (set by an administrator, not yet replaced by its owner) is 403 and not
   remembered: as in the browser, it opens nothing until it was changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import unicodedata

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from . import password_change, throttle

logger = logging.getLogger("pki.auth.basic")

MAX_USERNAME = 150  # Django's username length
MAX_PASSWORD = 1024
# base64 of the longest acceptable "user:password" in UTF-8 (4 bytes a character at most), with slack.
_MAX_ENCODED = 4 * ((MAX_USERNAME + MAX_PASSWORD + 1) * 4 // 3 + 4)
INVALID = "Invalid username/password."


def _secret() -> bytes:
    # A key of its own, derived from Django's: cache keys reveal nothing even to someone who reads the cache.
    return hmac.new(settings.SECRET_KEY.encode(), b"pki.auth.basic success cache", hashlib.sha256).digest()


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def parse_credentials(header: bytes) -> tuple[str, str]:
    """``user, password`` of the base64 part of a Basic header; AuthenticationFailed (401) when malformed."""
    if len(header) > _MAX_ENCODED:
        raise exceptions.AuthenticationFailed("Invalid basic header. Credentials too long.")
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise exceptions.AuthenticationFailed("Invalid basic header. Credentials not correctly base64/UTF-8 "
                                              "encoded.") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        raise exceptions.AuthenticationFailed("Invalid basic header. Credentials are not user:password.")
    if _has_control(username) or _has_control(password):
        raise exceptions.AuthenticationFailed("Invalid basic header. Credentials contain control characters.")
    if len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
        raise exceptions.AuthenticationFailed("Invalid basic header. Credentials too long.")
    return username, password


def _cache_key(username: str, password: str) -> str:
    mac = hmac.new(_secret(), username.encode() + b"\0" + password.encode(), hashlib.sha256).hexdigest()
    return f"pki:basic:{mac}"


def _fingerprint(user) -> str:
    """Changes whenever the stored password hash changes (set_password salts afresh)."""
    return hmac.new(_secret(), (user.password or "").encode(), hashlib.sha256).hexdigest()


def _cached_user(key: str):
    hit = cache.get(key)
    if not hit:
        return None
    pk, fingerprint = hit
    user = get_user_model()._default_manager.filter(pk=pk).first()
    if user is None or not user.is_active or not hmac.compare_digest(fingerprint, _fingerprint(user)):
        cache.delete(key)  # password changed, user disabled or removed: check from scratch
        return None
    return user


class BasicAuthentication(BaseAuthentication):
    """``Authorization: Basic`` for local accounts (see the module doc); other schemes go to the next class."""

    www_authenticate_realm = "api"

    def authenticate(self, request):
        scheme, _, rest = get_authorization_header(request).partition(b" ")
        if scheme.lower() != b"basic":
            return None
        rest = rest.strip()
        if not rest or b" " in rest:
            raise exceptions.AuthenticationFailed("Invalid basic header.")
        ip = throttle.client_address(request)
        try:
            username, password = parse_credentials(rest)
        except exceptions.AuthenticationFailed as exc:
            logger.info("malformed Basic credentials from %s: %s", ip, exc.detail)
            raise
        key = _cache_key(username, password)
        user = _cached_user(key)
        if user is not None:
            return user, None
        try:
            throttle.check((throttle.ADDRESS, ip), (throttle.ACCOUNT, username))
        except throttle.Throttled as exc:
            logger.info("Basic login for %r from %s refused unchecked: throttled for %d s", username, ip,
                        exc.retry_after)
            raise exceptions.Throttled(wait=exc.retry_after, detail=exc.message) from None
        user = authenticate(request=getattr(request, "_request", request), username=username, password=password)
        if user is None or not user.is_active:
            throttle.record_failure(throttle.ADDRESS, ip, ip=ip)
            throttle.record_failure(throttle.ACCOUNT, username, ip=ip)
            raise exceptions.AuthenticationFailed(INVALID)
        throttle.reset(throttle.ACCOUNT, username)
        if password_change.must_change(user):
            # As in the browser (pki.auth.password_change): a one-time password an administrator set opens
            # nothing until its owner replaced it. Not remembered either, so every try is checked again.
            logger.info("Basic login for %r refused: one-time password not yet changed", username)
            raise exceptions.PermissionDenied(password_change.MESSAGE)
        ttl = int(getattr(settings, "PKI_BASIC_AUTH_CACHE_SECONDS", 60))
        if ttl > 0:
            cache.set(key, (user.pk, _fingerprint(user)), timeout=ttl)
        return user, None

    def authenticate_header(self, request) -> str:
        return f'Basic realm="{self.www_authenticate_realm}"'
