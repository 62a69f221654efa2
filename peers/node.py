"""What this node does (``PKI_NODE_ROLE``), as the admin UI shows it and enforces it.

A CA node holds the CAs and their keys. An RA node holds no CA key: every operation that needs one is carried to
the CA by the CA's connector, so the pages and REST calls that would create, renew or sign with a CA key here, or
make keys at all, are neither offered (navigation, buttons) nor reachable (403) on it. A VA node holds no CA key
either; it answers OCSP with its own OCSP key bindings (whose keys it generates, so crypto tokens stay) from the
status its CA pushes, and serves the CA's pushed CRLs.

:class:`NodeRoleMiddleware` puts :class:`NodeInfo` on every request (``request.pki_node``: the base template's
line saying the node's role, the navigation's and buttons' filter) and refuses a blocked view by its URL name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger("peers")

# Operations that create, renew or sign with a CA's key, on any node without CA keys.
_CA_KEY_VIEWS = frozenset({
    "ca-create", "ca-renew", "crl-create", "certificate-issue",  # admin UI
    "api-ca-create-crl",                                           # REST
})
# Making or using keys at all: an RA holds none (its TLS certificate lives with its web server).
_KEY_VIEWS = frozenset({
    "cryptotoken-create", "cryptotoken-generate", "cryptotoken-adopt", "cryptotoken-test", "cryptotoken-export",
    "cryptotoken-generatekeys", "cryptotoken-adoptkey",
})
# The names of pki.views.context.UI_RULES whose buttons a node hides (``allowed.<name>`` is false there).
_CA_KEY_BUTTONS = frozenset({"renew_ca", "create_crl", "create_certificate"})


@dataclass(frozen=True)
class NodeInfo:
    """One node role: its name, what it does, and what its admin UI neither offers nor runs."""

    role: str
    title: str
    summary: str
    blocked_views: frozenset[str] = frozenset()
    hidden_buttons: frozenset[str] = frozenset()

    @property
    def holds_ca_keys(self) -> bool:
        return self.role == "ca"


NODES = {
    "ca": NodeInfo("ca", "CA node", "Holds the CAs and their keys; connects out to its RA and VA nodes."),
    "ra": NodeInfo("ra", "RA node",
                   "Registration authority: holds no CA keys; requests that need a CA are carried to the CA node "
                   "by its peer connector, and the CA's revocations are pushed here.",
                   _CA_KEY_VIEWS | _KEY_VIEWS, _CA_KEY_BUTTONS | {"modify_tokens"}),
    "va": NodeInfo("va", "VA node",
                   "Validation authority: answers OCSP with its own OCSP key bindings from the certificate status "
                   "the CA node pushes here, and serves the CA's CRLs; holds no CA keys.",
                   _CA_KEY_VIEWS, _CA_KEY_BUTTONS),
}


def node_info() -> NodeInfo:
    """This node's role (``PKI_NODE_ROLE``, read per call: tests switch it)."""
    return NODES.get(getattr(settings, "PKI_NODE_ROLE", "ca"), NODES["ca"])


class NodeRoleMiddleware:
    """``request.pki_node`` on every request; on an RA/VA node a view that needs CA keys answers 403."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.pki_node = node = node_info()
        if not node.holds_ca_keys and request.path_info.startswith("/crl/"):
            from .pushed import crl_response

            # The CA's CRLs, as it pushed them, at the CA's own paths (an RA/VA signs none).
            response = crl_response(request)
            if response is not None:
                return response
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        node = getattr(request, "pki_node", None) or node_info()
        match = getattr(request, "resolver_match", None)
        if match is None or match.url_name not in node.blocked_views:
            return None
        logger.info("%s: %s %s refused: it needs CA keys, which this node does not hold", node.title,
                    request.method, request.path)
        text = (f"This is an {node.title}: it holds no CA keys, so this operation is not available here. "
                "Run it on the CA node.")
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            from django.http import JsonResponse

            return JsonResponse({"error_code": 403, "error_message": text}, status=403)
        return HttpResponse(render_to_string("peers/node_refused.html", {"node": node, "text": text}, request),
                            status=403)
