"""Approvals of SCEP RA-mode enrollments (draft-nourse-scep-23's polling model, as EJBCA runs it).

When the CA or the RA certificate profile requires approval (an :class:`ApprovalRequirement`), a PKCSReq
that would create an end entity is stored as a WAITING :class:`ApprovalRequest` and answered PENDING. An
approver (``/ra_functionality/approve_end_entity`` and the CA's rule) approves, which registers the end
entity, or rejects. The client's GetCertInitial (CertPoll) with the same transactionID then gets SUCCESS
with a certificate issued at that moment, or FAILURE. When issuance fails after approval, a re-sent
PKCSReq is issued without a new approval (the approved request is used until it has a certificate).
"""

from __future__ import annotations

import logging
import secrets

from cryptography import x509
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from endentities import services as ee_services
from endentities.models import EndEntity
from endentities.validation import EndEntityInput
from pki import audit
from pki.auth.access import Actor
from pki.errors import ConflictError, NotFoundError, PkiError, ValidationError
from pki.models import CertificateAuthority, CertificateProfile

from . import messages as m
from .actors import INTERFACE, scep_actor
from .models import ApprovalRequest, ApprovalRequirement, ApprovalStatus, ScepAlias

logger = logging.getLogger("protocols.scep.approvals")
RULE = "/ra_functionality/approve_end_entity"
CONFIG_RULE = "/system_functionality/edit_systemconfiguration"


def required(ca: CertificateAuthority, profile: CertificateProfile | None) -> bool:
    """Whether adding an end entity on ``ca`` with ``profile`` needs approval."""
    q = Q(ca=ca)
    if profile is not None:
        q |= Q(certificate_profile=profile)
    return ApprovalRequirement.objects.filter(q).exists()


def set_required(actor: Actor, *, ca: CertificateAuthority | None = None,
                 certificate_profile: CertificateProfile | None = None, required: bool = True) -> None:
    """Turn the approval requirement of a CA or a certificate profile on or off (audited)."""
    actor.require(CONFIG_RULE)
    if (ca is None) == (certificate_profile is None):
        raise ValidationError("Name either a CA or a certificate profile.", field="ca")
    target = {"ca": ca} if ca is not None else {"certificate_profile": certificate_profile}
    with transaction.atomic():
        if required:
            ApprovalRequirement.objects.get_or_create(**target)
        else:
            ApprovalRequirement.objects.filter(**target).delete()
        audit.record("APPROVAL_SETTINGS_EDIT", actor.name, object_type="ca" if ca else "certificateprofile",
                     object_id=(ca or certificate_profile).pk, details={"approval_required": required},
                     in_transaction=True)


def approved_for(alias: ScepAlias, username: str) -> ApprovalRequest | None:
    """An approved request of this alias and username that has not produced its certificate yet."""
    return ApprovalRequest.objects.filter(alias=alias, username=username, status=ApprovalStatus.APPROVED,
                                          certificate__isnull=True).first()


def submit(alias: ScepAlias, transaction_id: str, data: EndEntityInput, profile, csr_der: bytes) -> ApprovalRequest:
    """Store the request for approval (a re-sent PKCSReq of the same transaction finds the stored one)."""
    existing = ApprovalRequest.objects.filter(kind="scep_enrollment", alias=alias,
                                              transaction_id=transaction_id).first()
    if existing is not None:
        return existing
    ca = data.ca if isinstance(data.ca, CertificateAuthority) else CertificateAuthority.objects.get(pk=data.ca)
    cp = data.certificate_profile or alias.ra_certificate_profile or profile.default_certificate_profile
    try:
        with transaction.atomic():
            req = ApprovalRequest.objects.create(
                alias=alias, transaction_id=transaction_id, username=data.username, subject_dn=data.subject_dn,
                ca=ca, certificate_profile=cp, request_der=csr_der, requested_by=f"scep:{alias.name}",
                data={"subject_alt_name": data.subject_alt_name, "end_entity_profile": profile.pk},
            )
            audit.record("APPROVAL_REQUEST", f"scep:{alias.name}", object_type="approval", object_id=req.pk,
                         details={"username": data.username, "ca": ca.name, "transaction_id": transaction_id},
                         in_transaction=True)
    except IntegrityError:  # the same transaction submitted concurrently
        return ApprovalRequest.objects.get(kind="scep_enrollment", alias=alias, transaction_id=transaction_id)
    return req


