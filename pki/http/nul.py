"""Requests whose path or query string holds a NUL character are refused before any view runs.

No route of this project takes one: no name, serial, username or parameter can hold it, and PostgreSQL's text
cannot store or compare it. A view that looked such a value up in the database got an exception from the
driver instead of a refusal: a 500 with a logged traceback, on public paths too (``/crl/<name>.crl``,
``/ca/<name>.crt``), for anyone. Bodies are the forms' and serializers' to check (Django's and DRF's text
fields refuse a NUL by themselves).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..api.errors import API_PREFIXES

logger = logging.getLogger("pki.http")
MESSAGE = "The request's path or query string holds a NUL character."


def holds_nul(request: HttpRequest) -> bool:
    """Whether the decoded path or the query string (raw, so also a ``%00`` in it) holds a NUL."""
    query = request.META.get("QUERY_STRING", "")
    return "\x00" in request.path_info or "%00" in query or "\x00" in query


class NulRefusalMiddleware:
    """400 for a request whose path or query string holds a NUL: JSON in the REST API's error shape under the API
    prefixes, plain text elsewhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not holds_nul(request):
            return self.get_response(request)
        logger.info("Refused %s %r: a NUL character in its path or query string", request.method,
                    request.path_info[:200])
        if request.path_info.startswith(API_PREFIXES):
            return JsonResponse({"error_code": 400, "error_message": MESSAGE}, status=400)
        return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")
