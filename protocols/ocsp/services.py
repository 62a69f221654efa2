"""The OCSP responder: which CA a request is for, the status of each certificate, and who signs.

Everything an answer depends on is read from the database for every request, in one prepared statement
(:data:`_ANSWER_STATE`): the CA row, the CA's usable OCSP key binding (active, its certificate active, issued
by this CA and valid now), the signing token's version and activation state, and the status of each
certificate asked about. So a revocation, a binding disabled, renewed or re-certified, a CA renewed or a token
deactivated is in the very next answer of every process, and no version counter has to be bumped by every code
path that changes one of them (tests/protocols/ocsp/test_changes.py makes each change from another process).

What is kept per process is only what a value read in that statement names exactly and what never changes
under that name: the parsed responder certificate (by the binding's certificate row id, or by the CA id and
the MD5 of its certificate's DER), the signature algorithm's encoding, and the key handle (by token id and
alias, while the token's version is the one read and the token active: what cryptotokens'
``get_private_key_by_id`` checks, which loads it otherwise). The one thing looked up before the statement, the
CertID issuer hashes -> CA id index, is rebuilt when a request names no CA in it, or a CA that is gone, and
the CAs and their certificate history read differently from when it was built (:class:`_CaIndex`): a stale
index can only miss, and a miss checks.

Answers are signed afresh for every request, also without a nonce (no RFC 5019 response reuse: it would save
the signature only, for nonce-less clients, and still need the status read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections
from django.utils import timezone

from cryptotokens.errors import CryptoTokenError, CryptoTokenOfflineError
from cryptotokens.models import CryptoToken
from cryptotokens.services import get_private_key_by_id
from keybindings.choices import BindingStatus
from keybindings.models import InternalKeyBinding
from pki.choices import CAStatus, CertificateStatus, RevocationReason
from pki.db import execute
from pki.models import CACertificate, Certificate, CertificateAuthority
from pki.x509.algorithms import SignatureAlgorithm, default_signature_algorithm, signature_algorithm

from . import messages
from .messages import CertId, MalformedRequest, SingleStatus

logger = logging.getLogger("pki.ocsp")

OCSP_BINDING = "OcspKeyBinding"


@dataclass(frozen=True)
class OcspAnswer:
    """The DER OCSPResponse and, for a signed answer, how long it may be cached (seconds)."""

    der: bytes
    max_age: int | None = None
    this_update: datetime | None = None


# The CAs and their certificate history as the index saw them (only read when the index misses).
_INDEX_VERSION = (
    "SELECT (SELECT md5(coalesce(string_agg(id::text || ':' || status || ':' || updated_at::text || ':' "
    "|| coalesce(md5(certificate_der), ''), ',' ORDER BY id), '')) FROM pki_certificateauthority), "
    "(SELECT count(*)::text || ':' || coalesce(max(id), 0)::text FROM pki_cacertificate)"
)


class _CaIndex:
    """CertID issuer hashes -> CA id, for every local CA certificate (current and earlier ones)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple | None = None
        self.index: dict[tuple[str, bytes, bytes], int] = {}

    def refresh(self) -> None:
        """Rebuild the index if the CAs or their certificates changed since it was built."""
        version = _index_version()
        if version == self._version:
            return
        with self._lock:
            rows = list(_served_cas().exclude(certificate_der=None)
                        .values_list("pk", "certificate_der"))
            rows += list(CACertificate.objects.filter(ca__in=[pk for pk, _ in rows])
                         .values_list("ca_id", "certificate_der"))
            index: dict[tuple[str, bytes, bytes], int] = {}
            for ca_id, der in rows:
                cert = x509.load_der_x509_certificate(bytes(der))
                for hash_name in messages.HASHES:
                    index.setdefault((hash_name, *messages.issuer_hashes(cert, hash_name)), ca_id)
            self.index, self._version = index, version


def _index_version() -> tuple:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            execute(cur, "ocsp_index_version", _INDEX_VERSION)
            return tuple(cur.fetchone())
    history = CACertificate.objects.order_by("-pk").values_list("pk", flat=True)
    return (tuple((pk, status, updated_at, _md5(der) if der else "") for pk, status, updated_at, der in
                  CertificateAuthority.objects.order_by("pk").values_list("pk", "status", "updated_at",
                                                                           "certificate_der")),
            history.count(), history.first())


_ca_index = _CaIndex()

