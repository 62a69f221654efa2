"""The REST API's error body: ``{"error_code": ..., "error_message": ...}`` (EJBCA's shape)."""

from __future__ import annotations

import logging

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cryptotokens.errors import CryptoTokenError

from ..dbhealth import is_unavailable
from ..errors import PkiError, as_pki_error

logger = logging.getLogger("pki.api")


def exception_handler(exc: Exception, context: dict) -> Response:
    """Every API error as ``{"error_code": <status>, "error_message": ...}``; never a stack trace."""
    if is_unavailable(exc):
        raise exc  # pki.dbhealth answers it (503 + Retry-After), or runs the request again when that is safe
    if isinstance(exc, CryptoTokenError):
        exc = as_pki_error(exc)
    if isinstance(exc, PkiError):
        logger.info("API refusal %s: %s", exc.error_code, exc.message)
        body = {"error_code": exc.http_status, "error_message": exc.message}
        if getattr(exc, "request_id", None) is not None:  # waiting for approval (202): the request to finalize
            body["request_id"] = exc.request_id
        return Response(body, status=exc.http_status)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error")
        return Response(
            {"error_code": 500, "error_message": "Internal error; see the server log."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        message = "; ".join(_flatten(detail))
    else:
        message = str(getattr(exc, "detail", exc))
    response.data = {"error_code": response.status_code, "error_message": message}
    return response


def _flatten(detail: object, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for k, v in detail.items():
            out.extend(_flatten(v, prefix if k == "non_field_errors" else f"{prefix}{k}: "))
        return out
    if isinstance(detail, list):
        out = []
        for v in detail:
            out.extend(_flatten(v, prefix))
        return out
    return [f"{prefix}{detail}"]


API_PREFIXES = ("/ejbca/ejbca-rest-api/", "/api/")


def not_found(request, exception=None):
    """The site's 404: JSON in EJBCA's error shape under the REST prefixes (clients parse it), else the page."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith(API_PREFIXES):
        return JsonResponse({"error_code": 404, "error_message": f"No resource at {request.path}."}, status=404)
    return page_not_found(request, exception)
