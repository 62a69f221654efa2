"""Response headers every page and API answer gets: Content-Security-Policy and ``Cache-Control: no-store``.

- **Content-Security-Policy** on every HTML response (``PKI_CONTENT_SECURITY_POLICY``): scripts only from
  this site's static files, never inline (the templates keep their JavaScript in static/), no plugins, no
  framing, no foreign base URL. Swagger UI at ``/api/docs/`` gets ``PKI_API_DOCS_CONTENT_SECURITY_POLICY``
  (its bundle sets inline styles and data: images). A response that already names a policy keeps it.
- **Cache-Control: no-store** on every response that says nothing about caching: admin and RA pages and REST
  answers carry certificates, end entity data and CSRF tokens that must not stay in a browser or proxy cache.
  The public CRL and CA certificate downloads (and OCSP) set their own caching headers, which are kept;
  static files are answered by WhiteNoise above this middleware and never reach it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

DEFAULT_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                  "object-src 'none'; base-uri 'self'; frame-ancestors 'none'")


def _policy(request: HttpRequest) -> str:
    if request.path_info.startswith("/api/docs/"):
        return getattr(settings, "PKI_API_DOCS_CONTENT_SECURITY_POLICY", DEFAULT_POLICY)
    return getattr(settings, "PKI_CONTENT_SECURITY_POLICY", DEFAULT_POLICY)


class SecurityHeadersMiddleware:
    """Adds the two headers above; goes below WhiteNoise so static files keep their long-lived caching."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response:
            policy = _policy(request)
            if policy:
                response["Content-Security-Policy"] = policy
        return response


def complete_shortcut_response(response: HttpResponse, *, content_length: bool = True,
                               no_store: bool = False) -> HttpResponse:
    """What the middleware chain below a public-endpoint shortcut (SCEP, OCSP, peers) would have added to its
    answer: ``Content-Length`` (CommonMiddleware), ``X-Frame-Options`` (XFrameOptionsMiddleware) and, with
    ``no_store``, this module's ``Cache-Control: no-store`` when the view set no caching of its own."""
    headers = response.headers
    if content_length and "Content-Length" not in headers:
        headers["Content-Length"] = str(len(response.content))
    headers.setdefault("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper())
    if no_store:
        headers.setdefault("Cache-Control", "no-store")
    return response

