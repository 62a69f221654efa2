"""The public SCEP endpoint's short way through Django.

SCEP requests carry their own authentication (challenge password, RA shared secret, signatures checked in the
message) and never a session, a CSRF token, a logged-in user or a flash message: the session, CSRF,
authentication, client-certificate and messages middleware have nothing to do for them, and neither has URL
resolution beyond recognizing the four SCEP paths. Going through all of it still cost ~0.5 ms of CPU per
request, a tenth of an enrollment's own work. So this middleware, placed right after Django's
SecurityMiddleware (whose headers and HTTPS redirect still apply), answers exactly the SCEP endpoint paths by
calling the view itself, and adds what the rest of the chain would have added to such a response:
``Content-Length`` (CommonMiddleware) and ``X-Frame-Options`` (XFrameOptionsMiddleware). Every other path,
including the SCEP admin pages, goes through the whole chain as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from pki.http.headers import complete_shortcut_response

from . import views

# The paths of protocols/scep/urls.py's four endpoint routes (Django's ``str`` converter is ``[^/]+``).
ENDPOINT_PATH = re.compile(r"/(?:ejbca/publicweb/apply/)?scep/(?:(?P<alias>[^/]+)/)?pkiclient\.exe")


class ScepEndpointMiddleware:
    """Answer the SCEP endpoint paths directly (see the module doc); pass everything else on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = ENDPOINT_PATH.fullmatch(request.path_info)
        if match is None:
            return self.get_response(request)
        return complete_shortcut_response(views.pkiclient(request, alias=match["alias"]))
