"""``/healthz``, ``/readyz`` and ``/metrics``: for load balancers, Kubernetes and Prometheus.

Answered by a middleware near the top of the chain (as the SCEP endpoint is): no session, CSRF, user or message
work, no template, no host-name check (a kubelet probes by the pod's address). None needs a login:

* ``GET /healthz`` — liveness: the process answers. Touches nothing else (a database outage must not make an
  orchestrator restart every web process).
* ``GET /readyz`` — readiness: the database answers (503 when not), and each local CA's state by name with stable
  codes only (``ok``, ``token_offline``, ``crl_expired``, ...). An anonymous caller learns what is public anyway
  (CA names are in the CA certificates and the CRL URLs) and whether each CA works; never a token's name or id, a
  key alias, an exception text or a database error. Only the database decides the status code: a CA's token or
  CRL is shared state, the same on every replica, so failing readiness for it would take every replica out of the
  load balancer at once, and SCEP, OCSP, CRLs and the UI of every other CA with them. The check runs at most once
  per ``PKI_READYZ_CACHE_SECONDS`` per process, so probes cannot load the database, with a short statement timeout
  on PostgreSQL.
* ``GET /metrics`` — Prometheus text (pki.metrics), only for clients in ``PKI_METRICS_ALLOWED`` (404 to anyone
  else, so the endpoint is not even confirmed).

It also counts the OCSP responder's answers (pki.metrics) from the response bytes, so the responder's own hot
path is untouched.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse

from ..auth.throttle import client_address

logger = logging.getLogger("pki.probes")

OCSP_PREFIXES = ("/ocsp", "/ejbca/publicweb/status/ocsp")
READY_TIMEOUT_MS = 2000


def _json(body: dict[str, Any], status: int = 200) -> HttpResponse:
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")
    return _plain_headers(response)


def _plain_headers(response: HttpResponse) -> HttpResponse:
    # Answered above SecurityMiddleware and the headers middleware: what they would add to a non-HTML answer.
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _not_found() -> HttpResponse:
    return _plain_headers(HttpResponse(b"Not found.\n", status=404, content_type="text/plain; charset=utf-8"))


def readiness() -> tuple[int, dict[str, Any]]:
    """The readiness answer: status code and body (see the module doc)."""
    from ..services import health

    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cur:
                    cur.execute(f"SET LOCAL statement_timeout = {READY_TIMEOUT_MS}")
            cas = list(health.local_cas())
            states = health.ca_health(cas)
    except DatabaseError as exc:  # unreachable, or not migrated: not ready either way
        logger.error("Readiness: the database is unavailable (%s)", str(exc).strip()[:200])
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is dropped either way
            connection.connection = None
        return 503, {"status": "unavailable", "database": "unavailable"}
    ca_states = [{"name": ca.name, "state": states[ca.pk].state,
                  "problems": [p.code for p in states[ca.pk].problems]} for ca in cas]
    degraded = any(s["problems"] for s in ca_states)
    return 200, {"status": "degraded" if degraded else "ready", "database": "ok", "cas": ca_states}


class _Memo:
    """The last readiness answer of this process, reused for ``PKI_READYZ_CACHE_SECONDS``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = float("-inf")
        self.value: tuple[int, dict[str, Any]] | None = None

    def get(self) -> tuple[int, dict[str, Any]]:
        with self.lock:  # concurrent probes wait for one check instead of each running their own
            now = time.monotonic()
            if self.value is None or now - self.at >= settings.PKI_READYZ_CACHE_SECONDS:
                self.value, self.at = readiness(), now
            return self.value

    def clear(self) -> None:
        with self.lock:
            self.value = None


ready_memo = _Memo()


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def metrics_allowed(request: HttpRequest) -> bool:
    """Whether the client (behind the trusted proxy: the address it forwarded) is in ``PKI_METRICS_ALLOWED``."""
    networks = _networks(tuple(settings.PKI_METRICS_ALLOWED))
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in networks)


class ProbeMiddleware:
    """See the module doc."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path in ("/healthz", "/readyz", "/metrics"):
            if request.method not in ("GET", "HEAD"):
                response = HttpResponse(b"GET only.\n", status=405, content_type="text/plain; charset=utf-8")
                response["Allow"] = "GET, HEAD"
                return response
            return self._answer(request, path)
        response = self.get_response(request)
        if path.startswith(OCSP_PREFIXES):
            self._count_ocsp(response)
        return response

    @staticmethod
    def _answer(request: HttpRequest, path: str) -> HttpResponse:
        if path == "/healthz":
            return _json({"status": "ok"})
        if path == "/readyz":
            status, body = ready_memo.get()
            return _json(body, status)
        if not metrics_allowed(request):
            logger.warning("/metrics refused to %s (not in PKI_METRICS_ALLOWED)", client_address(request))
            return _not_found()
        from .. import metrics

        return _plain_headers(HttpResponse(metrics.exposition(),
                                           content_type="text/plain; version=0.0.4; charset=utf-8"))

    @staticmethod
    def _count_ocsp(response: HttpResponse) -> None:
        try:
            from .. import metrics

            body = b"" if getattr(response, "streaming", False) else response.content[:16]
            metrics.count_ocsp_response(response.status_code, body)
        except Exception:  # noqa: BLE001 - counting must never cost the client its answer
            logger.exception("Could not count an OCSP answer")
