"""SCEP on an RA node (``PKI_NODE_ROLE=ra``), registered as the SCEP endpoint's node forwarder.

The RA holds no CA keys. GetCACaps, GetCACert, GetCACertChain and GetNextCACert are answered from what the CA
pushed (so they answer while the CA is unreachable); one the CA has not pushed is carried like a PKIOperation.
Every PKIOperation (PKCSReq, RenewalReq, GetCertInitial, GetCert, GetCRL) is encrypted to the CA, so it is
carried to the CA as it came, and the HTTP request is held open until the CA's CertRep comes back. When the CA
does not answer within ``PKI_PEER_REQUEST_TIMEOUT`` the client gets 503 with ``Retry-After``: the RA cannot sign
a PENDING CertRep itself, and a client that re-sends gets the CA's answer (the same certificate when the first
copy was issued meanwhile: SCEP's transactionID rules on the CA).
"""

from __future__ import annotations

import base64
import binascii
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from pki.db import execute
from protocols.scep.operations import ScepHttpError
from protocols.scep.views import get_message, post_body

from . import queue
from .choices import WorkKind
from .models import PushedScepAlias

logger = logging.getLogger("peers")
GET_OPERATIONS = ("GetCACaps", "GetCACert", "GetCACertChain", "GetNextCACert")
RETRY_AFTER = "10"


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text.encode(), status=status, content_type="text/plain; charset=utf-8")


def _reply(result: dict) -> HttpResponse:
    try:
        status = int(result.get("status", 502))
        body = base64.b64decode(result.get("body", ""), validate=True)
    except (TypeError, ValueError, binascii.Error):
        logger.error("SCEP via the CA: an unreadable answer")
        return _plain(502, "The CA's answer could not be read.")
    response = HttpResponse(body, status=status, content_type=str(result.get("content_type", "text/plain"))[:128])
    response["Cache-Control"] = "no-store"
    return response


def _body(request: HttpRequest, limit: int) -> bytes | HttpResponse:
    """The PKIOperation's message, read by the CA endpoint's own readers (POST body or GET parameter)."""
    try:
        if request.method == "POST":
            body = post_body(request, limit)
        else:
            body = get_message(request.GET.get("message"), limit)
    except ScepHttpError as exc:
        return _plain(exc.status, exc.text)
    if len(body) > limit:
        return _plain(413, f"The request is larger than {limit} bytes.")
    if not body:
        return _plain(400, "An empty SCEP message.")
    return body


def _carry(alias: PushedScepAlias, kind: str, payload: dict, request: HttpRequest, what: str) -> HttpResponse:
    timeout = float(getattr(settings, "PKI_PEER_REQUEST_TIMEOUT", 30))
    requester = f"scep:{alias.name}"
    item = queue.submit(kind, {"alias": alias.name, **payload,
                               "client_address": request.META.get("REMOTE_ADDR", "")}, requester, timeout)
    done = queue.wait_for_answer(item)
    if done is None:
        logger.warning("SCEP %s %s: no answer from the CA within %.0f s (work item %s)", alias.name, what, timeout,
                       item.pk)
        response = _plain(503, "The CA did not answer in time; retry later.")
        response["Retry-After"] = RETRY_AFTER
        return response
    return _reply(done.result or {})


# What a carried request needs of its alias: one prepared statement (the ORM's query building cost the RA more
# CPU than the statement itself, on every enrollment), without the pushed answers to the read-only operations.
_CARRIED_ALIAS_SQL = "SELECT name, enabled, max_body_size FROM peers_pushedscepalias WHERE name = %s"


def _alias(name: str, carried: bool) -> PushedScepAlias | None:
    if "\x00" in name:
        return None
    if not carried:
        return PushedScepAlias.objects.filter(name=name[:255]).first()
    with connection.cursor() as cur:
        execute(cur, "peers_scep_alias", _CARRIED_ALIAS_SQL, [name[:255]])
        row = cur.fetchone()
    return None if row is None else PushedScepAlias(name=row[0], enabled=row[1], max_body_size=row[2])


def forward_scep(request: HttpRequest, alias_name: str) -> HttpResponse:
    """The RA's answer to one SCEP request (see the module doc)."""
    operation = request.GET.get("operation")
    carried = request.method == "POST" or operation == "PKIOperation"
    alias = _alias(alias_name, carried)
    if alias is None or not alias.enabled:
        return _plain(404, f"No SCEP alias '{alias_name[:64]}'.")
    if carried:
        if request.method == "POST" and operation not in (None, "", "PKIOperation"):
            return _plain(400, f"Only PKIOperation may be POSTed, not {operation[:32]}.")
        body = _body(request, alias.max_body_size)
        if isinstance(body, HttpResponse):
            return body
        return _carry(alias, WorkKind.SCEP_PKIOPERATION, {"message": base64.b64encode(body).decode()}, request,
                      "PKIOperation")
    if not operation:
        return _plain(400, "Missing operation parameter.")
    if operation not in GET_OPERATIONS:
        return _plain(400, f"Unknown operation '{operation[:32]}'.")
    message = request.GET.get("message") or ""
    if len(message) > 1024:
        return _plain(400, "The message parameter is too long.")
    pushed = alias.responses.get(f"{operation}|{message}")
    if pushed is not None:
        return _reply(pushed)
    return _carry(alias, WorkKind.SCEP_GET, {"operation": operation, "message": message}, request, operation)
