"""Revoking certificates, putting them on hold and taking them off hold."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from . import audit
from .auth.access import Actor
from .choices import CertificateStatus, RevocationReason
from .errors import ConflictError, NotFoundError, ValidationError
from .models import Certificate
from .models.approvals import ApprovalAction
from .services import approvals


def find_certificate(issuer_dn_or_ca: str | int, serial_hex: str) -> Certificate:
    """A certificate by its issuing CA (id, name or DN) and hex serial (any case, leading zeros ignored)."""
    from .services.cas import get_ca

    ca = get_ca(issuer_dn_or_ca)
    try:
        serial = format(int(serial_hex.strip().replace(":", ""), 16), "x")
    except ValueError:
        raise ValidationError(f"'{serial_hex}' is not a hexadecimal serial number.", field="serial") from None
    cert = Certificate.objects.filter(ca=ca, serial=serial).select_related("ca").first()
    if cert is None:
        raise NotFoundError(f"No certificate with serial {serial_hex} issued by '{ca.name}'.")
    return cert


def revoke(actor: Actor, certificate: Certificate, reason: RevocationReason | int | str = 0,
           revoked_at: datetime | None = None, invalidity_date: datetime | None = None) -> Certificate:
    """Revoke (or, with certificateHold, suspend) a certificate; removeFromCRL takes it off hold.
    ``invalidity_date``: when the key is known or suspected to have been compromised (not in the future).

    A certificate on hold can be revoked for good with another reason; a revoked one stays revoked.
    """
    actor.require(f"/ca/{certificate.ca_id}")
    actor.require("/ra_functionality/revoke_end_entity")
    try:
        reason = RevocationReason.parse(reason) if not isinstance(reason, RevocationReason) else reason
    except ValueError as exc:
        raise ValidationError(str(exc), field="reason") from None
    when = revoked_at or timezone.now()
    if when > timezone.now() and reason != RevocationReason.REMOVE_FROM_CRL:
        raise ValidationError("The revocation date cannot be in the future.", field="revocation_date")
    if invalidity_date is not None and invalidity_date > timezone.now():
        raise ValidationError("The invalidity date cannot be in the future.", field="invalidity_date")
    # EJBCA's "Revocation" (taking a certificate off hold too) may need approval: stored instead (raises).
    if certificate.status == CertificateStatus.REVOKED and reason != RevocationReason.REMOVE_FROM_CRL:
        raise ConflictError(f"Certificate {certificate.serial} is already revoked.")  # nothing to approve
    approvals.gate(actor, ApprovalAction.REVOCATION, "revoke", ca=certificate.ca_id,
                   certificate_profile=certificate.certificate_profile_id, username=certificate.username,
                   subject_dn=certificate.subject_dn,
                   data={"certificate": certificate.pk, "serial": certificate.serial, "reason": int(reason),
                         "revoked_at": revoked_at.isoformat() if revoked_at else None,
                         "invalidity_date": invalidity_date.isoformat() if invalidity_date else None})
    if reason == RevocationReason.REMOVE_FROM_CRL:
        return unrevoke(actor, certificate)
    with transaction.atomic():
        cert = Certificate.objects.select_for_update().get(pk=certificate.pk)
        if cert.status == CertificateStatus.REVOKED:
            raise ConflictError(f"Certificate {cert.serial} is already revoked.")
        if cert.status == CertificateStatus.ON_HOLD and reason == RevocationReason.CERTIFICATE_HOLD:
            raise ConflictError(f"Certificate {cert.serial} is already on hold.")
        was_on_hold = cert.status == CertificateStatus.ON_HOLD
        cert.status = (
            CertificateStatus.ON_HOLD if reason == RevocationReason.CERTIFICATE_HOLD else CertificateStatus.REVOKED
        )
        cert.revocation_reason = int(reason)
        # Revoking for good after a hold keeps the date the certificate stopped being valid.
        if not was_on_hold or cert.revoked_at is None:
            cert.revoked_at = when
        # Delta CRLs select on this, not on the stated (possibly backdated) date.
        cert.revocation_recorded_at = timezone.now()
        cert.unrevoked_at = None
        if invalidity_date is not None:
            cert.invalidity_date = invalidity_date
        cert.save(update_fields=["status", "revocation_reason", "revoked_at", "revocation_recorded_at",
                                 "unrevoked_at", "invalidity_date", "updated_at"])
        audit.record("CERT_REVOKED", actor.name, object_type="certificate", object_id=cert.serial,
                     details={"ca": cert.ca.name, "reason": reason.label,
                              "subject": audit.subject_for_audit(cert.subject_dn, cert.username)},
                     in_transaction=True)
    return cert


def unrevoke(actor: Actor, certificate: Certificate) -> Certificate:
    """Take a certificate off hold (only certificateHold can be undone)."""
    actor.require(f"/ca/{certificate.ca_id}")
    actor.require("/ra_functionality/revoke_end_entity")
    with transaction.atomic():
        cert = Certificate.objects.select_for_update().get(pk=certificate.pk)
        if cert.status != CertificateStatus.ON_HOLD:
            raise ConflictError(f"Certificate {cert.serial} is not on hold, so it cannot be reactivated.")
        cert.status = CertificateStatus.ACTIVE
        cert.revocation_reason = None
        cert.revoked_at = None
        cert.revocation_recorded_at = None
        cert.unrevoked_at = timezone.now()
        cert.save(update_fields=["status", "revocation_reason", "revoked_at", "revocation_recorded_at",
                                 "unrevoked_at", "updated_at"])
        audit.record("CERT_UNREVOKED", actor.name, object_type="certificate", object_id=cert.serial,
                     details={"ca": cert.ca.name, "subject": audit.subject_for_audit(cert.subject_dn, cert.username)},
                     in_transaction=True)
    return cert
