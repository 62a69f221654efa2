"""RA/VA side: who is connecting in. A CA connector is authenticated by the client certificate the TLS proxy
verified and forwarded (:func:`pki.auth.clientcert.forwarded_certificate`), and is let in only when the
certificate

1. is valid now and allows TLS client authentication (extended key usage clientAuth),
2. was signed by a CA known here (the CA's certificate is imported on the RA; the RA holds no CA keys and does
   not hold the connector's certificate either, unlike an administrator's), and
3. matches a role member (issuing CA + serial, or issuing CA + CN) of a role that allows ``/peer/incoming``.

Every refusal is logged and audited (throttled, as refused client certificates are) and answered 401/403 with
a short reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from pki.auth import refusals
from pki.auth.access import Actor, rules_for_roles
from pki.auth.clientcert import forwarded_certificate
from pki.choices import CertificateStatus, MemberMatch
from pki.db import execute, json_value
from pki.models import CertificateAuthority, RoleMember

from .choices import INCOMING_RULE
from .models import IncomingPeer
from .revocations import is_revoked, revoked_by

logger = logging.getLogger("peers")
AUDIT_EVENT = "PEER_INCOMING_REFUSED"


class PeerRefused(Exception):
    """A caller that may not act as an incoming peer; ``status`` is the HTTP answer (401 or 403)."""

    def __init__(self, status: int, code: str, text: str):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


@dataclass
class IncomingIdentity:
    actor: Actor
    peer: IncomingPeer


def _issuing_ca(cert: x509.Certificate) -> CertificateAuthority | None:
    """The known CA (local or imported) whose certificate signed ``cert``."""
    return CertificateAuthority.objects.signer_of(cert)


def _allows_client_auth(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku


def _refuse_expired(cert: x509.Certificate) -> None:
    now = timezone.now()
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise PeerRefused(403, "expired", "The client certificate is expired or not yet valid.")


def _refuse_unmatched(has_role: bool, revoked: Callable[[], bool]) -> None:
    """No role member matches, or the CA pushed the certificate's revocation (status or CRL: refused before any
    role change), in that order."""
    if not has_role:
        raise PeerRefused(403, "no-role", "The client certificate matches no role member here.")
    if revoked():
        raise PeerRefused(403, "revoked", "The client certificate is revoked (as the CA pushed it here).")


def _actor(name: str, role_rules: dict[str, list[tuple[str, bool]]]) -> Actor:
    actor = Actor(name=name, kind="certificate", role_rules=role_rules)
    if not actor.is_allowed(INCOMING_RULE):
        raise PeerRefused(403, "no-rule", f"The client certificate's roles do not allow {INCOMING_RULE}.")
    return actor


def _member_match(serial: str, cns: list[str]) -> Q:
    match = Q(match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=serial)
    if cns:
        match |= Q(match_type=MemberMatch.CERTIFICATE_CN, match_value__in=cns)
    return match


def _check(cert: x509.Certificate) -> tuple[Actor, CertificateAuthority]:
    _refuse_expired(cert)
    if not _allows_client_auth(cert):
        raise PeerRefused(403, "no-client-auth", "The client certificate does not allow TLS client authentication.")
    ca = _issuing_ca(cert)
    if ca is None:
        raise PeerRefused(403, "unknown-ca", "The client certificate was not issued by a CA known here.")
    serial = format(cert.serial_number, "x")
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    # One query for both ways a member names a certificate.
    role_ids = set(RoleMember.objects.filter(_member_match(serial, cns), issuer_ca=ca).values_list("role_id",
                                                                                                  flat=True))
    _refuse_unmatched(bool(role_ids), lambda: is_revoked(ca, serial))
    return _actor(_name(cert, cns, serial, ca), rules_for_roles(sorted(role_ids))), ca


def _name(cert: x509.Certificate, cns: list[str], serial: str, ca: CertificateAuthority) -> str:
    return f"peer {cns[0] if cns else cert.subject.rfc4514_string()} (certificate {serial}, CA {ca.name})"[:255]


@dataclass
class _Known:
    """A certificate that passed the whole check in this process: what cannot change for it (its issuing CA, as
    long as that CA's row is unchanged; its serial, names, key usage) and its incoming peer row."""

    ca_id: int
    ca_version: str
    serial: str
    cns: list[str]
    name: str
    peer_id: int


_known: dict[str, _Known] = {}
_KNOWN_MAX = 256

# Every call of a known certificate re-reads, in this one statement, all that may have changed since: its issuing
# CA's row (its version: a changed or deleted CA sends the call through the whole check again), the role members
# that match it and their roles' rules, the revocation the CA pushed (status, latest CRLs) and this node's own record
# of it; and it records the contact on the incoming peer row. A role removed, a rule denied or a revocation pushed
# is refused on the very next call, in every process.
_RECHECK_SQL = (
    "WITH touched AS (UPDATE peers_incomingpeer SET last_contact = %s WHERE id = %s RETURNING id),"
    " members AS (SELECT DISTINCT role_id FROM pki_rolemember WHERE issuer_ca_id = %s AND ((match_type = %s AND"
    " match_value = %s) OR (match_type = %s AND match_value = ANY(%s::text[]))))"
    " SELECT (SELECT xmin::text FROM pki_certificateauthority WHERE id = %s), (SELECT count(*) FROM touched),"
    " (SELECT json_agg(json_build_array(r.name, ar.resource, ar.allowed)) FROM pki_accessrule AS ar"
    " JOIN pki_role AS r ON r.id = ar.role_id WHERE ar.role_id IN (SELECT role_id FROM members)),"
    " EXISTS (SELECT 1 FROM members),"
    " (SELECT status FROM peers_pushedrevocation WHERE ca_id = %s AND serial = %s),"
    " EXISTS (SELECT 1 FROM pki_certificate WHERE ca_id = %s AND serial = %s AND status <> %s),"
    " (SELECT id FROM peers_pushedcrl WHERE ca_id = %s AND NOT is_delta ORDER BY crl_number DESC LIMIT 1),"
    " (SELECT id FROM peers_pushedcrl WHERE ca_id = %s AND is_delta ORDER BY crl_number DESC LIMIT 1)")


def _recheck(known: _Known) -> Actor | None:
    """The actor of a known certificate, from one statement (see :data:`_RECHECK_SQL`); None when its CA or its
    peer row changed (the caller runs the whole check); raises :class:`PeerRefused` as the whole check would."""
    ca, serial = known.ca_id, known.serial
    params = [timezone.now(), known.peer_id, ca, MemberMatch.CERTIFICATE_SERIAL, serial, MemberMatch.CERTIFICATE_CN,
              known.cns, ca, ca, serial, ca, serial, CertificateStatus.ACTIVE, ca, ca]
    with connection.cursor() as cur:
        execute(cur, "peers_incoming", _RECHECK_SQL, params)
        version, touched, rules, has_role, pushed, local, crl, delta = cur.fetchone()
    if version != known.ca_version or not touched:
        return None
    _refuse_unmatched(has_role, lambda: revoked_by(serial, pushed, local, [crl, delta]))
    role_rules: dict[str, list[tuple[str, bool]]] = {}
    for role, resource, allowed in json_value(rules) or []:
        role_rules.setdefault(role, []).append((resource, allowed))
    return _actor(known.name, role_rules)


def _verified(cert: x509.Certificate, fingerprint: str) -> IncomingIdentity:
    """The whole check (:func:`_check`), then the incoming peer row; on PostgreSQL the certificate is then known to
    this process (:func:`_recheck`)."""
    actor, ca = _check(cert)
    peer, created = IncomingPeer.objects.get_or_create(fingerprint=fingerprint, defaults={
        "subject": cert.subject.rfc4514_string()[:1024], "issuer": cert.issuer.rfc4514_string()[:1024],
        "serial": format(cert.serial_number, "x"), "identity": actor.name, "last_contact": timezone.now()})
    if not created:
        IncomingPeer.objects.filter(pk=peer.pk).update(last_contact=timezone.now(), identity=actor.name)
    if connection.vendor == "postgresql":
        version = CertificateAuthority.objects.filter(pk=ca.pk).annotate(v=RawSQL("xmin::text", [])).values_list(
            "v", flat=True).first()
        if len(_known) >= _KNOWN_MAX:
            _known.clear()
        _known[fingerprint] = _Known(
            ca_id=ca.pk, ca_version=version or "", serial=format(cert.serial_number, "x"),
            cns=[str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)], name=actor.name,
            peer_id=peer.pk)
    return IncomingIdentity(actor, peer)


