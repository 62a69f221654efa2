"""The RA/VA side of the peers protocol, under ``/peers/v1/``: what a CA connector calls over mTLS.

``GET hello``           who this node is (the connector's connection test)
``POST lease``          ``{"wait": s, "max": n, "kinds": [...]}`` -> ``{"items": [{id, key, kind, payload,
                        requester}, ...]}``: waiting work, held open up to ``wait`` seconds until some arrives
``POST answer``         ``{"id", "key", "result"}`` -> ``{"outcome": "accepted" | "duplicate"}``, or several:
                        ``{"answers": [{"id", "key", "result"}, ...]}`` -> ``{"outcomes": [...]}`` (an
                        unknown item is ``"unknown"`` there rather than a 404 for all)
``POST push/scep``      ``{"aliases": [...]}``: the CA's SCEP aliases and its answers to the read-only operations

Every call is authenticated as an incoming peer (:mod:`peers.incoming`); a refused one gets 401/403 with a short
JSON reason. On a CA node these paths do not exist (404): nothing ever connects in to a CA.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from pki import audit

from . import incoming, queue
from .choices import WorkKind
from .models import PushedScepAlias

logger = logging.getLogger("peers")
MAX_WAIT = 25.0
MAX_ANSWERS = 2 * queue.MAX_LEASE
MAX_ITEM_ID = 2**63 - 1  # a work item's id is a PostgreSQL bigint
GET_OPERATIONS = ("GetCACaps", "GetCACert", "GetCACertChain", "GetNextCACert")


class BadRequest(Exception):
    pass


def _error(status: int, code: str, text: str) -> JsonResponse:
    return JsonResponse({"error_code": code, "error_message": text}, status=status)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: no JSON number PostgreSQL's jsonb takes back
        raise ValueError(text)
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(text)  # NaN, Infinity: not JSON


def _json(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequest("The body must be JSON (Content-Type: application/json).")
    try:
        data = json.loads(request.body or b"{}", parse_float=_finite, parse_constant=_no_constant)
    except RequestDataTooBig:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    if not queue.storable(data):
        raise BadRequest("The body holds a NUL character or a lone surrogate.")
    return data


def _peer_endpoint(method: str):
    def decorator(view):
        @csrf_exempt
        def wrapper(request: HttpRequest) -> JsonResponse:
            if getattr(settings, "PKI_NODE_ROLE", "ca") == "ca":
                return _error(404, "not-found", "A CA node takes no incoming peer connections.")
            if request.method != method:
                return _error(405, "method", f"Use {method}.")
            try:
                who = incoming.authenticate(request)
            except incoming.PeerRefused as exc:
                return _error(exc.status, exc.code, exc.text)
            try:
                return view(request, who)
            except RequestDataTooBig:
                return _error(413, "too-large", "The request body is too large.")
            except BadRequest as exc:
                logger.info("Peer %s: %s refused: %s", who.actor.name, request.path, exc)
                return _error(400, "bad-request", str(exc))
        return wrapper
    return decorator


@_peer_endpoint("GET")
def hello(request: HttpRequest, who: incoming.IncomingIdentity) -> JsonResponse:
    return JsonResponse({"node": settings.PKI_NODE_ROLE, "peer": who.actor.name, "protocol": 1})


def _number(data: dict, key: str, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high):
        raise BadRequest(f"'{key}' must be a number from {low:g} to {high:g}.")
    return float(value)


@_peer_endpoint("POST")
def lease(request: HttpRequest, who: incoming.IncomingIdentity) -> JsonResponse:
    data = _json(request)
    wait = _number(data, "wait", 0, 0, MAX_WAIT)
    limit = int(_number(data, "max", 8, 1, queue.MAX_LEASE))
    kinds = data.get("kinds")
    if kinds is not None and (not isinstance(kinds, list) or not all(k in WorkKind.values for k in kinds)):
        raise BadRequest(f"'kinds' must be a list of {', '.join(WorkKind.values)}.")
    items = queue.lease(who.actor.name, limit=limit, wait_seconds=wait, kinds=kinds, peer_id=who.peer.pk)
    return JsonResponse({"items": [{"id": i.pk, "key": i.idempotency_key, "kind": i.kind, "payload": i.payload,
                                    "requester": i.requester, "attempt": i.attempts} for i in items]})


ANSWER_SHAPE = "An answer is {\"id\": int, \"key\": str, \"result\": object}."


def _one_answer(value: Any) -> tuple[int, str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise BadRequest(ANSWER_SHAPE)
    item_id, key, result = value.get("id"), value.get("key"), value.get("result")
    if isinstance(item_id, bool) or not isinstance(item_id, int) or not 0 < item_id <= MAX_ITEM_ID \
            or not isinstance(key, str) or len(key) > 64 or not isinstance(result, dict):
        raise BadRequest(ANSWER_SHAPE)
    return item_id, key, result


@_peer_endpoint("POST")
def answer(request: HttpRequest, who: incoming.IncomingIdentity) -> JsonResponse:
    data = _json(request)
    if "answers" in data:  # several at once: {"answers": [answer, ...]} -> {"outcomes": [...]}, one per answer
        many = data["answers"]
        if not isinstance(many, list) or not 0 < len(many) <= MAX_ANSWERS:
            raise BadRequest(f"'answers' must be a list of 1 to {MAX_ANSWERS} answers.")
        outcomes = queue.answer_many(who.actor.name, [_one_answer(a) for a in many], peer_id=who.peer.pk)
        return JsonResponse({"outcomes": outcomes})
    outcome = queue.answer(who.actor.name, *_one_answer(data), peer_id=who.peer.pk)
    if outcome == "unknown":
        return _error(404, "unknown-item", "No such work item.")
    return JsonResponse({"outcome": outcome})


def _pushed_response(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("A pushed response is {\"status\", \"content_type\", \"body\" (base64)}.")
    status, ctype, body = value.get("status"), value.get("content_type"), value.get("body")
    if not isinstance(status, int) or not 200 <= status <= 599 or not isinstance(ctype, str) or len(ctype) > 128 \
            or not isinstance(body, str):
        raise BadRequest("A pushed response is {\"status\", \"content_type\", \"body\" (base64)}.")
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("A pushed response body is not base64.") from None
    return {"status": status, "content_type": ctype, "body": body}


def _pushed_alias(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise BadRequest("A pushed alias is {\"name\", \"enabled\", \"max_body_size\", \"responses\"}.")
    name = value["name"]
    size = value.get("max_body_size", 65536)
    responses = value.get("responses", {})
    if not (0 < len(name) <= 255) or "\x00" in name or not isinstance(size, int) or not 0 < size <= 1 << 24 \
            or not isinstance(responses, dict):
        raise BadRequest(f"Pushed alias '{name[:64]}' is not valid.")
    for key in responses:
        if not isinstance(key, str) or key.split("|", 1)[0] not in GET_OPERATIONS:
            raise BadRequest(f"Pushed alias '{name[:64]}' has a response for an unknown operation.")
    return {"name": name, "enabled": bool(value.get("enabled", True)), "max_body_size": size,
            "responses": {k: _pushed_response(v) for k, v in responses.items()}}


@_peer_endpoint("POST")
def push_scep(request: HttpRequest, who: incoming.IncomingIdentity) -> JsonResponse:
    data = _json(request)
    aliases = data.get("aliases")
    if not isinstance(aliases, list) or len(aliases) > 1000:
        raise BadRequest("'aliases' must be a list.")
    clean = [_pushed_alias(a) for a in aliases]
    with transaction.atomic():
        before = {a.name: (a.enabled, a.max_body_size, a.responses)
                  for a in PushedScepAlias.objects.select_for_update()}
        # The CA's whole set: aliases it no longer has are gone here too.
        removed = PushedScepAlias.objects.exclude(name__in=[a["name"] for a in clean]).delete()[0]
        changed = [a["name"] for a in clean
                   if before.get(a["name"]) != (a["enabled"], a["max_body_size"], a["responses"])]
        for alias in clean:
            if alias["name"] in changed:
                PushedScepAlias.objects.update_or_create(name=alias["name"],
                                                         defaults={**alias, "pushed_by": who.actor.name})
        if changed or removed:  # pushed again unchanged (the connector's periodic push): nothing to record
            audit.record("PEER_SCEP_PUSH", who.actor.name, object_type="peer", object_id=who.peer.pk,
                         details={"changed": changed, "removed": removed}, in_transaction=True)
    return JsonResponse({"aliases": len(clean)})
