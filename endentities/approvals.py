"""What carries out an approved end entity action (EJBCA's "Add/Edit End Entity") and completes an approved
enrollment (REST ``finalize``). The gates that store the requests are :mod:`endentities.services.approvals`.

Operations (``ApprovalRequest.operation``): ``add_end_entity`` / ``edit_end_entity`` (the end entity as asked,
carried out as the requester), ``enroll_pkcs10`` (REST ``pkcs10enroll`` of a new end entity: approved, the end
entity is added NEW; ``POST v1/certificate/{request_id}/finalize`` then issues the stored PKCS#10 request once,
DER), and a keystore (P12/JKS/BCFKS, with the enrollment code) for an ``add_end_entity`` request. They are
registered with :mod:`pki.services.approvals` (the core calls up through them) when the app is ready.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pki.auth.access import Actor
from pki.errors import NotFoundError, ValidationError
from pki.models.approvals import ApprovalRequest
from pki.services import approvals as core

from .models import EndEntity
from .services.approvals import input_from


def _requester(req: ApprovalRequest) -> Actor:
    # The requester's rights were checked when the request was made; the approvers' when it was approved.
    return Actor.system_actor(req.requested_by or f"approval:{req.pk}")


# --- executors ------------------------------------------------------------------------------------------

def _register(req: ApprovalRequest) -> None:
    """Add the end entity as asked. A name taken meanwhile is refused (the request FAILED), never edited: the
    approvers approved a new end entity, not a change of someone else's."""
    from . import services

    data = input_from(req)
    services.add_end_entity(_requester(req), data, profile=req.data.get("end_entity_profile"))


def _edit(req: ApprovalRequest) -> None:
    from . import services

    data = input_from(req)
    services.edit_end_entity(_requester(req), req.username, data, profile=req.data.get("end_entity_profile"),
                             status=req.data.get("status"))


def _set_status(req: ApprovalRequest) -> None:
    """A status change back to NEW and/or a new enrollment code, as asked (REST setstatus sends both)."""
    from . import services

    password = core.unseal(req.data.get("password"))
    if password:
        services.set_password(_requester(req), req.username, password)
    if req.data.get("status") is not None:
        services.set_status(_requester(req), req.username, req.data["status"])


def _revoke(req: ApprovalRequest) -> None:
    from . import services

    services.revoke_end_entity(_requester(req), req.username, req.data.get("reason", 0))


# --- finalize -------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Finalized:
    """What ``finalize`` hands back: the certificate row and object, a keystore (None for DER) and the end
    entity profile's name."""

    row: Any
    certificate: Any
    keystore: bytes | None
    response_format: str
    chain: list
    end_entity_profile: str


def finalize(actor: Actor, req: ApprovalRequest, *, response_format: str, password: str | None,
             key_alg: str | None, key_spec: str | None) -> Finalized:
    """Complete an approved enrollment (called with the request row locked): the stored PKCS#10 request is
    issued once (DER; the same certificate again on later calls), or a keystore is generated for the end entity
    with its enrollment code (P12, JKS, BCFKS)."""
    from .services import enroll_keystore, enroll_with_ra

    fmt = (response_format or "DER").upper()
    profile_name = (EndEntity.objects.filter(username=req.username)
                    .values_list("end_entity_profile__name", flat=True).first() or "")
    if fmt == "DER":
        if not req.request_der:
            raise ValidationError("This request holds no certificate request: finalize it with response_format "
                                  "P12, JKS or BCFKS and the enrollment code.", field="response_format")
        if req.certificate_id is not None:
            row = req.certificate
        else:
            with core.executing(req):
                issued = enroll_with_ra(_requester(req), req.username, csr=bytes(req.request_der), interface="rest")
            row = issued.row
            ApprovalRequest.objects.filter(pk=req.pk).update(certificate=row)
        return Finalized(row, row.certificate, None, "DER", row.ca.chain(), profile_name)
    if fmt not in ("P12", "PKCS12", "JKS", "BCFKS"):
        raise ValidationError("response_format must be one of P12, BCFKS, JKS, DER.", field="response_format")
    if req.certificate_id is not None:
        raise ValidationError("The keystore of this request was issued already; it is not kept.",
                              field="request_id")
    if not EndEntity.objects.filter(username=req.username).exists():
        raise NotFoundError(f"End entity '{req.username}' does not exist.")
    result = enroll_keystore(req.username, password, key_alg=key_alg, key_spec=key_spec, interface="rest",
                             actor=actor)
    ApprovalRequest.objects.filter(pk=req.pk).update(certificate=result.issued.row)
    return Finalized(result.issued.row, result.issued.certificate, result.keystore, result.response_format,
                     result.chain, profile_name)


def register() -> None:
    """Register the executors and the finalizer with the core (``EndEntitiesConfig.ready``)."""
    core.register_executor("add_end_entity", _register)
    core.register_executor("enroll_pkcs10", _register)
    core.register_executor("edit_end_entity", _edit)
    core.register_executor("revoke_end_entity", _revoke)
    core.register_executor("set_status", _set_status)
    core.register_executor("edit_enroll_pkcs10", _edit)  # pkcs10enroll of an existing end entity
    core.register_finalizer("add_end_entity", finalize)
    core.register_finalizer("enroll_pkcs10", finalize)
    core.register_finalizer("edit_enroll_pkcs10", finalize)
