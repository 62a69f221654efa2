"""What carries out the core's approved actions: a revocation (EJBCA's "Revocation"), a CA activation ("CA
Service Activation") and an administrator's direct issuance for a CSR (admin UI *Issue for CSR*, ``ca
issuecert``: an enrollment, so "Add/Edit End Entity" covers it). Registered with :mod:`pki.services.approvals`
in ``PkiConfig.ready``; the gates are in :func:`pki.revocation.revoke`, :func:`pki.services.cas.set_ca_active`
and :func:`gate_issue`."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from .auth.access import Actor
from .errors import NotFoundError
from .issuance import IssuanceRequest, issue, load_csr
from .models import Certificate, CertificateAuthority, CertificateProfile
from .models.approvals import ApprovalAction, ApprovalRequest
from .revocation import revoke
from .services import approvals
from .services.cas import set_ca_active


def _requester(req: ApprovalRequest) -> Actor:
    # The requester's rights were checked when it asked; the approvers' when they approved.
    return Actor.system_actor(req.requested_by or f"approval:{req.pk}")


def execute_revoke(req: ApprovalRequest) -> None:
    """Revoke (or take off hold) the certificate of an approved revocation request."""
    cert = Certificate.objects.filter(pk=req.data.get("certificate")).first()
    if cert is None:
        raise NotFoundError("The certificate of this request no longer exists.")
    when, invalid = req.data.get("revoked_at"), req.data.get("invalidity_date")
    revoke(_requester(req), cert, req.data.get("reason", 0), datetime.fromisoformat(when) if when else None,
           datetime.fromisoformat(invalid) if invalid else None)


def execute_activate_ca(req: ApprovalRequest) -> None:
    """Put the CA of an approved activation request on line."""
    ca = CertificateAuthority.objects.filter(pk=req.ca_id).first()
    if ca is None:
        raise NotFoundError("The CA of this request no longer exists.")
    set_ca_active(_requester(req), ca, True)


def gate_issue(req: IssuanceRequest, interface: str) -> None:
    """Before an administrator's direct issuance: store it for approval when "Add/Edit End Entity" of the CA or
    certificate profile needs one (raises :class:`~pki.services.approvals.WaitingForApproval`). The CSR is
    checked first, and the caller's right to issue on the CA."""
    if approvals.is_executing() or approvals.profile_for(ApprovalAction.ADD_EDIT_END_ENTITY, req.ca,
                                                         req.profile) is None:
        return
    req.actor.require("/ca_functionality/create_certificate")
    req.actor.require(f"/ca/{req.ca.pk}")
    csr = load_csr(req.csr)
    approvals.gate(req.actor, ApprovalAction.ADD_EDIT_END_ENTITY, "issue_csr", ca=req.ca,
                   certificate_profile=req.profile, request_der=csr.public_bytes(Encoding.DER),
                   username=req.username, subject_dn=req.subject_dn or csr.subject.rfc4514_string(),
                   interface=interface,
                   data={"subject_dn": req.subject_dn, "subject_alt_name": req.subject_alt_name,
                         "validity": req.validity, "username": req.username})


def execute_issue(req: ApprovalRequest) -> None:
    """Issue the approved direct issuance; the certificate is recorded on the request."""
    profile = CertificateProfile.objects.filter(pk=req.certificate_profile_id).first()
    ca = CertificateAuthority.objects.filter(pk=req.ca_id).first()
    if ca is None or profile is None:
        raise NotFoundError("The CA or certificate profile of this request no longer exists.")
    issued = issue(IssuanceRequest(ca=ca, actor=_requester(req), profile=profile, csr=bytes(req.request_der),
                                   subject_dn=req.data.get("subject_dn"),
                                   subject_alt_name=req.data.get("subject_alt_name"),
                                   validity=req.data.get("validity"), username=req.data.get("username") or ""))
    req.certificate = issued.row


def register() -> None:
    """Register the executors and the approval rules of the roles editor (``PkiConfig.ready``)."""
    from .auth.resources import REGULAR, register_resources

    approvals.register_executor("revoke", execute_revoke)
    approvals.register_executor("activate_ca", execute_activate_ca)
    approvals.register_executor("issue_csr", execute_issue)
    register_resources(REGULAR, [
        (approvals.APPROVE_CA_RULE, "Approve CA actions (CA activation)"),
        (approvals.VIEW_RULE, "View approval requests"),
        (approvals.EDIT_PROFILES_RULE, "Edit approval profiles"),
    ])
