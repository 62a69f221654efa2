"""The RA portal on an RA node (``PKI_NODE_ROLE=ra``): the pages of :data:`peers.carried_http.PORTAL_ROUTES`
(Make New Request with a CSR or a server-generated keystore, Use Username, search, view, revoke, download) are
carried to the CA and answered by the CA's own portal views, as the operator's client certificate.

The RA checks what it can check: the CSRF token (the CA renders its forms with this RA's CSRF secret, so the next
POST passes here) and a client certificate its TLS proxy verified. The CA authenticates the certificate by its own
rules and authorizes every page against its access rules. Messages a CA page queued for the next page (after a
redirect) are kept here and carried with that next page. When the CA does not answer in time, the page says so
(503 with ``Retry-After``) and does not pretend the request failed: a Make New Request the CA received may still
be completed, so the operator searches before sending it again.
"""

from __future__ import annotations

import base64
import logging

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.shortcuts import render

from .carried_http import MAX_BODY, PORTAL_ROUTES
from .choices import WorkKind
from .rest_ra import RETRY_AFTER, caller_identity, carry_and_wait, reply

logger = logging.getLogger("peers")


def carried_portal_view(request: HttpRequest) -> bool:
    """Whether this request is an RA portal page this RA carries."""
    match = getattr(request, "resolver_match", None)
    return match is not None and match.url_name in PORTAL_ROUTES


def _page(request: HttpRequest, title: str, message: str, status: int, retry: str = "") -> HttpResponse:
    return render(request, "peers/portal_unavailable.html", {"title": title, "message": message, "retry": retry},
                  status=status)


def forward_portal(request: HttpRequest, view_func) -> HttpResponse:
    """The RA's answer to one carried portal page (see the module doc)."""
    identity = caller_identity(request)
    if identity is None or "certificate" not in identity:
        return _page(request, "Client certificate needed",
                     "The RA portal on this RA node works with your client certificate: the CA decides what you may "
                     "do by it. Open this page with your certificate in the browser.", 403)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = MAX_BODY + 1
    if declared > MAX_BODY:
        return _page(request, "Request too large", f"The request is larger than {MAX_BODY} bytes.", 413)
    body = request.body if request.method == "POST" else b""  # before the CSRF check parses (and consumes) it
    refused = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, view_func, (), {})
    if refused is not None:
        return refused
    get_token(request)  # this RA's CSRF secret, which the CA's forms then carry
    storage = messages.get_messages(request)
    pending = [[m.level, str(m.message), m.extra_tags or ""] for m in storage]
    payload = {"method": request.method, "path": request.path_info, "query": request.META.get("QUERY_STRING", ""),
               "content_type": request.META.get("CONTENT_TYPE", ""), "accept": request.META.get("HTTP_ACCEPT", ""),
               "body": base64.b64encode(body).decode(), "identity": {"certificate": identity["certificate"]},
               "csrf": request.META.get("CSRF_COOKIE", ""), "messages": pending}
    done = carry_and_wait(request, WorkKind.PORTAL_PAGE, payload)
    if done is None:
        if request.method == "POST":
            text = ("The CA did not answer in time. Your request may still be completed by the CA: search for it "
                    "before you send it again.")
        else:
            text = "The CA did not answer in time. Try again in a moment."
        response = _page(request, "The CA is not answering", text, 503, retry=request.get_full_path())
        response["Retry-After"] = RETRY_AFTER
        return response
    result = done.result or {}
    for entry in result.get("messages") or []:
        if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], int):
            messages.add_message(request, entry[0], str(entry[1])[:2048], extra_tags=str(entry[2] or "")[:64])
    if "messages" not in result:  # the CA refused to carry it at all (its connector's rules): no portal answer
        logger.warning("RA portal %s: the CA refused to carry the page (status %s)", request.path, result.get("status"))
        return _page(request, "Refused by the CA", "The CA refused to carry this page for this RA.",
                     int(result.get("status") or 502) if str(result.get("status", "")).isdigit() else 502)
    return reply(result)
