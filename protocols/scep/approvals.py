"""Approvals of SCEP RA-mode enrollments (draft-nourse-scep-23's polling model, as EJBCA runs it), on the core
approvals (:mod:`pki.services.approvals`).

When an approval profile covers "Add/Edit End Entity" on the CA or the RA certificate profile, a PKCSReq that
would create (or edit) an end entity is stored as a WAITING core :class:`~pki.models.approvals.ApprovalRequest`
(operation ``scep_enrollment``, origin ``scep:<alias id>``, the transactionID as its key) and answered PENDING.
Approvers decide on every interface; the last approval registers the end entity (the executor below). The
client's GetCertInitial (CertPoll) with the same transactionID then gets SUCCESS with a certificate issued at
that moment, or FAILURE. When issuance fails after approval, a re-sent PKCSReq is issued without a new
approval; a PKCSReq re-sent after its approved request was issued (also under a new transactionID) gets that
certificate again instead of asking for a second approval.
"""

from __future__ import annotations

import logging
import secrets

from cryptography import x509
from django.db import transaction

from endentities import services as ee_services
from endentities.models import EndEntity
from endentities.validation import EndEntityInput
from pki.auth.access import Actor
from pki.choices import CertificateStatus
from pki.errors import PkiError
from pki.models import CertificateAuthority, CertificateProfile
from pki.models.approvals import ApprovalAction, ApprovalProfile, ApprovalRequest, ApprovalStatus
from pki.services import approvals as core

from . import messages as m
from .actors import INTERFACE, scep_actor
from .models import ScepAlias

logger = logging.getLogger("protocols.scep.approvals")
OPERATION = "scep_enrollment"
RULE = core.APPROVE_END_ENTITY_RULE
ACTION = ApprovalAction.ADD_EDIT_END_ENTITY
DEFAULT_PROFILE = "Default approval"


def origin(alias: ScepAlias | int) -> str:
    """The core request's origin of an alias's transactions."""
    return f"scep:{getattr(alias, 'pk', alias)}"


def profile_for(ca: CertificateAuthority, profile: CertificateProfile | None) -> ApprovalProfile | None:
    """The approval profile adding an end entity on ``ca`` with ``profile`` needs (None: none)."""
    return core.profile_for(ACTION, ca, profile)


def required(ca: CertificateAuthority, profile: CertificateProfile | None) -> bool:
    """Whether adding an end entity on ``ca`` with ``profile`` needs approval."""
    return profile_for(ca, profile) is not None


def set_required(actor: Actor, *, ca: CertificateAuthority | None = None,
                 certificate_profile: CertificateProfile | None = None, required: bool = True) -> None:
    """Shorthand: attach (or detach) a one-approval profile (``Default approval``) to "Add/Edit End Entity" of a
    CA or certificate profile."""
    profile = None
    if required:
        profile, _ = ApprovalProfile.objects.get_or_create(name=DEFAULT_PROFILE)
    core.set_approval(actor, ACTION, profile, ca=ca, certificate_profile=certificate_profile)


def decide(actor: Actor, pk: int, *, approve: bool, comment: str = "") -> ApprovalRequest:
    """Approve or reject (the core decision; kept here for the SCEP callers)."""
    return core.decide(actor, pk, approve=approve, comment=comment)


def approved_for(alias: ScepAlias, username: str) -> ApprovalRequest | None:
    """An approved request of this alias and username that has not produced its certificate yet."""
    return ApprovalRequest.objects.filter(origin=origin(alias), operation=OPERATION, username=username,
                                          status=ApprovalStatus.APPROVED, certificate__isnull=True).first()


def issued_for(alias: ScepAlias, csr_der: bytes) -> x509.Certificate | None:
    """The still valid certificate issued for an approved request with this very CSR (a re-sent PKCSReq, maybe
    under a new transactionID), else None."""
    digest = core.csr_digest(csr_der)
    if not digest:
        return None
    req = (ApprovalRequest.objects.filter(origin=origin(alias), request_digest=digest, status=ApprovalStatus.APPROVED,
                                          certificate__status=CertificateStatus.ACTIVE)
           .select_related("certificate").order_by("-created_at").first())
    if req is None or req.certificate.is_expired:
        return None
    return req.certificate.certificate


