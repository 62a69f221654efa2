"""OCSP over HTTP (RFC 6960 appendix A): POST ``application/ocsp-request`` and GET with the request in the path.

Public, like EJBCA's ``/ejbca/publicweb/status/ocsp``: no login, no session, no CSRF token. Every answer
is an OCSPResponse with HTTP 200 (errors carry only their OCSP status); only a request too large to be
one, or a method OCSP does not use, is answered at the HTTP level.
"""

from __future__ import annotations

import base64
import binascii
import logging
from email.utils import format_datetime

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import messages, services

logger = logging.getLogger("pki.ocsp")

CONTENT_TYPE = "application/ocsp-response"
MAX_REQUEST = 16 * 1024  # 20 CertIDs with a nonce fit in well under 2 kB


def _reply(answer: services.OcspAnswer, cacheable: bool) -> HttpResponse:
    response = HttpResponse(answer.der, content_type=CONTENT_TYPE)
    if cacheable and answer.max_age:
        # RFC 5019: a GET answer may be cached until nextUpdate; no-transform keeps proxies from altering it.
        response["Cache-Control"] = f"max-age={answer.max_age}, public, no-transform, must-revalidate"
        response["Last-Modified"] = format_datetime(answer.this_update, usegmt=True)
    else:
        response["Cache-Control"] = "no-cache, no-store"
    return response


def _malformed() -> HttpResponse:
    return _reply(services.OcspAnswer(messages.error_response("malformed_request")), cacheable=False)


def _answer(data: bytes, cacheable: bool) -> HttpResponse:
    try:
        return _reply(services.respond(data), cacheable)
    except (OperationalError, InterfaceError) as exc:
        # The database is unreachable (services already tried a new session where that was safe): the status
        # is unknown for now, which RFC 6960 calls tryLater, not an error of the responder.
        logger.error("OCSP: the database is unavailable (%s); answering tryLater", str(exc).strip()[:200])
        return _reply(services.OcspAnswer(messages.error_response("try_later")), cacheable=False)
    except Exception:
        logger.exception("OCSP responder failed")
        return _reply(services.OcspAnswer(messages.error_response("internal_error")), cacheable=False)


@csrf_exempt
def ocsp(request: HttpRequest, encoded: str = "") -> HttpResponse:
    if request.method == "POST":
        if request.content_type != "application/ocsp-request":
            logger.info("OCSP POST with content type %r", request.content_type)
            return _malformed()
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isascii() or not length.isdigit() or int(length) > MAX_REQUEST:
            return HttpResponse("Request too large.\n", status=413, content_type="text/plain")
        return _answer(request.body, cacheable=False)
    if request.method == "GET":
        # Django has already percent-decoded the path; '+' and '/' are base64 characters here.
        if not encoded or len(encoded) > MAX_REQUEST * 4 // 3 + 4:
            return _malformed()
        try:
            data = base64.b64decode(encoded.strip().replace(" ", "+"), validate=True)
        except (binascii.Error, ValueError):
            return _malformed()
        return _answer(data, cacheable=True)
    response = HttpResponse("OCSP takes GET or POST.\n", status=405, content_type="text/plain")
    response["Allow"] = "GET, POST"
    return response
