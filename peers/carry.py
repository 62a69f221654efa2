"""CA side: running the work a connector leased from an RA, once per idempotency key, under the access rules.

Who may do what:

* the **connector** itself: its key binding's certificate is matched to the CA's role members like an
  administrator's client certificate (issuing CA + serial, or CN), and those roles must allow
  ``/peer/carry/<protocol>`` (``/peer/carry/scep``) for each kind of request it carries;
* the **requester** at the RA: the request then runs with that identity's rights here, exactly as if it had
  come in locally. For SCEP that is the alias (``scep:<alias>``, which must exist and be enabled on the CA);
  SCEP's own checks (enrollment code, RA shared secret, renewal signature) run on the CA as they always do.

Each carried request is audited on the CA as ``PEER_REQUEST_CARRIED`` with both identities (actor: the
connector; details: the requester, the RA's work item and the answer's status), beside the events the
operation itself writes as the requester (``scep:<alias>``). Those name the carrying connector and the RA's work
item too (``carried_by``, ``ra_work_item``, ``ra_requester`` in their details), so each change a carried request
made is on record with both identities in the transaction that made it.

When the answer goes: a SCEP answer (a CertRep, encrypted to the device; the read-only operations' answers) is
handed to the connector's poster as soon as the operation ends (``answer_ready``), while the answer's record and
the ``PEER_REQUEST_CARRIED`` event are written: the device does not wait for them. A process killed in between
leaves the request answered at the RA, its certificate and the operation's own events (with both identities) on
record at the CA, and its claim row without an answer (never needed: an answered item is not handed out again).
A carried REST call's or portal page's answer goes only after its record: it may hold a keystore generated here,
whose body is dropped from the record once the RA has it (:func:`forget_answer`).

Once: a :class:`~peers.models.CarriedRequest` row per (connector, idempotency key) holds the answer after the
run, and a PostgreSQL advisory lock on the key is held during it. The same item leased again (a lease ran out
because a connector died after running it but before the RA got the answer) gets that answer back without a
second run; one whose run is still going waits for it. The one window left: a process killed between the
operation's commit and the answer's record; the rerun then meets the operation's own replay rules (SCEP: the same
senderNonce is refused, and the client's re-send with a fresh nonce gets the certificate issued the first time).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from pki import audit
from pki.auth.access import Actor
from pki.auth.clientcert import ClientCertificateRefused, actor_for_certificate
from pki.db import execute_in_one, json_value

from .choices import WorkKind, carry_rule
from .models import CarriedRequest, PeerConnector
from .queue import no_flush

logger = logging.getLogger("peers")
HOLD_WAIT = 30.0
AUDIT_EVENT = "PEER_REQUEST_CARRIED"


class Busy(Exception):
    """The same work item is being run right now (by another connector process): answer it later."""


def _plain(status: int, text: str) -> dict[str, Any]:
    return {"status": status, "content_type": "text/plain; charset=utf-8",
            "body": base64.b64encode(text.encode()).decode()}


def _refusal(kind: str, status: int, text: str) -> dict[str, Any]:
    """A refusal to carry, in the requester's protocol: the REST API's JSON error shape for carried HTTP requests."""
    if kind in (WorkKind.REST_CALL, WorkKind.PORTAL_PAGE):
        from .carried_http import json_answer

        return json_answer(status, text)
    return _plain(status, text)


def _scep_response(response) -> dict[str, Any]:
    return {"status": response.status, "content_type": response.content_type,
            "body": base64.b64encode(response.body).decode()}


def connector_actor(connector: PeerConnector) -> Actor | None:
    """The connector as the CA's access rules see it: its binding certificate matched to role members."""
    cert_row = connector.binding.certificate
    if cert_row is None:
        return None
    try:
        return actor_for_certificate(cert_row.certificate)
    except ClientCertificateRefused:
        return None


def _scep_alias(name: Any):
    from protocols.scep import aliascache

    if not isinstance(name, str) or not name or len(name) > 255 or "\x00" in name:
        return None
    return aliascache.get_alias(name)


def _run_scep_pkioperation(payload: dict[str, Any]) -> dict[str, Any]:
    from protocols.scep.operations import ScepHttpError
    from protocols.scep.pkioperation import pki_operation

    alias = _scep_alias(payload.get("alias"))
    if alias is None:
        return _plain(404, f"No SCEP alias '{str(payload.get('alias'))[:64]}'.")
    try:
        body = base64.b64decode(str(payload.get("message", "")), validate=True)
    except (binascii.Error, ValueError):
        return _plain(400, "The carried SCEP message is not base64.")
    if len(body) > alias.max_body_size:
        return _plain(413, f"The request is larger than {alias.max_body_size} bytes.")
    try:
        return _scep_response(pki_operation(alias, body))
    except ScepHttpError as exc:
        return _plain(exc.status, exc.text)


SCEP_GETS = ("GetCACaps", "GetCACert", "GetCACertChain", "GetNextCACert")


