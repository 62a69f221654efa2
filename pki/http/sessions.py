"""Server-side limits of a logged-in browser session: an idle timeout and an absolute lifetime.

``PKI_SESSION_IDLE_TIMEOUT`` (seconds, default 30 minutes): a session not used for that long is logged out.
``PKI_SESSION_MAX_AGE`` (seconds, default 12 hours): a session is logged out that long after the login, however
active it was. Both are checked on the server on every request, from times kept in the session itself, so a
stolen or left-behind cookie stops working even if the browser keeps sending it. The cookie and the stored
session also expire after ``PKI_SESSION_MAX_AGE`` (``SESSION_COOKIE_AGE``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("pki.http")

LOGIN_TIME = "_pki_login_time"
LAST_SEEN = "_pki_last_seen"
# The last-seen time is written at most this often, so a busy page does not save its session on every request.
LAST_SEEN_GRANULARITY = 60


def idle_timeout() -> int:
    return int(getattr(settings, "PKI_SESSION_IDLE_TIMEOUT", 1800))


def max_age() -> int:
    return int(getattr(settings, "PKI_SESSION_MAX_AGE", 12 * 3600))


@receiver(user_logged_in, dispatch_uid="pki.http.sessions.stamp_login")
def stamp_login(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """A login starts the clocks (also when the same user logs in again into a kept session)."""
    session = getattr(request, "session", None)
    if session is not None:
        now = int(time.time())
        session[LOGIN_TIME] = now
        session[LAST_SEEN] = now


def expired_reason(session, now: int) -> str | None:
    """Why this logged-in session is over ("idle", "max-age"), or None."""
    login_time, last_seen = session.get(LOGIN_TIME), session.get(LAST_SEEN)
    if isinstance(login_time, int) and now - login_time > max_age():
        return "max-age"
    if isinstance(last_seen, int) and now - last_seen > idle_timeout():
        return "idle"
    return None


class SessionTimeoutMiddleware:
    """Logs out an idle or too old session before the view sees it; goes after AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session:
            now = int(time.time())
            reason = expired_reason(session, now)
            if reason:
                logger.info("Session of user id %s ended (%s) from %s", session.get(SESSION_KEY), reason,
                            request.META.get("REMOTE_ADDR", ""))
                logout(request)  # flushes the stored session and makes request.user anonymous
            else:
                if not isinstance(session.get(LOGIN_TIME), int):  # a session from before these checks
                    session[LOGIN_TIME] = now
                last_seen = session.get(LAST_SEEN)
                if not isinstance(last_seen, int) or now - last_seen >= LAST_SEEN_GRANULARITY:
                    session[LAST_SEEN] = now
        return self.get_response(request)
