"""OCSP over HTTP (RFC 6960 appendix A): POST ``application/ocsp-request`` and GET with the request in the path.

Public, like EJBCA's ``/ejbca/publicweb/status/ocsp``: no login, no session, no CSRF token. Every answer
is an OCSPResponse with HTTP 200 (errors carry only their OCSP status); only a request too large to be
one, or a method OCSP does not use, is answered at the HTTP level.

:func:`reply` decides the answer from plain values, so the Django view here and the WSGI-level endpoint
(protocols.ocsp.endpoint, what gunicorn and the responder processes run for these paths) give the same one.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from email.utils import format_datetime

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import messages, services

logger = logging.getLogger("pki.ocsp")

CONTENT_TYPE = "application/ocsp-response"
REQUEST_TYPE = "application/ocsp-request"
MAX_REQUEST = 16 * 1024  # 20 CertIDs with a nonce fit in well under 2 kB
NO_CACHE = ("Cache-Control", "no-cache, no-store")

# (HTTP status, Content-Type, headers after it, body): what an answer is, whichever way it is sent.
Reply = tuple[int, str, list[tuple[str, str]], bytes]


def _ocsp(answer: services.OcspAnswer, cacheable: bool) -> Reply:
    if cacheable and answer.max_age:
        # RFC 5019: a GET answer may be cached until nextUpdate; no-transform keeps proxies from altering it.
        headers = [("Cache-Control", f"max-age={answer.max_age}, public, no-transform, must-revalidate"),
                   ("Last-Modified", format_datetime(answer.this_update, usegmt=True))]
    else:
        headers = [NO_CACHE]
    return 200, CONTENT_TYPE, headers, answer.der


def _error(status: str) -> Reply:
    return 200, CONTENT_TYPE, [NO_CACHE], messages.error_response(status)


def _answer(data: bytes, cacheable: bool) -> Reply:
    try:
        return _ocsp(services.respond(data), cacheable)
    except (OperationalError, InterfaceError) as exc:
        # The database is unreachable (services already tried a new session where that was safe): the status
        # is unknown for now, which RFC 6960 calls tryLater, not an error of the responder.
        logger.error("OCSP: the database is unavailable (%s); answering tryLater", str(exc).strip()[:200])
        return _error("try_later")
    except Exception:
        logger.exception("OCSP responder failed")
        return _error("internal_error")


def reply(method: str, content_type: str, content_length: str | None, body: Callable[[], bytes],
          encoded: str) -> Reply:
    """The answer to one request: its method, its parsed Content-Type, its Content-Length header as sent,
    a callable that reads its body (called only for a POST that passed the checks) and the path after the
    endpoint's own (the GET form's request, percent-decoded; "" for none)."""
    if method == "POST":
        if content_type != REQUEST_TYPE:
            logger.info("OCSP POST with content type %r", content_type)
            return _error("malformed_request")
        length = content_length or "0"
        if not length.isascii() or not length.isdigit() or int(length) > MAX_REQUEST:
            return 413, "text/plain", [], b"Request too large.\n"
        return _answer(body(), cacheable=False)
    if method == "GET":
        # The path is percent-decoded already; '+' and '/' are base64 characters here.
        if not encoded or len(encoded) > MAX_REQUEST * 4 // 3 + 4:
            return _error("malformed_request")
        try:
            data = base64.b64decode(encoded.strip().replace(" ", "+"), validate=True)
        except (binascii.Error, ValueError):
            return _error("malformed_request")
        return _answer(data, cacheable=True)
    return 405, "text/plain", [("Allow", "GET, POST")], b"OCSP takes GET or POST.\n"


@csrf_exempt
def ocsp(request: HttpRequest, encoded: str = "") -> HttpResponse:
    status, content_type, headers, body = reply(request.method or "", request.content_type or "",
                                                request.META.get("CONTENT_LENGTH"), lambda: request.body, encoded)
    response = HttpResponse(body, status=status, content_type=content_type)
    for name, value in headers:
        response[name] = value
    return response
