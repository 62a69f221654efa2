"""The OCSP responder as a WSGI application of its own, for a server process that answers OCSP only.

    granian --interface wsgi protocols.ocsp.wsgi:application      (scripts/serve.py --ocsp-workers N)

nginx sends the responder's paths (``/ocsp``, ``/ejbca/publicweb/status/ocsp`` and the GET forms below them) here
and everything else to gunicorn. The endpoint's paths are answered by protocols.ocsp.endpoint, as in gunicorn's
application (pki/wsgi.py). Anything else (``/healthz`` and ``/readyz`` for this process, a 404 for other paths,
and what the endpoint hands back to Django) goes through the middleware classes the endpoint has in the Django
project, in the same order, without the handler, URL resolution or a thread pool around them:

- ``pki.dbhealth.DatabaseUnavailableMiddleware``: a lost database is a 503 with ``Retry-After`` (or one safe
  retry on a new connection), as on every path of the project;
- ``pki.auth.throttle.ClientAddressMiddleware``: the client's address behind the trusted proxy;
- ``pki.http.probes.ProbeMiddleware``: OCSP answers counted by responseStatus (pki.metrics, the multiprocess
  directory every process of the host shares), and ``/healthz``/``/readyz`` for this process too;
- ``django.middleware.security.SecurityMiddleware``: its headers;
- ``protocols.ocsp.middleware.OcspEndpointMiddleware``: the endpoint's paths, the view, and what the rest of the
  chain would add (``Content-Length``, ``X-Frame-Options``, ``Cache-Control``); any other path is a 404 here.

Django's ``request_started``/``request_finished`` signals are sent around each request, as its handler does: kept
database connections are checked and recycled (CONN_MAX_AGE, CONN_HEALTH_CHECKS) the same way. Nothing is kept
between requests that the Django path does not keep too (protocols.ocsp.services): a revocation is in the next
answer of every process. tests/protocols/ocsp/test_wsgi.py holds both ways to the same status, headers and body.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki.settings")
django.setup()

from django.core import signals  # noqa: E402 - after django.setup()
from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.middleware.security import SecurityMiddleware  # noqa: E402

from pki.auth.throttle import ClientAddressMiddleware  # noqa: E402
from pki.dbhealth import DatabaseUnavailableMiddleware  # noqa: E402
from pki.http.probes import ProbeMiddleware  # noqa: E402

from .endpoint import route  # noqa: E402
from .middleware import OcspEndpointMiddleware  # noqa: E402

logger = logging.getLogger("pki.ocsp")


def _not_here(request: HttpRequest) -> HttpResponse:
    """Every path but the responder's (nginx sends none here)."""
    return HttpResponse(b"Not found.\n", status=404, content_type="text/plain; charset=utf-8")


def _chain() -> Callable[[HttpRequest], HttpResponse]:
    handler: Callable[[HttpRequest], HttpResponse] = _not_here
    for middleware in (OcspEndpointMiddleware, SecurityMiddleware, ProbeMiddleware, ClientAddressMiddleware,
                       DatabaseUnavailableMiddleware):
        handler = middleware(handler)
    return handler


_handle = _chain()


def chain(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """What protocols.ocsp.endpoint does not answer itself (see the module doc)."""
    signals.request_started.send(sender=WSGIRequest, environ=environ)
    try:
        request = WSGIRequest(environ)
        try:
            response = _handle(request)
        except Exception:  # what Django's handler turns into a 500: never a traceback to the client
            logger.exception("OCSP responder failed on %s %s", environ.get("REQUEST_METHOD"),
                             environ.get("PATH_INFO"))
            response = HttpResponse(b"Server error.\n", status=500, content_type="text/plain; charset=utf-8")
        body = response.content
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [body]
    finally:
        signals.request_finished.send(sender=WSGIRequest)


application = route(chain)
