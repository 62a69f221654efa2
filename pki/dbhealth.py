"""503, not 500, when the database is unreachable; one safe retry after a lost connection.

A request whose database connection was lost (PostgreSQL restarted, ``pg_terminate_backend``, a failover) or
that cannot connect at all fails with ``OperationalError``/``InterfaceError`` wherever it first touches the
database: in a view, in a middleware (the SCEP alias cache read runs outside the view's own catch-all), in the
audit append. Django's connection health checks (``CONN_HEALTH_CHECKS``, settings) replace a connection that
died between requests; this middleware handles the rest:

* Every such error, raised anywhere below it, ends here as ``503 Service Unavailable`` with ``Retry-After``:
  JSON in EJBCA's error shape on the REST paths, plain text on SCEP (devices retry a 503 and give up on a 400),
  a short page elsewhere. Never a traceback, and it is logged.
* The request is run once more, on a new connection, only when that cannot do anything twice: it had sent plain
  ``SELECT`` statements at most (typically its very first statement, the session or credential lookup, found the
  connection dead), and its body can be read again. Anything else (a write may have reached the server, a SCEP
  PKIOperation may have issued) is answered 503: the client's own retry then meets the protocol's replay
  handling instead of a blind second run here.

It must be the first MIDDLEWARE entry, so that it wraps every other one.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("pki.dbhealth")

UNAVAILABLE = (OperationalError, InterfaceError)
API_PREFIXES = ("/ejbca/ejbca-rest-api/", "/api/")
SCEP_MARKER = "/pkiclient.exe"
MESSAGE = "The database is unavailable; try again later."
RETRY_AFTER_SECONDS = 5  # a reconnect or a PostgreSQL restart takes seconds; SCEP devices wait this long
_FAILURE = "_pki_db_failure"


def is_unavailable(exc: BaseException) -> bool:
    """True for the errors that mean "the database cannot be reached now" (as opposed to a refused statement)."""
    return isinstance(exc, UNAVAILABLE)


@receiver(got_request_exception, dispatch_uid="pki.dbhealth.remember")
def _remember(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """Django turns an uncaught exception into a 500 response below the middleware that wraps it; note a
    database failure on the request first, so :class:`DatabaseUnavailableMiddleware` can answer 503 instead."""
    import sys

    exc = sys.exc_info()[1]
    if request is not None and exc is not None and is_unavailable(exc):
        setattr(request, _FAILURE, exc)


class _Statements:
    """Whether a request sent anything but plain reads (an execute wrapper; it sees every Django statement)."""

    def __init__(self) -> None:
        self.wrote = False

    def __call__(self, execute, sql, params, many, context):
        # Anything but a plain SELECT may change something: writes, SAVEPOINT, PREPARE/EXECUTE of the hot
        # statements (pki.db), a WITH that may hold an INSERT. Such a request is never run twice here.
        if not self.wrote and str(sql).lstrip()[:6].upper() != "SELECT":
            self.wrote = True
        return execute(sql, params, many, context)

    def nothing_done(self) -> bool:
        """Nothing the request sent can have changed anything: only reads, if anything."""
        return not self.wrote


def _body_replayable(request: HttpRequest) -> bool:
    if hasattr(request, "_body"):
        request._stream = io.BytesIO(request._body)  # the view reads it again from the start
        request._read_started = False
        return True
    return not getattr(request, "_read_started", False)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 for ``request``'s kind of client, with ``Retry-After``."""
    if request.path.startswith(API_PREFIXES):
        response: HttpResponse = JsonResponse({"error_code": 503, "error_message": MESSAGE}, status=503)
    elif SCEP_MARKER in request.path:
        response = HttpResponse(MESSAGE.encode(), status=503, content_type="text/plain; charset=utf-8")
    else:
        # No template: rendering one may itself need the database (context processors, the user).
        response = HttpResponse(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Service unavailable</title></head>"
            f"<body><h1>Service unavailable</h1><p>{MESSAGE}</p></body></html>", status=503,
            content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _drop_connections() -> None:
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is dropped either way
            conn.connection = None


class DatabaseUnavailableMiddleware:
    """See the module doc: 503 + Retry-After for a lost or unreachable database, one retry when it is safe."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for attempt in (1, 2):
            statements = _Statements()
            try:
                with connections["default"].execute_wrapper(statements):
                    response = self.get_response(request)
            except UNAVAILABLE as exc:  # raised past Django's conversion (a streaming body, a test client)
                setattr(request, _FAILURE, exc)
            failure = getattr(request, _FAILURE, None)
            if failure is None:
                return response
            delattr(request, _FAILURE)
            _drop_connections()
            if attempt == 1 and statements.nothing_done() and _body_replayable(request):
                logger.warning("Database connection failed before %s %s did anything (%s): retrying once on a "
                               "new connection", request.method, request.path, str(failure).strip()[:200])
                continue
            logger.error("Database unavailable for %s %s (%s): answered 503", request.method, request.path,
                         str(failure).strip()[:200])
            return unavailable_response(request)
        raise AssertionError("unreachable")  # pragma: no cover
