"""The SCEP HTTP endpoint (RFC 8894 section 4.1): ``GET|POST .../pkiclient.exe?operation=...&message=...``.

Public (no login): SCEP clients authenticate inside their messages. The alias comes from the URL (the
default alias ``scep`` when the URL names none); an invalid or unknown or disabled alias is 404. A POST body
larger than the alias's limit is refused with 413 before it is read, and so is a GET message that would
decode to more. A chunked POST body (no Content-Length) is read when the server de-chunked it, else 411.
Whatever goes wrong, the answer is a SCEP reply or a plain 4xx/503, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from pki.dbhealth import UNAVAILABLE as DB_UNAVAILABLE

from . import aliascache
from .models import ALIAS_NAME_RE, DEFAULT_ALIAS, ScepAlias
from .operations import (
    ScepHttpError,
    ScepResponse,
    get_ca_caps,
    get_ca_cert,
    get_ca_cert_chain,
    get_next_ca_cert,
)
from .pkioperation import pki_operation

logger = logging.getLogger("protocols.scep")

GET_OPERATIONS = {
    "GetCACaps": get_ca_caps,
    "GetCACert": get_ca_cert,
    "GetCACertChain": get_ca_cert_chain,
    "GetNextCACert": get_next_ca_cert,
}


# On an RA node (PKI_NODE_ROLE=ra) the peers app, a layer above, registers the function that answers every SCEP
# request instead: from the data the CA pushed, or by carrying the request to the CA (which holds the keys).
_node_forwarder: Callable[[HttpRequest, str], HttpResponse] | None = None


def register_node_forwarder(forwarder: Callable[[HttpRequest, str], HttpResponse] | None) -> None:
    """Answer every SCEP request with ``forwarder(request, alias_name)`` (None: answer here again)."""
    global _node_forwarder
    _node_forwarder = forwarder


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text.encode(), status=status, content_type="text/plain; charset=utf-8")


def _response(r: ScepResponse) -> HttpResponse:
    resp = HttpResponse(r.body, status=r.status, content_type=r.content_type)
    resp["Cache-Control"] = "no-store"
    return resp


def _alias(name: str | None) -> ScepAlias | None:
    name = name or DEFAULT_ALIAS
    if not ALIAS_NAME_RE.match(name):
        return None
    # With its CAs and RA profiles, reused between requests while their row versions are unchanged.
    return aliascache.get_alias(name)


def post_body(request: HttpRequest, limit: int) -> bytes:
    """A POSTed PKIOperation's body, at most ``limit`` bytes (ScepHttpError otherwise); the RA node's too."""
    if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads a body without Content-Length as empty. A server that de-chunked it says so with
        # wsgi.input_terminated (gunicorn does): read its stream to the end, at most the alias's limit + 1.
        if not request.META.get("wsgi.input_terminated"):
            raise ScepHttpError(411, "A chunked request body needs a server that de-chunks it; send Content-Length.")
        body = request.META["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            raise ScepHttpError(413, f"The request is larger than {limit} bytes.")
        return body
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ScepHttpError(400, "Bad Content-Length.") from None
    if declared > limit:
        raise ScepHttpError(413, f"The request is larger than {limit} bytes.")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise ScepHttpError(413, f"The request is larger than {limit} bytes.")
    return body


def get_message(message: str | None, limit: int) -> bytes:
    """A GET PKIOperation's ``message`` parameter decoded (ScepHttpError when missing, too long or not base64)."""
    if not message:
        raise ScepHttpError(400, "PKIOperation needs the message parameter.")
    if len(message) > (limit * 4) // 3 + 4:
        raise ScepHttpError(413, f"The request is larger than {limit} bytes.")
    # Some clients do not URL-encode '+' in the base64 message.
    text = message.replace(" ", "+").strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise ScepHttpError(400, "The message parameter is not base64.") from None


@csrf_exempt
def pkiclient(request: HttpRequest, alias: str | None = None) -> HttpResponse:
    """``.../scep/[<alias>/]pkiclient.exe``."""
    if request.method not in ("GET", "POST", "HEAD"):
        return _plain(405, "SCEP takes GET and POST.")
    if _node_forwarder is not None:
        return _node_forwarder(request, alias or DEFAULT_ALIAS)
    config = _alias(alias)
    if config is None:
        return _plain(404, f"No SCEP alias '{alias or DEFAULT_ALIAS}'.")
    operation = request.GET.get("operation")
    try:
        if request.method == "POST":
            if operation not in (None, "", "PKIOperation"):
                raise ScepHttpError(400, f"Only PKIOperation may be POSTed, not {operation}.")
            return _response(pki_operation(config, post_body(request, config.max_body_size)))
        if not operation:
            raise ScepHttpError(400, "Missing operation parameter.")
        if operation == "PKIOperation":
            body = get_message(request.GET.get("message"), config.max_body_size)
            if len(body) > config.max_body_size:
                raise ScepHttpError(413, f"The request is larger than {config.max_body_size} bytes.")
            return _response(pki_operation(config, body))
        handler = GET_OPERATIONS.get(operation)
        if handler is None:
            raise ScepHttpError(400, f"Unknown operation '{operation}'.")
        return _response(handler(config, request.GET.get("message")))
    except ScepHttpError as exc:
        logger.info("SCEP %s %s: HTTP %s: %s", config.name, operation or "PKIOperation", exc.status, exc.text)
        return _plain(exc.status, exc.text)
    except DB_UNAVAILABLE:
        raise  # pki.dbhealth answers 503 + Retry-After: a device retries that, and gives up on a 400
    except Exception:  # never a 500 to a device: log it and answer like EJBCA ("Can not handle request")
        logger.exception("SCEP %s %s failed", config.name, operation or "PKIOperation")
        return _plain(400, "Can not handle request.")
