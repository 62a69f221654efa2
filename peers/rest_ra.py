"""REST on an RA node (``PKI_NODE_ROLE=ra``): the operations of :data:`peers.carried_http.REST_ROUTES` at the RA's
``/ejbca/ejbca-rest-api/`` (v1 and v2) and ``/api/v1/approvals/`` are carried to the CA and answered with the CA's
own answer; the RA's own administration (:data:`peers.carried_http.RA_LOCAL_REST_ROUTES`) is answered here, and any
other REST route is refused here (404) before anything is queued.

The RA authenticates (its TLS proxy verifies the client certificate; a bearer token or Basic credentials are passed
on as they came) and forwards the caller's identity; the CA authenticates it again by its own rules and authorizes
it against its own access rules (:mod:`peers.carried_http`), so the RA's roles play no part and an operator keeps
one set of rules, on the CA. The REST API's boundary checks (cross-site requests, JSON bodies) run here first, as
for any API view. The HTTP request is held until the CA answers; after ``PKI_PEER_REQUEST_TIMEOUT`` the caller gets
503 with ``Retry-After`` (a retried pkcs10enroll is a new request: the CA's own rules for the end entity apply).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from pki.auth import throttle
from pki.auth.clientcert import forwarded_certificate

from . import queue
from .carried_http import KEPT_HEADERS, MAX_BODY, presented_identity, rest_route_at_ra
from .choices import WorkKind, WorkStatus
from .models import PeerWorkItem

logger = logging.getLogger("peers")
RETRY_AFTER = "10"


def is_ra() -> bool:
    """Whether this node is an RA (read per request: tests switch it with the settings fixture)."""
    return getattr(settings, "PKI_NODE_ROLE", "ca") == "ra"


def caller_identity(request: HttpRequest) -> dict[str, str] | None:
    """What the RA forwards of the caller: the ``Authorization`` header as it came (the CA checks it), else the
    client certificate the TLS proxy verified (PEM), else None."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "").strip()
    if authorization:
        return {"authorization": authorization}
    cert = forwarded_certificate(request)
    if cert is not None:
        return {"certificate": cert.public_bytes(serialization.Encoding.PEM).decode()}
    return None


def carry_and_wait(request: HttpRequest, kind: str, payload: dict[str, Any]) -> PeerWorkItem | None:
    """Queue one HTTP request for the CA and hold it until the answer (the answered item) or the timeout (None).
    The forwarded credential is dropped from the RA's record once the CA no longer needs it."""
    timeout = float(getattr(settings, "PKI_PEER_REQUEST_TIMEOUT", 30))
    # The caller's address (behind the RA's TLS proxy: the one it forwarded), for the CA's audit log and its
    # per-address failure budgets: the proxy's own address would put every caller through this RA in one budget.
    payload = {**payload, "client_address": throttle.client_address(request)}
    item = queue.submit(kind, payload, presented_identity(payload.get("identity")), timeout)
    done = queue.wait_for_answer(item)
    if done is not None and isinstance(done.result, dict) and done.result.get("body_forgotten"):
        done = None  # answered just after the deadline, kept without its body: as late as no answer
    # What stays in the RA's database: no credential (bearer token, password), no request body (an enrollment code)
    # and, once delivered, no answer body (a keystore). An item a connector still holds keeps its payload (its run
    # may need it); the CA answers a repeat of it from its record.
    scrubbed = {k: v for k, v in payload.items() if k not in ("identity", "body", "csrf")}
    PeerWorkItem.objects.filter(pk=item.pk).exclude(status=WorkStatus.LEASED).update(payload=scrubbed)
    if done is not None and isinstance(done.result, dict):
        kept = {k: v for k, v in done.result.items() if k not in ("body", "messages")}
        PeerWorkItem.objects.filter(pk=item.pk).update(result={**kept, "body_forgotten": True})
    if done is None:
        logger.warning("%s %s: no answer from the CA within %.0f s (work item %s)", request.method, request.path,
                       timeout, item.pk)
    return done


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error_code": status, "error_message": message}, status=status)


