"""The public OCSP endpoint's short way through Django.

OCSP requests are public and carry no session, CSRF token, logged-in user or flash message: the session,
CSRF, authentication, client-certificate and messages middleware have nothing to do for them, and neither has
URL resolution beyond recognizing the responder's paths. Going through all of it cost about as much CPU as
building and signing the answer. So this middleware, placed right after Django's SecurityMiddleware (whose
headers still apply, as do the database and probe middleware above it), answers exactly the paths of
protocols/ocsp/urls.py by calling the view itself, and adds what the rest of the chain would have added to
such a response: ``Content-Length`` (CommonMiddleware), ``X-Frame-Options`` (XFrameOptionsMiddleware) and
``Cache-Control: no-store`` where the view named no caching (pki.http.headers). Every other path goes through
the whole chain as before; tests/protocols/ocsp/test_middleware.py holds both ways to the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from pki.http.headers import complete_shortcut_response

from . import views

# protocols/ocsp/urls.py's four routes (Django's ``path`` converter is ``.+``).
ENDPOINT_PATH = re.compile(r"/(?:ejbca/publicweb/status/)?ocsp(?:/(?P<encoded>.+))?", re.DOTALL)


class OcspEndpointMiddleware:
    """Answer the OCSP endpoint paths directly (see the module doc); pass everything else on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = ENDPOINT_PATH.fullmatch(request.path_info)
        if match is None:
            return self.get_response(request)
        return complete_shortcut_response(views.ocsp(request, encoded=match["encoded"] or ""), no_store=True)