_ACTIVE = CertificateStatus.ACTIVE.value
# One round trip per answer: the CA, its usable OCSP binding and the statuses asked about (module doc).
# Only this module's constants are formatted into the text; every value from a request is a parameter.
_ANSWER_STATE = (
    "SELECT ca.status, ca.crypto_token_id, ca.key_alias, ca.signature_algorithm, md5(ca.certificate_der), "  # noqa: S608
    "b.crypto_token_id, b.key_pair_alias, b.signature_algorithm, b.certificate_id, "
    # The signer's token: its version and whether it is active, as cryptotokens' get_private_key_by_id reads them.
    "t.version, CASE WHEN t.auto_activate THEN t.auth_code_encrypted <> '' ELSE t.activation_secret <> '' END, "
    "(SELECT json_agg(json_build_array(c.serial, c.status, c.revocation_reason, "
    "floor(extract(epoch FROM c.revoked_at))::bigint)) "
    "FROM pki_certificate c WHERE c.ca_id = ca.id AND c.serial {serials}) "
    "FROM pki_certificateauthority ca LEFT JOIN LATERAL ("
    # From the (few) bindings to their certificates by primary key, never through the CA's certificates.
    "SELECT ib.crypto_token_id, ib.key_pair_alias, ib.signature_algorithm, ib.certificate_id "
    "FROM keybindings_internalkeybinding ib CROSS JOIN LATERAL (SELECT bc.not_after FROM pki_certificate bc "
    f"WHERE bc.id = ib.certificate_id AND bc.ca_id = ca.id AND bc.status = '{_ACTIVE}' "
    "AND bc.not_before <= %s AND bc.not_after > %s) bc "
    f"WHERE ib.binding_type = '{OCSP_BINDING}' AND ib.status = '{BindingStatus.ACTIVE.value}' "
    "ORDER BY bc.not_after DESC LIMIT 1) b ON TRUE "
    "LEFT JOIN cryptotokens_cryptotoken t ON t.id = coalesce(b.crypto_token_id, ca.crypto_token_id) "
    f"WHERE ca.id = %s AND ca.status <> '{CAStatus.EXTERNAL.value}'"
)
# Most requests ask about one certificate: an equality PostgreSQL's generic plan always takes through the
# (ca, serial) index; several go through ANY (a generic plan may guess ten rows for that array).
_ANSWER_STATE_ONE = _ANSWER_STATE.replace("{serials}", "= %s")
_ANSWER_STATE_MANY = _ANSWER_STATE.replace("{serials}", "= ANY(%s::varchar[])")
# A VA node (PKI_NODE_ROLE=va) holds no CA keys: it answers for the external CAs whose certificates and statuses
# its CA pushes into these same tables (peers.pushed), signed by its own OCSP key binding for each.
_EXTERNAL = f" AND ca.status <> '{CAStatus.EXTERNAL.value}'"
_VA_STATE_ONE, _VA_STATE_MANY = _ANSWER_STATE_ONE.replace(_EXTERNAL, ""), _ANSWER_STATE_MANY.replace(_EXTERNAL, "")


def _serves_external() -> bool:
    return getattr(settings, "PKI_NODE_ROLE", "ca") == "va"


def _served_cas():
    """The CAs this responder answers for: those holding a key here, and on a VA the pushed external CAs."""
    return CertificateAuthority.objects.all() if _serves_external() else CertificateAuthority.objects.local()


def _validity() -> int:
    return int(getattr(settings, "PKI_OCSP_VALIDITY", 300))


def respond(data: bytes, now: datetime | None = None) -> OcspAnswer:
    """Answer a DER OCSP request; every outcome is an OCSPResponse (errors carry only their status)."""
    try:
        request = messages.parse_request(data)
    except MalformedRequest as exc:
        logger.info("OCSP malformed request: %s", exc)
        return OcspAnswer(messages.error_response("malformed_request"))
    now = now or timezone.now()
    serials = [format(cert_id.serial, "x") for cert_id in request.cert_ids]
    for attempt in (1, 2):
        index = _ca_index.index
        owners = [index.get(cert_id.issuer_key) for cert_id in request.cert_ids]
        ca_id = next((ca for ca in owners if ca is not None), None)
        state = answer_state(ca_id, serials, now) if ca_id is not None else None
        if state is not None or attempt == 2:
            break
        _ca_index.refresh()
        if _ca_index.index is index:  # nothing new to look in (another thread may have rebuilt it meanwhile)
            break
    if state is None:
        logger.info("OCSP request for no CA of this responder (%d certificates)", len(owners))
        return OcspAnswer(messages.error_response("unauthorized"))
    # A certificate of another CA in the same request: that CA is not the signer here, so "unknown".
    statuses = _statuses(request.cert_ids, serials, owners, ca_id, state[11])
    try:
        return _signed(ca_id, state, statuses, request, now)
    except CryptoTokenError as exc:
        logger.warning("OCSP for CA %s: its key is not available (%s); answering tryLater", ca_id, exc)
        return OcspAnswer(messages.error_response("try_later"))