def scep_get(alias, operation: str, message: str | None) -> dict[str, Any]:
    """The CA's answer to a read-only SCEP operation, as pushed to and carried for an RA."""
    from protocols.scep import operations

    handler = {"GetCACaps": operations.get_ca_caps, "GetCACert": operations.get_ca_cert,
               "GetCACertChain": operations.get_ca_cert_chain, "GetNextCACert": operations.get_next_ca_cert}[operation]
    try:
        return _scep_response(handler(alias, message or None))
    except operations.ScepHttpError as exc:
        return _plain(exc.status, exc.text)


def _run_scep_get(payload: dict[str, Any]) -> dict[str, Any]:
    alias = _scep_alias(payload.get("alias"))
    if alias is None:
        return _plain(404, f"No SCEP alias '{str(payload.get('alias'))[:64]}'.")
    operation, message = payload.get("operation"), payload.get("message")
    if operation not in SCEP_GETS or not isinstance(message, str | type(None)) or len(message or "") > 1024:
        return _plain(400, "Unknown SCEP operation.")
    return scep_get(alias, operation, message)


def _run_rest(payload: dict[str, Any]) -> dict[str, Any]:
    from .carried_http import run_rest

    return run_rest(payload)


def _run_portal(payload: dict[str, Any], connector: PeerConnector | None = None) -> dict[str, Any]:
    from .carried_http import run_portal

    # The connector binds an RA portal session to the RA it was made through (peers.portal_sessions).
    return run_portal(payload, connector.pk if connector is not None else None)


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    WorkKind.SCEP_PKIOPERATION: _run_scep_pkioperation,
    WorkKind.SCEP_GET: _run_scep_get,
    WorkKind.REST_CALL: _run_rest,
    WorkKind.PORTAL_PAGE: _run_portal,
}


def _requester_for(kind: str, payload: dict[str, Any]) -> str:
    """The identity the request runs as here (never what the RA claims beyond its payload's alias)."""
    if kind.startswith("scep."):
        return f"scep:{str(payload.get('alias', ''))[:200]}"
    if kind in (WorkKind.REST_CALL, WorkKind.PORTAL_PAGE):
        from .carried_http import presented_identity

        return presented_identity(payload.get("identity"))
    return ""


def _work_item(item: dict[str, Any]) -> int | str:
    """The RA's id of a work item, as the RA sent it (an integer), for the audit details."""
    value = item.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else str(value or "")[:32]


def _lock_id(connector: PeerConnector, key: str) -> str:
    return f"peers:{connector.pk}:{key}"


# PostgreSQL: take the (connector, key) advisory lock and, only when it was taken, claim the key with a new row, in
# one round trip; also the row that was there already (its answer, when a run finished before).
_CLAIM_SQL = (
    "WITH lock AS (SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS got),"
    " claimed AS (INSERT INTO peers_carriedrequest (connector_id, idempotency_key, kind, requester, claimed_at)"
    " SELECT %s, %s, %s, %s, %s FROM lock WHERE got ON CONFLICT (connector_id, idempotency_key) DO NOTHING"
    " RETURNING id),"
    " earlier AS (SELECT id, result FROM peers_carriedrequest WHERE connector_id = %s AND idempotency_key = %s)"
    " SELECT got, (SELECT id FROM claimed), (SELECT id FROM earlier), (SELECT result FROM earlier) FROM lock")


def _claim(connector: PeerConnector, key: str, kind: str, requester: str) -> tuple[int, dict | None, bool]:
    """Hold this (connector, key) for the run and claim it: (row id, the answer recorded before or None, whether
    the row is new). On PostgreSQL a session-level advisory lock, which a killed process releases with its
    connection, is held on return (released by :func:`_finish` or :func:`_release`): a second run of the same key
    waits here for the first (then reads its answer); after :data:`HOLD_WAIT` seconds it gives up with
    :class:`Busy`."""
    if connection.vendor != "postgresql":
        row, created = CarriedRequest.objects.get_or_create(
            connector=connector, idempotency_key=key,
            defaults={"kind": kind, "requester": requester, "claimed_at": timezone.now()})
        return row.pk, row.result, created
    end = time.monotonic() + HOLD_WAIT
    with connection.cursor() as cur:
        while True:
            # Committed without waiting for the WAL flush: a claim lost to a crash of the CA's database is run
            # again when its lease runs out, as one that crashed before its claim; the run's own commit, which
            # is flushed, flushes the claim with it.
            execute_in_one(cur, [*no_flush(), ("peers_claim", _CLAIM_SQL, [
                _lock_id(connector, key), connector.pk, key, kind, requester, timezone.now(), connector.pk, key])])
            got, new_id, earlier_id, earlier = cur.fetchone()
            if got:
                break
            if time.monotonic() > end:
                raise Busy(key)
            time.sleep(0.05)
    return (new_id, None, True) if new_id is not None else (earlier_id, json_value(earlier), False)


def _release(connector: PeerConnector, key: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [_lock_id(connector, key)])


_FINISH_SQL = ("UPDATE peers_carriedrequest SET result = %s::jsonb, finished_at = %s WHERE id = %s"
               " RETURNING id, pg_advisory_unlock(hashtextextended(%s, 0))")


