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
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.db.models import F, Q
from django.utils import timezone

from pki.auth import refusals
from pki.auth.access import Actor, rules_for_roles
from pki.auth.clientcert import forwarded_certificate
from pki.choices import MemberMatch
from pki.models import CertificateAuthority, RoleMember

from .choices import INCOMING_RULE
from .models import IncomingPeer
from .revocations import is_revoked

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


def _check(cert: x509.Certificate) -> tuple[Actor, CertificateAuthority]:
    now = timezone.now()
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise PeerRefused(403, "expired", "The client certificate is expired or not yet valid.")
    if not _allows_client_auth(cert):
        raise PeerRefused(403, "no-client-auth", "The client certificate does not allow TLS client authentication.")
    ca = _issuing_ca(cert)
    if ca is None:
        raise PeerRefused(403, "unknown-ca", "The client certificate was not issued by a CA known here.")
    serial = format(cert.serial_number, "x")
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    # One query for both ways a member names a certificate (every lease and answer call comes through here).
    match = Q(match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=serial)
    if cns:
        match |= Q(match_type=MemberMatch.CERTIFICATE_CN, match_value__in=cns)
    role_ids = set(RoleMember.objects.filter(match, issuer_ca=ca).values_list("role_id", flat=True))
    if not role_ids:
        raise PeerRefused(403, "no-role", "The client certificate matches no role member here.")
    if is_revoked(ca, serial):  # the CA pushed its revocation (status or CRL): refused before any role change
        raise PeerRefused(403, "revoked", "The client certificate is revoked (as the CA pushed it here).")
    name = f"peer {cns[0] if cns else cert.subject.rfc4514_string()} (certificate {serial}, CA {ca.name})"[:255]
    actor = Actor(name=name, kind="certificate", role_rules=rules_for_roles(sorted(role_ids)))
    if not actor.is_allowed(INCOMING_RULE):
        raise PeerRefused(403, "no-rule", f"The client certificate's roles do not allow {INCOMING_RULE}.")
    return actor, ca


def authenticate(request) -> IncomingIdentity:
    """The incoming peer of ``request``, recorded as an :class:`IncomingPeer`; raises :class:`PeerRefused`."""
    cert = forwarded_certificate(request)
    ip = request.META.get("REMOTE_ADDR", "")
    if cert is None:
        refusals.record("peer", AUDIT_EVENT, "no-certificate", "no verified client certificate forwarded",
                        actor="anonymous", ip=ip, object_type="peer")
        raise PeerRefused(401, "no-certificate", "A CA connector authenticates with a TLS client certificate.")
    try:
        actor, _ = _check(cert)
    except PeerRefused as exc:
        refusals.record("peer", AUDIT_EVENT, exc.code, exc.text, actor=cert.subject.rfc4514_string()[:255], ip=ip,
                        object_type="peer", object_id=format(cert.serial_number, "x"))
        raise
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    peer, created = IncomingPeer.objects.get_or_create(fingerprint=fingerprint, defaults={
        "subject": cert.subject.rfc4514_string()[:1024], "issuer": cert.issuer.rfc4514_string()[:1024],
        "serial": format(cert.serial_number, "x"), "identity": actor.name, "last_contact": timezone.now()})
    if not created:
        IncomingPeer.objects.filter(pk=peer.pk).update(last_contact=timezone.now(), identity=actor.name)
    return IncomingIdentity(actor, peer)


def count(peer: IncomingPeer, *, leased: int = 0, answers: int = 0) -> None:
    """Add to an incoming peer's counters (one UPDATE, safe across processes)."""
    IncomingPeer.objects.filter(pk=peer.pk).update(requests_leased=F("requests_leased") + leased,
                                                   answers=F("answers") + answers)