def answer_state(ca_id: int, serials: list[str], now: datetime) -> tuple | None:
    """The values one answer for CA ``ca_id`` depends on (:data:`_ANSWER_STATE`'s row), None if the CA is
    not one this responder serves. On PostgreSQL one prepared statement; elsewhere the same through the ORM."""
    if connection.vendor == "postgresql":
        if _serves_external():
            if len(serials) == 1:
                return _read("ocsp_va_answer_state", _VA_STATE_ONE, [serials[0], now, now, ca_id])
            return _read("ocsp_va_answer_states", _VA_STATE_MANY, [serials, now, now, ca_id])
        if len(serials) == 1:
            return _read("ocsp_answer_state", _ANSWER_STATE_ONE, [serials[0], now, now, ca_id])
        return _read("ocsp_answer_states", _ANSWER_STATE_MANY, [serials, now, now, ca_id])
    ca = _served_cas().filter(pk=ca_id).first()
    if ca is None:
        return None
    binding = (InternalKeyBinding.objects
               .filter(binding_type=OCSP_BINDING, status=BindingStatus.ACTIVE, certificate__ca_id=ca_id,
                       certificate__status=_ACTIVE, certificate__not_before__lte=now, certificate__not_after__gt=now)
               .order_by("-certificate__not_after")
               .values_list("crypto_token_id", "key_pair_alias", "signature_algorithm", "certificate_id").first())
    found = [[serial, status, reason, int(revoked_at.timestamp()) if revoked_at else None]
             for serial, status, reason, revoked_at in Certificate.objects.filter(ca_id=ca_id, serial__in=serials)
             .values_list("serial", "status", "revocation_reason", "revoked_at")]
    token = CryptoToken.objects.filter(pk=binding[0] if binding else ca.crypto_token_id).first()
    return (ca.status, ca.crypto_token_id, ca.key_alias, ca.signature_algorithm,
            _md5(ca.certificate_der) if ca.certificate_der else None,
            *(binding or (None, None, None, None)),
            token.version if token else None, token.is_active if token else None, found or None)


def _read(purpose: str, sql: str, params: list) -> tuple | None:
    """One row of a prepared statement, the first of the request; it is its own connection health check.

    With CONN_HEALTH_CHECKS Django sends ``SELECT 1`` on a kept connection before a request's first query: a
    second round trip for every answer, as costly as the answer's own. Here the answer's read is the check
    instead: on a kept session that is gone it fails before anything was done, and is sent once more on a new
    connection, which is what the health check would have led to.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    unchecked = (conn.connection is not None and conn.health_check_enabled
                 and not conn.health_check_done and not conn.in_atomic_block)
    if unchecked:
        conn.health_check_done = True
    try:
        return _fetch_one(conn, purpose, sql, params)
    except (OperationalError, InterfaceError) as exc:
        if not unchecked:
            raise
        logger.info("OCSP: the kept database session is gone (%s); reading on a new one", str(exc).strip()[:200])
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is dropped either way
            conn.connection = None
    return _fetch_one(conn, purpose, sql, params)


def _fetch_one(conn, purpose: str, sql: str, params: list) -> tuple | None:
    """The statement's one row, read on the driver's own cursor of Django's connection: Django's cursor wrapper
    (its per-call checks, execute wrappers, debug logging) cost about as much CPU as the driver's work for this
    one statement. Its error conversion is kept (``wrap_database_errors``): a lost session is Django's
    OperationalError as before, and marks the connection for the end-of-request check."""
    if conn.connection is None:
        conn.ensure_connection()
    with conn.wrap_database_errors:
        cur = conn.connection.cursor()
        try:
            execute(cur, purpose, sql, params)
            return cur.fetchone()
        finally:
            cur.close()


def _md5(der) -> str:
    return hashlib.md5(bytes(der), usedforsecurity=False).hexdigest()


def _statuses(cert_ids: list[CertId], serials: list[str], owners: list[int | None], ca_id: int,
              found) -> list[SingleStatus]:
    if isinstance(found, str):  # a driver that hands json over as text
        found = json.loads(found)
    rows = {serial: (status, reason, revoked_at) for serial, status, reason, revoked_at in found or ()}
    out = []
    for cert_id, serial, owner in zip(cert_ids, serials, owners, strict=True):
        row = rows.get(serial) if owner == ca_id else None
        if row is None:
            out.append(SingleStatus(cert_id, "unknown"))
        elif row[0] == _ACTIVE:
            out.append(SingleStatus(cert_id, "good"))
        else:
            reason = RevocationReason.CERTIFICATE_HOLD if row[0] == CertificateStatus.ON_HOLD else row[1]
            revoked_at = datetime.fromtimestamp(row[2], UTC) if row[2] is not None else None
            out.append(SingleStatus(cert_id, "revoked", revoked_at, reason))
    return out


@dataclass(frozen=True)
class _Responder:
    """A signer's certificate as the answer names it: ResponderID byKey, and its DER for ``certs``."""

    key_id: bytes
    der: bytes
    public_key: object