def _finish(connector: PeerConnector, key: str, row_id: int, result: dict[str, Any], details: dict[str, Any]) -> None:
    """Record the answer and the audit event in one transaction; on PostgreSQL in one statement (the answer's
    UPDATE goes along with the audit append) that also releases the advisory lock."""
    entry = audit.Entry(AUDIT_EVENT, f"peer:{connector.name}", "peerconnector", str(connector.pk),
                        {**details, "status": result.get("status")})
    with transaction.atomic():
        if connection.vendor == "postgresql":
            rows = audit.record_many_along(("peers_carried", _FINISH_SQL,
                                            [json.dumps(result), timezone.now(), row_id, _lock_id(connector, key)]),
                                           [entry])
            if not rows:  # no claim row to record on (removed meanwhile): the lock is still this session's
                _release(connector, key)
        else:
            CarriedRequest.objects.filter(pk=row_id).update(result=result, finished_at=timezone.now())
            audit.record_many([entry])


#: The kinds whose answer may go to the RA before its record is written (see the module doc).
ANSWERED_BEFORE_RECORD = frozenset({WorkKind.SCEP_PKIOPERATION, WorkKind.SCEP_GET})


def carry(connector: PeerConnector, item: dict[str, Any], who: Actor | None = None,
          answer_ready: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one leased work item and return the answer for the RA (``{"status", "content_type", "body"}``).
    ``who``: the connector's :func:`connector_actor` when the caller has it (the connector looks it up once a
    second, for all the items it carries meanwhile), else it is looked up here. ``answer_ready``: called with
    the answer of a run of a kind in :data:`ANSWERED_BEFORE_RECORD` as soon as the run ends, before the answer is
    recorded (the caller posts it meanwhile); not called for other kinds, refusals or answers from the record.

    Raises :class:`Busy` when the same item is being run elsewhere right now."""
    kind, key = str(item.get("kind", "")), str(item.get("key", ""))[:64]
    payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
    requester = _requester_for(kind, payload)
    connector_name = f"peer:{connector.name}"
    details = {"kind": kind, "requester": requester, "ra_requester": str(item.get("requester", ""))[:255],
               "work_item": _work_item(item), "idempotency_key": key,
               "client_address": str(payload.get("client_address", ""))[:64]}
    runner = RUNNERS.get(kind)
    if runner is None or not key:
        audit.record_failure(AUDIT_EVENT, connector_name, "unknown kind of work", object_type="peerconnector",
                             object_id=connector.pk, details=details)
        return _refusal(kind, 400, f"This CA does not carry '{kind[:64]}' requests.")
    who = who or connector_actor(connector)
    rule = carry_rule(kind)
    if who is None or not who.is_allowed(rule):
        reason = f"the connector's certificate holds no role allowing {rule}"
        audit.record_failure(AUDIT_EVENT, connector_name, reason, object_type="peerconnector",
                             object_id=connector.pk, details=details)
        logger.warning("Peer %s: refused to carry %s: %s", connector.name, kind, reason)
        return _refusal(kind, 403, "The CA refused to carry this request.")
    row_id, earlier, created = _claim(connector, key, kind, requester)
    finished = False
    try:
        if earlier is not None:
            logger.info("Peer %s: work item %s answered again from the record (key %s)", connector.name,
                        item.get("id"), key)
            return earlier
        if not created:
            # A run of this key started and its process died before recording the answer (the lock is free):
            # run it again. What the dead run committed stays; SCEP answers a replayed message by its own rules.
            logger.warning("Peer %s: work item %s (key %s) is run again after an unfinished run", connector.name,
                           item.get("id"), key)
            details["rerun"] = True
        # The operation's own events name the connector and the RA's work item (in its own transaction).
        with audit.on_behalf({"carried_by": connector_name, "ra_work_item": details["work_item"],
                              "ra_requester": details["ra_requester"]}):
            result = runner(payload, connector) if kind == WorkKind.PORTAL_PAGE else runner(payload)
        if answer_ready is not None and kind in ANSWERED_BEFORE_RECORD:
            answer_ready(result)
        if result.get("actor"):  # a carried HTTP request: the identity this CA authenticated it as
            details["presented"], details["requester"] = details["requester"], str(result["actor"])[:255]
        _finish(connector, key, row_id, result, details)
        finished = True
        return result
    finally:
        if not finished:
            _release(connector, key)


def forget_answer(connector: PeerConnector, item: dict[str, Any]) -> None:
    """Once the RA accepted the answer to a carried HTTP request, drop its body from the CA's record: it may hold a
    keystore generated here (the CA keeps no generated key unless key recovery says so) or personal data, and an
    answered item is never handed out again. The status, type and caller stay for the record."""
    if str(item.get("kind", "")) not in (WorkKind.REST_CALL, WorkKind.PORTAL_PAGE):
        return
    key = str(item.get("key", ""))[:64]
    row = CarriedRequest.objects.filter(connector=connector, idempotency_key=key).exclude(result=None).first()
    if row is not None and "body" in row.result:
        kept = {k: v for k, v in row.result.items() if k not in ("body", "messages")}
        CarriedRequest.objects.filter(pk=row.pk).update(result={**kept, "body_forgotten": True})
