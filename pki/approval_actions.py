"""What carries out the core's approved actions: a revocation (EJBCA's "Revocation") and a CA activation
("CA Service Activation"). Registered with :mod:`pki.services.approvals` in ``PkiConfig.ready``; the gates are
in :func:`pki.revocation.revoke` and :func:`pki.services.cas.set_ca_active`."""

from __future__ import annotations

from datetime import datetime

from .auth.access import Actor
from .errors import NotFoundError
from .models import Certificate, CertificateAuthority
from .models.approvals import ApprovalRequest
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
    when = req.data.get("revoked_at")
    revoke(_requester(req), cert, req.data.get("reason", 0), datetime.fromisoformat(when) if when else None)


def execute_activate_ca(req: ApprovalRequest) -> None:
    """Put the CA of an approved activation request on line."""
    ca = CertificateAuthority.objects.filter(pk=req.ca_id).first()
    if ca is None:
        raise NotFoundError("The CA of this request no longer exists.")
    set_ca_active(_requester(req), ca, True)


def register() -> None:
    """Register the executors and the approval rules of the roles editor (``PkiConfig.ready``)."""
    from .auth.resources import REGULAR, register_resources

    approvals.register_executor("revoke", execute_revoke)
    approvals.register_executor("activate_ca", execute_activate_ca)
    register_resources(REGULAR, [
        (approvals.APPROVE_CA_RULE, "Approve CA actions (CA activation)"),
        (approvals.VIEW_RULE, "View approval requests"),
        (approvals.EDIT_PROFILES_RULE, "Edit approval profiles"),
    ])