def authenticate(request) -> IncomingIdentity:
    """The incoming peer of ``request``, recorded as an :class:`IncomingPeer`; raises :class:`PeerRefused`.

    A certificate that passed the whole check before in this process is checked again by one statement (every
    lease and answer call of a connector comes through here); the rest, and any whose CA changed, take the whole
    check."""
    cert = forwarded_certificate(request)
    ip = request.META.get("REMOTE_ADDR", "")
    if cert is None:
        refusals.record("peer", AUDIT_EVENT, "no-certificate", "no verified client certificate forwarded",
                        actor="anonymous", ip=ip, object_type="peer")
        raise PeerRefused(401, "no-certificate", "A CA connector authenticates with a TLS client certificate.")
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    try:
        known = _known.get(fingerprint)
        if known is not None:
            _refuse_expired(cert)
            actor = _recheck(known)
            if actor is not None:
                return IncomingIdentity(actor, IncomingPeer(pk=known.peer_id, fingerprint=fingerprint,
                                                            identity=known.name))
            _known.pop(fingerprint, None)
        return _verified(cert, fingerprint)
    except PeerRefused as exc:
        _known.pop(fingerprint, None)
        refusals.record("peer", AUDIT_EVENT, exc.code, exc.text, actor=cert.subject.rfc4514_string()[:255], ip=ip,
                        object_type="peer", object_id=format(cert.serial_number, "x"))
        raise