def _input(req: ApprovalRequest) -> tuple[EndEntityInput, object]:
    profile = ee_services.get_end_entity_profile(req.data.get("end_entity_profile"))
    needs_password = bool(getattr(profile, "password_required", False)) and not getattr(
        profile, "password_auto_generate", False)
    data = EndEntityInput(username=req.username, subject_dn=req.subject_dn,
                          subject_alt_name=req.data.get("subject_alt_name", ""), ca=req.ca,
                          certificate_profile=req.certificate_profile,
                          password=secrets.token_urlsafe(16) if needs_password else None)
    return data, profile


def decide(actor: Actor, pk: int, *, approve: bool, comment: str = "") -> ApprovalRequest:
    """Approve (registering the end entity) or reject a waiting request."""
    actor.require(RULE)
    with transaction.atomic():
        req = (ApprovalRequest.objects.select_for_update(of=("self",)).select_related("alias", "ca")
               .filter(pk=pk).first())
        if req is None:
            raise NotFoundError(f"Approval request {pk} does not exist.")
        actor.require(f"/ca/{req.ca_id}")
        if req.status != ApprovalStatus.WAITING:
            raise ConflictError(f"The request is {req.get_status_display().lower()} already.")
        if approve:
            data, profile = _input(req)
            ra = scep_actor(req.alias) if req.alias else Actor.system_actor("approvals")
            if EndEntity.objects.filter(username=req.username).exists():
                ee_services.edit_end_entity(ra, req.username, data, profile=profile, status="NEW")
            else:
                ee_services.add_end_entity(ra, data, profile=profile)
        req.status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        req.decided_by, req.decided_at, req.comment = actor.name, timezone.now(), comment
        req.save(update_fields=["status", "decided_by", "decided_at", "comment"])
        audit.record("APPROVAL_APPROVE" if approve else "APPROVAL_REJECT", actor.name, object_type="approval",
                     object_id=req.pk, details={"username": req.username, "ca": req.ca.name},
                     in_transaction=True)
    return req


def issue_approved(alias: ScepAlias, req: ApprovalRequest) -> x509.Certificate:
    """Issue the certificate of an approved request (once; later polls get the same certificate)."""
    with transaction.atomic():
        locked = ApprovalRequest.objects.select_for_update(of=("self",)).select_related("certificate").get(pk=req.pk)
        if locked.certificate is not None:
            return locked.certificate.certificate
        issued = ee_services.enroll_with_ra(scep_actor(alias), locked.username, csr=bytes(locked.request_der),
                                            interface=INTERFACE)
        locked.certificate = issued.row
        locked.save(update_fields=["certificate"])
    return issued.certificate


def request_key(alias: ScepAlias, transaction_id: str) -> str | None:
    """The key hash (:func:`~protocols.scep.transactions.key_hash`) of the request waiting or approved under this
    transaction (None when there is none): only that key may poll for it."""
    from .transactions import csr_key_hash

    der = (ApprovalRequest.objects.filter(kind="scep_enrollment", alias=alias, transaction_id=transaction_id)
           .values_list("request_der", flat=True).first())
    return csr_key_hash(bytes(der)) if der else None


def poll(alias: ScepAlias, transaction_id: str) -> tuple[str, x509.Certificate | None]:
    """CertPoll of an approval: ("none", None) when no request has this transaction, ("pending", None),
    ("rejected", None) or ("issued", certificate). Issuance refusals raise BadRequest."""
    req = ApprovalRequest.objects.filter(kind="scep_enrollment", alias=alias, transaction_id=transaction_id).first()
    if req is None:
        return "none", None
    if req.status == ApprovalStatus.WAITING:
        return "pending", None
    if req.status == ApprovalStatus.REJECTED:
        return "rejected", None
    try:
        return "issued", issue_approved(alias, req)
    except PkiError as exc:
        raise m.BadRequest(f"Issuance after approval failed: {exc.message}") from None
