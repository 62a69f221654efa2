"""The REST API's door: cross-site requests and non-JSON bodies are refused before any view runs.

A browser adds some credentials to a request by itself, whoever's page made it: the session cookie, a client
certificate (nginx then forwards it, :mod:`pki.auth.clientcert`) and cached HTTP Basic. A page on another
site can therefore make an operator's browser send a state-changing API call with the operator's rights, and
an HTML form needs no CORS permission to do so. Two checks close that, for every API view in one place:

1. **Origin.** A state-changing request (not GET/HEAD/OPTIONS/TRACE) that carries such a credential must come
   from this site: ``Sec-Fetch-Site: cross-site`` is refused, an ``Origin`` (or, without one, a ``Referer``)
   that is not this site is refused, and ``Sec-Fetch-Site: same-site`` needs an ``Origin`` of this site too.
   "This site" is the request's own scheme and host (the scheme as the TLS proxy reports it,
   ``SECURE_PROXY_SSL_HEADER``) and the origins of ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.org`` allows
   the subdomains, as Django's CSRF check does). A request without browser headers (a script, an EJBCA client)
   passes. Bearer tokens are exempt: a browser never adds an ``Authorization: Bearer`` header on its own, and
   a page may not add one to a cross-site request without the CORS permission this site never grants.
   Session-authenticated requests keep DRF's CSRF token check as well.
2. **JSON bodies only.** A request with a body must be ``application/json`` (parameters such as ``charset``
   allowed), or a type a parser the view declares explicitly (``parser_classes``) accepts; anything else is
   415. An HTML form can only send form, multipart or text/plain bodies, and JSON from another site needs a
   CORS preflight, which this site never answers with permission.

Refusals answer in the API's error shape (``{"error_code", "error_message"}``) and are logged to the server
log (``pki.http``), not audited: nobody was authenticated, so there is no principal to audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import is_same_domain
from rest_framework.utils.mediatypes import media_type_matches

from ..api.errors import API_PREFIXES
from ..auth.clientcert import CERT_HEADER

logger = logging.getLogger("pki.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
JSON_MEDIA_TYPES = ("application/json",)


def ambient_credential(request: HttpRequest) -> str | None:
    """The credential of this request a browser may have added by itself, or None (no credential, or Bearer).

    Mirrors the order of the API's authentication classes: an ``Authorization`` header decides the request
    (Bearer exempt, any other scheme is one a browser caches), else a forwarded client certificate, else the
    session cookie.
    """
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization.strip():
        scheme = authorization.strip().partition(" ")[0].lower()
        return None if scheme == "bearer" else f"HTTP {scheme or 'authorization'}"
    if getattr(settings, "PKI_BEHIND_TLS_PROXY", False) and request.META.get(CERT_HEADER):
        return "client certificate"
    if settings.SESSION_COOKIE_NAME in request.COOKIES:
        return "session"
    return None


def own_origin(request: HttpRequest) -> str | None:
    """This request's own origin, ``scheme://host[:port]`` (scheme as the TLS proxy reports it)."""
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{request.scheme}://{host}".lower()


def is_this_site(request: HttpRequest, origin: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header's value) is this site or one of ``CSRF_TRUSTED_ORIGINS``."""
    origin = origin.strip().lower()
    if not origin or origin == "null":  # "null": a sandboxed frame, a file: page or a privacy redirect
        return False
    if origin == own_origin(request):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        trusted = trusted.strip().lower()
        if "*" not in trusted:
            if origin == trusted.rstrip("/"):
                return True
            continue
        # https://*.example.org: the subdomains of example.org under that scheme (Django's CSRF rule)
        t = urlsplit(trusted)
        if parsed.scheme == t.scheme and is_same_domain(parsed.netloc, t.netloc.removeprefix("*")):
            return True
    return False


def _referer_origin(referer: str) -> str:
    try:
        parts = urlsplit(referer)
    except ValueError:
        return "null"
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"


def cross_site_reason(request: HttpRequest) -> str | None:
    """Why this request comes from another site, or None when nothing says so."""
    fetch_site = request.META.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if fetch_site == "cross-site":
        return "Sec-Fetch-Site is cross-site"
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None:
        return None if is_this_site(request, origin) else f"Origin {origin[:200]!r} is not this site"
    if fetch_site == "same-site":  # another origin of the same site (a sibling subdomain) sent no Origin
        return "Sec-Fetch-Site is same-site without an Origin of this site"
    referer = request.META.get("HTTP_REFERER")
    if referer and not is_this_site(request, _referer_origin(referer)):
        return f"Referer origin {_referer_origin(referer)[:200]!r} is not this site"
    return None


def _has_body(request: HttpRequest) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 1  # an unreadable length still announces a body
    return length > 0 or "HTTP_TRANSFER_ENCODING" in request.META


def accepted_media_types(view_func: Callable) -> tuple[str, ...]:
    """The body types a view accepts: its declared DRF parsers' types, else JSON."""
    cls = getattr(view_func, "cls", None)  # DRF's as_view() keeps the view class here
    if cls is None:
        return JSON_MEDIA_TYPES
    parsers = (getattr(view_func, "initkwargs", None) or {}).get("parser_classes") or getattr(
        cls, "parser_classes", ())
    return tuple(p.media_type for p in parsers) or JSON_MEDIA_TYPES


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error_code": status, "error_message": message}, status=status)


def _client(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "")


def check_request(request: HttpRequest, view_func: Callable) -> HttpResponse | None:
    """The refusal for an API request (403 cross-site, 415 body type), or None to let it through."""
    if request.method not in SAFE_METHODS:
        credential = ambient_credential(request)
        reason = cross_site_reason(request) if credential else None
        if reason:
            logger.warning("Cross-site API request refused: %s %s with %s from %s: %s", request.method,
                           request.path, credential, _client(request), reason)
            return _error(403, f"Cross-site request refused: {reason}.")
    if _has_body(request):
        content_type = request.META.get("CONTENT_TYPE", "")
        accepted = accepted_media_types(view_func)
        if not any(media_type_matches(media_type, content_type) for media_type in accepted):
            logger.info("API request with a %r body refused (415): %s %s from %s", content_type[:100],
                        request.method, request.path, _client(request))
            return _error(415, f"Unsupported media type {content_type[:100]!r}: send {' or '.join(accepted)}.")
    return None


def _is_api_view(request: HttpRequest, view_func: Callable) -> bool:
    return request.path_info.startswith(API_PREFIXES) or hasattr(view_func, "cls")


class ApiBoundaryMiddleware:
    """Runs :func:`check_request` for every REST API view (the EJBCA paths, ``/api/``, any DRF view)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs) -> HttpResponse | None:
        """Refuse before the view (and before DRF authenticates anyone) when the request must not pass."""
        if not _is_api_view(request, view_func):
            return None
        return check_request(request, view_func)
