"""Limits on guessing: failed logins, HTTP Basic credentials and the SCEP RA shared secret.

Each failure is counted per *subject* in a *scope* (an account name, a client address, an address at an RA
shared secret) in one atomic statement on the database (``pki.models.AuthThrottle``), so every web process
and every replica sees the same counts. ``limit`` failures within ``window`` seconds lock the subject for
``lockout`` seconds; each further lockout lasts twice as long as the one before (at most ``lockout_max``),
until the subject stays quiet for ``lockout_max``. A locked subject is refused *before* any password hashing
or secret comparison, so refusing costs one indexed read.

Concurrent guesses that all pass the check before the first of them is counted can overshoot the limit by at
most the number of requests in flight; the lock is taken once (a conditional UPDATE), audited once.

Accounts are counted by the name the caller typed, whether it exists or not: a lockout says nothing about
which accounts exist. An account lockout can be cleared by an administrator (``manage.py users unlock``).
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.http import HttpRequest, HttpResponse

from ..errors import PkiError

logger = logging.getLogger("pki.auth.throttle")

ACCOUNT = "account"  # login form and HTTP Basic, by the user name typed
ADDRESS = "address"  # login form and HTTP Basic, by the client's address
SCEP_RA = "scep-ra"  # the SCEP RA shared secret (ra.authPwd), by the client's address
AUDIT_EVENT = "ACCOUNT_LOCKOUT"
_MAX_SUBJECT = 200  # AuthThrottle.subject's length


class Throttled(PkiError):
    """Too many failures: refused without checking the credentials. ``retry_after`` is in whole seconds."""

    http_status = 429
    error_code = "TOO_MANY_REQUESTS"

    def __init__(self, retry_after: int):
        super().__init__(f"Too many failed attempts; try again in {retry_after} s.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Budget:
    """How many failures a subject of ``scope`` may have, and how long it is then refused."""

    scope: str
    limit: int
    window: float
    lockout: float
    lockout_max: float


def budget(scope: str) -> Budget:
    """The scope's budget from the settings (``PKI_AUTH_*``; ``PKI_SCEP_RA_*`` for the RA shared secret)."""
    prefix = "PKI_SCEP_RA" if scope == SCEP_RA else "PKI_AUTH"
    return Budget(
        scope=scope,
        limit=int(getattr(settings, f"{prefix}_FAILURE_LIMIT", 5)),
        window=float(getattr(settings, f"{prefix}_FAILURE_WINDOW", 600)),
        lockout=float(getattr(settings, f"{prefix}_LOCKOUT_SECONDS", 60)),
        lockout_max=float(getattr(settings, f"{prefix}_LOCKOUT_MAX_SECONDS", 86400)),
    )


def _subject(text: str) -> str:
    return text[:_MAX_SUBJECT]


def retry_after(scope: str, subject: str, now: float | None = None) -> int:
    """Seconds until ``subject`` may try again (0: it may now)."""
    from ..models import AuthThrottle

    now = time.time() if now is None else now
    # Plain SQL: it runs before every RA shared secret and login check, and the ORM's query building cost more
    # than the lookup itself. (Not a prepared statement: PREPARE would count as a write to pki.dbhealth, and a
    # request whose connection is lost after it could no longer be run again.)
    table = connection.ops.quote_name(AuthThrottle._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT locked_until FROM {table} WHERE scope = %s AND subject = %s",  # noqa: S608
                       [scope, _subject(subject)])
        row = cursor.fetchone()
    until = row[0] if row else None
    return math.ceil(until - now) if until and until > now else 0


def check(*pairs: tuple[str, str]) -> None:
    """Raise :class:`Throttled` if any ``(scope, subject)`` is locked (the longest wait is reported)."""
    wait = max((retry_after(scope, subject) for scope, subject in pairs if subject), default=0)
    if wait:
        raise Throttled(wait)


# Counts one failure: the window restarts once it has passed, and the lockout level is forgotten after a quiet
# lockout_max. A failure that lands while the subject is locked (a request checked just before the lock was
# taken) is not counted: it was allowed, and must not start the next, longer lockout at once.
# Column references on the right of SET are the old row's values (PostgreSQL and SQLite alike).
_COUNT_SQL = """
INSERT INTO {t} (scope, subject, failures, window_start, lockouts, locked_until, last_failure)
VALUES (%s, %s, 1, %s, 0, 0, %s)
ON CONFLICT (scope, subject) DO UPDATE SET
    failures = CASE WHEN {t}.locked_until > %s THEN {t}.failures
                    WHEN {t}.window_start < %s THEN 1 ELSE {t}.failures + 1 END,
    window_start = CASE WHEN {t}.window_start < %s THEN %s ELSE {t}.window_start END,
    lockouts = CASE WHEN {t}.last_failure < %s THEN 0 ELSE {t}.lockouts END,
    last_failure = %s
RETURNING id, failures, lockouts
"""


