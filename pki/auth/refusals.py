"""Refused credentials (bearer tokens, OIDC logins, client certificates) without an audit row per request.

Anyone can send ``Authorization: Bearer x`` in a loop; writing a chained audit event for each would let an
unauthenticated caller grow the audit log (and serialize on its chain head) without limit. So a refusal:

* goes to the server log with its detailed reason, at most one line per kind and reason every
  ``PKI_AUTH_REFUSAL_LOG_SECONDS`` (default 10) per process; the next line says how many were suppressed;
* is counted in the shared cache (``settings.CACHES``, so across processes and replicas), and at most one
  audit event per kind and reason is written every ``PKI_AUTH_REFUSAL_AUDIT_SECONDS`` (default 60): a
  FAILURE summary carrying the reason, the provider, the first caller's address and ``count``, the number
  of such refusals since the previous summary.

Reasons are keyed by a fixed code (never text the caller chose), so the number of keys stays bounded.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from .. import audit

logger = logging.getLogger("pki.auth.refusals")

_lock = threading.Lock()
_last_logged: dict[str, tuple[float, int]] = {}  # key -> (when logged, refusals suppressed since)


def _key(kind: str, code: str) -> str:
    # Hashed: the kind and code are words with spaces, and a cache key must be plain (memcached's rules).
    return hashlib.sha256(f"{kind}\n{code}".encode()).hexdigest()[:24]


def _log(key: str, message: str, args: tuple[Any, ...]) -> None:
    interval = getattr(settings, "PKI_AUTH_REFUSAL_LOG_SECONDS", 10)
    now = time.monotonic()
    with _lock:
        logged_at, suppressed = _last_logged.get(key, (None, 0))
        if logged_at is not None and now - logged_at < interval:
            _last_logged[key] = (logged_at, suppressed + 1)
            return
        _last_logged[key] = (now, 0)
    if suppressed:
        message += " (%d similar refusals not logged in the last %ss)"
        args = (*args, suppressed, interval)
    logger.warning(message, *args)


def _audit_due(key: str) -> int:
    """Count this refusal; return how many to report if this process writes the summary now, else 0."""
    interval = getattr(settings, "PKI_AUTH_REFUSAL_AUDIT_SECONDS", 60)
    count_key = f"pki:authrefusal:count:{key}"
    try:
        cache.add(count_key, 0, timeout=None)
        cache.incr(count_key)
        # cache.add is atomic: one process per interval gets to write the summary.
        if not cache.add(f"pki:authrefusal:window:{key}", 1, timeout=interval):
            return 0
        pending = int(cache.get(count_key) or 1)
        cache.decr(count_key, pending)
        return pending
    except Exception:  # the cache is down: refusing the caller must not fail; audit nothing rather than all
        logger.exception("refusal counter unavailable")
        return 0


def record(kind: str, event_type: str, code: str, reason: str, *, actor: str, ip: str = "",
           object_type: str = "", object_id: Any = "", details: dict[str, Any] | None = None) -> None:
    """Note one refused credential: rate-limited server log line, throttled audit summary.

    ``code`` is the fixed reason key (throttling); ``reason`` the detailed text (log and audit only, never
    the caller's reply). Neither may contain the credential itself.
    """
    key = _key(kind, code)
    extra = details or {}
    _log(key, "%s refused from %s: %s %s", (kind, ip or "-", reason,
                                             " ".join(f"{k}={v!r}" for k, v in extra.items() if v)))
    count = _audit_due(key)
    if count:
        audit.record_failure(event_type, actor, reason, object_type=object_type, object_id=object_id,
                             details={**extra, "ip": ip, "count": count,
                                      "summary_seconds": getattr(settings, "PKI_AUTH_REFUSAL_AUDIT_SECONDS", 60)})


def clear() -> None:
    """Forget this process's log limiter (tests; the shared counters are left alone)."""
    with _lock:
        _last_logged.clear()