_responders: dict[tuple, _Responder] = {}
_algorithms: dict[tuple[str, bytes], tuple[SignatureAlgorithm, bytes]] = {}


def _responder(key: tuple, load) -> _Responder:
    hit = _responders.get(key)
    if hit is None:
        cert: x509.Certificate = load()
        if len(_responders) > 256:  # certificates replaced over a long life: start over rather than grow
            _responders.clear()
        hit = _responders[key] = _Responder(messages.key_id(cert), cert.public_bytes(Encoding.DER), cert.public_key())
    return hit


def _algorithm(name: str, responder: _Responder) -> tuple[SignatureAlgorithm, bytes]:
    hit = _algorithms.get((name, responder.key_id))
    if hit is None:
        algorithm = signature_algorithm(name or default_signature_algorithm(responder.public_key))
        hit = _algorithms[(name, responder.key_id)] = (algorithm, algorithm.algorithm_identifier().dump())
    return hit


def _ca_certificate(ca_id: int, md5: str) -> x509.Certificate:
    der = CertificateAuthority.objects.filter(pk=ca_id).values_list("certificate_der", flat=True).first()
    if der is None or _md5(der) != md5:  # replaced since the answer's state was read: answer next time
        raise CryptoTokenError(f"CA {ca_id}'s certificate changed while answering")
    return x509.load_der_x509_certificate(bytes(der))


_keys: dict[tuple[int, str], tuple[int, object]] = {}


def _key(token_id: int, alias: str, version: int | None, active: bool | None):
    """The signing handle, reusing this process's one while the token's version (read with the answer's
    state) is the same and the token active; otherwise through cryptotokens, which checks both again."""
    if active is False:
        raise CryptoTokenOfflineError(f"crypto token {token_id}")
    hit = _keys.get((token_id, alias))
    if hit is not None and hit[0] == version:
        return hit[1]
    key = get_private_key_by_id(token_id, alias)
    if version is not None:
        _keys[(token_id, alias)] = (version, key)
    return key


def _signed(ca_id: int, state: tuple, statuses: list[SingleStatus], request, now: datetime) -> OcspAnswer:
    (_, ca_token, ca_alias, ca_algorithm, ca_cert_md5, binding_token, binding_alias, binding_algorithm,
     binding_cert, token_version, token_active, _) = state
    if binding_cert is not None:
        responder = _responder(("binding", binding_cert),
                               lambda: Certificate.objects.get(pk=binding_cert).certificate)
        key = _key(binding_token, binding_alias, token_version, token_active)
        algorithm, algorithm_der = _algorithm(binding_algorithm, responder)
        certs = [responder.der]
    else:
        if ca_token is None or ca_cert_md5 is None:
            # A VA before its OCSP key binding for a pushed CA is usable: the CA is served here, so tryLater.
            raise CryptoTokenError(f"CA {ca_id} holds no key here and has no usable OCSP key binding")
        responder = _responder(("ca", ca_id, ca_cert_md5), lambda: _ca_certificate(ca_id, ca_cert_md5))
        key = _key(ca_token, ca_alias, token_version, token_active)
        algorithm, algorithm_der = _algorithm(ca_algorithm, responder)
        certs = []
    validity = _validity()
    this_update = now.replace(microsecond=0)
    der = messages.build_response(
        statuses, responder_key_id=responder.key_id, signature_algorithm=algorithm_der,
        sign=lambda tbs: algorithm.sign(key, tbs), produced_at=this_update, this_update=this_update,
        next_update=this_update + timedelta(seconds=validity) if validity else None,
        nonce=request.nonce, certs=certs,
    )
    return OcspAnswer(der, max_age=validity if request.nonce is None else None, this_update=this_update)