def reply(result: dict[str, Any]) -> HttpResponse:
    """The CA's answer as this RA's response: status, content type, body and the kept headers, unchanged."""
    try:
        status = int(result.get("status", 502))
        body = base64.b64decode(result.get("body", ""), validate=True)
    except (TypeError, ValueError, binascii.Error):
        logger.error("Carried HTTP request: an unreadable answer from the CA")
        return _json_error(502, "The CA's answer could not be read.")
    response = HttpResponse(body, status=status, content_type=str(result.get("content_type") or "text/plain")[:255])
    headers = result.get("headers") if isinstance(result.get("headers"), dict) else {}
    for name in KEPT_HEADERS:
        value = headers.get(name)
        if isinstance(value, str) and "\n" not in value and "\r" not in value:
            response[name] = value[:1024]
    length = headers.get("Content-Length")  # a carried HEAD: the length of the body it leaves out
    if not body and isinstance(length, str) and length.isdigit() and len(length) <= 12:
        response["Content-Length"] = length
    return response


def forward_rest(request: HttpRequest, view_func) -> HttpResponse:
    """The RA's answer to one carried REST call (see the module doc)."""
    from pki.http.boundary import check_request

    refused = check_request(request, view_func)
    if refused is not None:
        return refused
    match = request.resolver_match
    if rest_route_at_ra(request.path_info, match.url_name) == "refuse":
        logger.info("%s %s refused at the RA: route %s is not carried to the CA", request.method, request.path,
                    match.url_name)
        return _json_error(404, f"{request.path_info[:200]} is not available at an RA node: call the CA for it.")
    identity = caller_identity(request)
    if identity is None:
        response = _json_error(401, "Authentication credentials were not provided.")
        response["WWW-Authenticate"] = 'Basic realm="api", Bearer realm="pki"'
        return response
    # Whatever carries credentials is queued for the CA, which checks them: an address whose credentials the CA
    # keeps refusing is refused here first (429), so a caller on the RA's side cannot keep the CA checking.
    address = throttle.client_address(request)
    try:
        throttle.check((throttle.ADDRESS, address))
    except throttle.Throttled as exc:
        logger.info("%s %s from %s refused unqueued: throttled for %d s", request.method, request.path, address,
                    exc.retry_after)
        response = _json_error(429, exc.message)
        response["Retry-After"] = str(exc.retry_after)
        return response
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _json_error(400, "Bad Content-Length.")
    if declared > MAX_BODY:
        return _json_error(413, f"The request is larger than {MAX_BODY} bytes.")
    body = request.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return _json_error(413, f"The request is larger than {MAX_BODY} bytes.")
    payload = {"method": request.method, "path": request.path_info, "query": request.META.get("QUERY_STRING", ""),
               "content_type": request.META.get("CONTENT_TYPE", ""), "accept": request.META.get("HTTP_ACCEPT", ""),
               "body": base64.b64encode(body).decode(), "identity": identity}
    # pki.http.nul refuses a NUL in the path or query string first; this keeps any other unstorable text (a
    # header's) from failing the work item's INSERT with a 500.
    if not queue.storable(payload):
        return _json_error(400, "The request holds a NUL character.")
    done = carry_and_wait(request, WorkKind.REST_CALL, payload)
    if done is None:
        response = _json_error(503, "The CA did not answer in time; retry later.")
        response["Retry-After"] = RETRY_AFTER
        return response
    if (done.result or {}).get("status") == 401:
        throttle.record_failure(throttle.ADDRESS, address, ip=address)
    return reply(done.result or {})


def carried_rest_view(request: HttpRequest) -> bool:
    """Whether this request is a REST call this RA answers through :func:`forward_rest`: one it carries to the
    CA, or one of the CA's it refuses (by the URL name it resolved to)."""
    match = getattr(request, "resolver_match", None)
    return match is not None and rest_route_at_ra(request.path_info, match.url_name) != "local"
