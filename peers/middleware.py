"""The peers protocol's short way through Django, as the SCEP endpoint's: ``/peers/v1/...`` calls authenticate
themselves by the forwarded client certificate as an incoming peer (:mod:`peers.incoming`) and never use a
session, CSRF token or the administrators' client-certificate login, whose middleware would otherwise look up
(and audit as unknown) the CA connector's certificate, which the RA does not hold, on every lease."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from pki.http.headers import complete_shortcut_response

from . import pushed, ra_views, rest_ra

ROUTES = {"/peers/v1/hello": ra_views.hello, "/peers/v1/lease": ra_views.lease,
          "/peers/v1/answer": ra_views.answer, "/peers/v1/push/scep": ra_views.push_scep,
          "/peers/v1/push/status": pushed.push_status}


class PeerEndpointMiddleware:
    """Answer the ``/peers/v1/`` paths directly; pass everything else on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = ROUTES.get(request.path_info)
        if view is None:
            return self.get_response(request)
        return complete_shortcut_response(view(request), content_length=False, no_store=True)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        """On an RA node: a REST call that needs the CA is carried to it instead of running here
        (:mod:`peers.rest_ra`); the REST boundary checks run first, as for the view itself. The RA portal's pages
        and the logout of an RA portal session likewise (:mod:`peers.portal_ra`)."""
        if not rest_ra.is_ra():
            return None
        if rest_ra.carried_rest_view(request):
            return rest_ra.forward_rest(request, view_func)
        from . import portal_ra  # the RA portal's pages, the same way

        if portal_ra.carried_portal_view(request):
            return portal_ra.forward_portal(request, view_func)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "logout" and request.method == "POST" \
                and portal_ra.portal_session(request) is not None:
            return portal_ra.portal_logout(request, view_func)  # ends the RA portal session at the CA too
        return None