def record_failure(scope: str, subject: str, *, actor: str = "", ip: str = "", now: float | None = None) -> int:
    """Count one failure of ``subject``; returns the lockout's seconds when this failure locked it, else 0.

    The lockout is audited (``ACCOUNT_LOCKOUT``) and logged once, by whichever concurrent failure took it.
    """
    from ..models import AuthThrottle

    if not subject:
        return 0
    b = budget(scope)
    now = time.time() if now is None else now
    subject = _subject(subject)
    sql = _COUNT_SQL.format(t=connection.ops.quote_name(AuthThrottle._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql, [scope, subject, now, now, now, now - b.window, now - b.window, now,
                             now - b.lockout_max, now])
        row_id, failures, lockouts = cursor.fetchone()
    if failures < b.limit:
        return 0
    seconds = min(b.lockout * 2 ** min(lockouts, 32), b.lockout_max)
    # Only one of several concurrent failures past the limit takes the lock: the others no longer match.
    took = AuthThrottle.objects.filter(pk=row_id, lockouts=lockouts, failures__gte=b.limit).update(
        lockouts=F("lockouts") + 1, locked_until=now + seconds, failures=0, window_start=now)
    if not took:
        return 0
    from .. import audit

    logger.warning("%s %r locked for %d s after %d failed attempts (lockout %d)", scope, subject, seconds,
                   failures, lockouts + 1)
    audit.record_failure(AUDIT_EVENT, actor or f"{scope}:{subject}", f"{failures} failed attempts",
                         object_type=scope, object_id=subject,
                         details={"ip": ip, "seconds": int(seconds), "lockout": lockouts + 1})
    return int(seconds)


def reset(scope: str, subject: str) -> None:
    """Forget ``subject``'s failures (a successful login of that account)."""
    from ..models import AuthThrottle

    AuthThrottle.objects.filter(scope=scope, subject=_subject(subject)).delete()


@dataclass
class Lock:
    """A subject refused until ``until`` (Unix seconds) after ``lockouts`` lockouts."""

    scope: str
    subject: str
    until: float
    lockouts: int
    failures: int


def locks(scope: str | None = None, *, active_only: bool = True) -> list[Lock]:
    """Subjects with failures on record (only those locked now, unless ``active_only`` is False)."""
    from ..models import AuthThrottle

    rows = AuthThrottle.objects.all().order_by("scope", "subject")
    if scope:
        rows = rows.filter(scope=scope)
    if active_only:
        rows = rows.filter(locked_until__gt=time.time())
    return [Lock(r.scope, r.subject, r.locked_until, r.lockouts, r.failures) for r in rows]


def unlock(actor: str, scope: str, subject: str) -> bool:
    """Clear ``subject``'s failures and lockout (an administrator's decision, audited). False: nothing to clear."""
    from .. import audit
    from ..models import AuthThrottle

    cleared, _ = AuthThrottle.objects.filter(scope=scope, subject=_subject(subject)).delete()
    if cleared:
        audit.record("ACCOUNT_UNLOCK", actor, object_type=scope, object_id=_subject(subject))
    return bool(cleared)


# --- the client's address ------------------------------------------------------------------------------

def client_address(request: HttpRequest) -> str:
    """The caller's IP address: the peer, or, when the peer is a trusted proxy (PKI_TRUSTED_PROXIES: the TLS
    proxy of a deployment, or the nginx that ``make run`` puts in front), the address that proxy appended last
    to ``X-Forwarded-For`` (anything before it the client may have sent)."""
    from .clientcert import peer_is_trusted_proxy  # one rule for which peers' headers are believed

    peer = request.META.get("REMOTE_ADDR", "") or ""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and peer_is_trusted_proxy(request):
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return peer[:64]


_current_address: contextvars.ContextVar[str] = contextvars.ContextVar("pki_client_address", default="")


def current_client_address() -> str:
    """The address of the request being served on this thread ("" outside a request), for code that is
    handed no request (the SCEP challenge validators)."""
    return _current_address.get()


class ClientAddressMiddleware:
    """Remember the request's client address for :func:`current_client_address` while it is served.
    First in the chain, so the SCEP endpoint (answered by its own middleware) sees it too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_address.set(client_address(request))
        try:
            return self.get_response(request)
        finally:
            _current_address.reset(token)