def submit(alias: ScepAlias, transaction_id: str, data: EndEntityInput, profile, csr_der: bytes,
           approval_profile: ApprovalProfile) -> ApprovalRequest:
    """Store the request for approval (a re-sent PKCSReq of the same transaction finds the stored one)."""
    ca = data.ca if isinstance(data.ca, CertificateAuthority) else CertificateAuthority.objects.get(pk=data.ca)
    cp = data.certificate_profile or alias.ra_certificate_profile or profile.default_certificate_profile
    return core.submit(
        scep_actor(alias), ACTION, OPERATION, approval_profile, ca=ca, certificate_profile=cp,
        data={"subject_alt_name": data.subject_alt_name, "end_entity_profile": profile.pk, "alias": alias.name},
        request_der=csr_der, username=data.username, subject_dn=data.subject_dn, interface=INTERFACE,
        origin=origin(alias), origin_key=transaction_id,
    )


def _input(req: ApprovalRequest) -> tuple[EndEntityInput, object]:
    profile = ee_services.get_end_entity_profile(req.data.get("end_entity_profile"))
    needs_password = bool(getattr(profile, "password_required", False)) and not getattr(
        profile, "password_auto_generate", False)
    data = EndEntityInput(username=req.username, subject_dn=req.subject_dn,
                          subject_alt_name=req.data.get("subject_alt_name", ""), ca=req.ca,
                          certificate_profile=req.certificate_profile,
                          password=secrets.token_urlsafe(16) if needs_password else None)
    return data, profile


def _alias_of(req: ApprovalRequest) -> ScepAlias | None:
    alias_id = req.origin.partition(":")[2]
    return ScepAlias.objects.filter(pk=int(alias_id)).first() if alias_id.isdigit() else None


def execute(req: ApprovalRequest) -> None:
    """The executor of an approved SCEP enrollment: register the end entity (NEW); the poll issues."""
    data, profile = _input(req)
    alias = _alias_of(req)
    ra = scep_actor(alias) if alias else Actor.system_actor("approvals")
    if EndEntity.objects.filter(username=req.username).exists():
        ee_services.edit_end_entity(ra, req.username, data, profile=profile, status="NEW")
    else:
        ee_services.add_end_entity(ra, data, profile=profile)


def issue_approved(alias: ScepAlias, req: ApprovalRequest) -> x509.Certificate:
    """Issue the certificate of an approved request (once; later polls get the same certificate)."""
    with transaction.atomic():
        locked = ApprovalRequest.objects.select_for_update(of=("self",)).select_related("certificate").get(pk=req.pk)
        if locked.certificate is not None:
            return locked.certificate.certificate
        with core.executing(locked):
            issued = ee_services.enroll_with_ra(scep_actor(alias), locked.username, csr=bytes(locked.request_der),
                                                interface=INTERFACE)
        locked.certificate = issued.row
        locked.save(update_fields=["certificate"])
    return issued.certificate


def request_key(alias: ScepAlias, transaction_id: str) -> str | None:
    """The key hash (:func:`~protocols.scep.transactions.key_hash`) of the request waiting or approved under this
    transaction (None when there is none): only that key may poll for it."""
    from .transactions import csr_key_hash

    der = (ApprovalRequest.objects.filter(origin=origin(alias), origin_key=transaction_id)
           .values_list("request_der", flat=True).first())
    return csr_key_hash(bytes(der)) if der else None


def poll(alias: ScepAlias, transaction_id: str) -> tuple[str, x509.Certificate | None]:
    """CertPoll of an approval: ("none", None) when no request has this transaction, ("pending", None),
    ("rejected", None) or ("issued", certificate). Issuance refusals raise BadRequest."""
    req = ApprovalRequest.objects.filter(origin=origin(alias), origin_key=transaction_id).first()
    if req is None:
        return "none", None
    if req.status == ApprovalStatus.WAITING and not req.is_expired:
        return "pending", None
    if req.status != ApprovalStatus.APPROVED:  # rejected, expired, or its execution failed
        return "rejected", None
    try:
        return "issued", issue_approved(alias, req)
    except PkiError as exc:
        raise m.BadRequest(f"Issuance after approval failed: {exc.message}") from None


core.register_executor(OPERATION, execute)
