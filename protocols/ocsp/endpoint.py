"""The responder's URLs answered at the WSGI level, before Django's request handler.

    application = route(get_wsgi_application())     (pki/wsgi.py: gunicorn; protocols/ocsp/wsgi.py: granian)

Through Django an OCSP answer cost about twice the CPU of the answer itself (benchmarks/README.md, "OCSP
responder, fourth round"): the request and response objects, the middleware calls around the endpoint shortcut,
the header bookkeeping. Here the endpoint's paths (protocols.ocsp.middleware.ENDPOINT_PATH) go straight from the
WSGI environ to :func:`protocols.ocsp.views.reply`, the function the Django view calls too, and back, and keep
what the Django path does on these paths:

- database loss: the view's answer is ``tryLater`` (services already retried a kept session that was gone on a
  new one); ``pki.dbhealth`` has nothing left to do on these paths, as the view catches every error;
- Django's ``request_started``/``request_finished`` signals around each request, so kept database connections
  are checked and recycled (CONN_MAX_AGE, CONN_HEALTH_CHECKS) as for every other request;
- the client's address for code handed no request (``pki.auth.throttle.ClientAddressMiddleware``, the class);
- the answers counted by responseStatus (``pki.metrics``, as ``pki.http.probes`` counts them);
- the headers of the rest of the chain: ``Content-Length``, ``X-Frame-Options``, ``Cache-Control: no-store``
  where the view names no caching, and SecurityMiddleware's (taken from the class itself, once per settings).

What this does not reproduce is handed to ``fallback`` unchanged (Django, which answers as before): a path
that is not ASCII, and settings under which SecurityMiddleware looks at the request (SECURE_SSL_REDIRECT,
SECURE_HSTS_SECONDS). tests/protocols/ocsp/test_wsgi.py holds both ways to the same status, headers and body.
Nothing is kept between requests but those headers: a revocation is in the next answer (protocols.ocsp.services).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.client import responses

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test.signals import setting_changed
from django.utils.http import parse_header_parameters

from pki import metrics
from pki.auth.throttle import ClientAddressMiddleware

from . import views
from .middleware import ENDPOINT_PATH

logger = logging.getLogger("pki.ocsp")

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
PREFIXES = ("/ocsp", "/ejbca/publicweb/status/ocsp")  # every ENDPOINT_PATH starts with one (a cheap first look)


class _Fixed:
    """The headers the Django path adds to every answer of the endpoint whatever the request: X-Frame-Options
    (pki.http.headers) and SecurityMiddleware's; None when SecurityMiddleware would depend on the request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: tuple[tuple[str, str], list[tuple[str, str]]] | None = None
        self._ready = False

    def get(self) -> tuple[tuple[str, str], list[tuple[str, str]]] | None:
        if not self._ready:
            with self._lock:
                self._value, self._ready = self._compute(), True
        return self._value

    @staticmethod
    def _compute() -> tuple[tuple[str, str], list[tuple[str, str]]] | None:
        security = SecurityMiddleware(lambda request: HttpResponse())
        if security.redirect or security.sts_seconds:
            return None
        response = HttpResponse()
        security.process_response(HttpRequest(), response)
        return (("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()),
                [(name, value) for name, value in response.items() if name != "Content-Type"])

    def clear(self, **kwargs) -> None:
        with self._lock:
            self._value, self._ready = None, False


_fixed = _Fixed()
setting_changed.connect(_fixed.clear, dispatch_uid="protocols.ocsp.endpoint.fixed")

_STATUS_LINES = {status: f"{status} {responses[status]}" for status in (200, 405, 413, 500)}
_NO_STORE = ("Cache-Control", "no-store")


class _Environ:
    """What ClientAddressMiddleware reads of a request (``META``), for the WSGI environ."""

    __slots__ = ("META",)

    def __init__(self, environ: dict) -> None:
        self.META = environ


def _reply(request: _Environ) -> views.Reply:
    environ = request.META
    content_type = environ.get("CONTENT_TYPE", "")
    if content_type != views.REQUEST_TYPE:  # as Django's request.content_type reads the header
        content_type = parse_header_parameters(content_type)[0]
    length = environ.get("CONTENT_LENGTH")

    def body() -> bytes:
        size = int(length or 0)
        return environ["wsgi.input"].read(size) if size else b""

    match = ENDPOINT_PATH.fullmatch(environ.get("PATH_INFO", ""))
    return views.reply(environ["REQUEST_METHOD"].upper(), content_type, length, body, match["encoded"] or "")


_with_address = ClientAddressMiddleware(_reply)


def answer(environ: dict, start_response: Callable) -> Iterable[bytes] | None:
    """The answer for a request to the responder's paths; None for any other request, or one to hand to
    Django (see the module doc)."""
    path = environ.get("PATH_INFO", "")
    if not path.startswith(PREFIXES) or not path.isascii() or ENDPOINT_PATH.fullmatch(path) is None:
        return None
    fixed = _fixed.get()
    if fixed is None:
        return None
    signals.request_started.send(sender=WSGIHandler, environ=environ)
    try:
        try:
            status, content_type, headers, body = _with_address(_Environ(environ))
        except Exception:  # what Django's handler turns into a 500 (a client gone while sending its body)
            logger.exception("OCSP responder failed on %s %s", environ.get("REQUEST_METHOD"), path)
            status, content_type, headers, body = 500, "text/plain; charset=utf-8", [], b"Server error.\n"
        try:
            metrics.count_ocsp_response(status, body[:16])
        except Exception:  # noqa: BLE001 - counting must never cost the client its answer
            logger.exception("Could not count an OCSP answer")
        frame, security = fixed
        out = [("Content-Type", content_type), *headers, ("Content-Length", str(len(body))), frame]
        if not any(name == "Cache-Control" for name, _ in headers):
            out.append(_NO_STORE)
        start_response(_STATUS_LINES.get(status) or f"{status} {responses[status]}", out + security)
        return [body]
    finally:
        signals.request_finished.send(sender=WSGIHandler)


def route(fallback: WSGIApp) -> WSGIApp:
    """A WSGI application that answers the responder's paths here and hands every other request to
    ``fallback``."""

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        answered = answer(environ, start_response)
        return fallback(environ, start_response) if answered is None else answered

    application.fallback = fallback  # type: ignore[attr-defined]
    return application
