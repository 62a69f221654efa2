"""The gates of the end entity actions under approval (EJBCA's "Add/Edit End Entity"): what is stored when one
waits. What carries it out once approved is :mod:`endentities.approvals`.

Operations (``ApprovalRequest.operation``):

* ``add_end_entity`` / ``edit_end_entity`` — the end entity as asked (an :class:`EndEntityInput`, its
  enrollment code sealed), carried out by :func:`~endentities.services.add_end_entity` /
  :func:`~endentities.services.edit_end_entity` as the requester when approved;
* ``enroll_pkcs10`` — REST ``pkcs10enroll`` of a new end entity: approved, the end entity is added (NEW);
  ``POST v1/certificate/{request_id}/finalize`` then issues the stored PKCS#10 request once (DER), or a
  keystore (P12/JKS/BCFKS, with the enrollment code) for an ``add_end_entity`` request.

The executors and the finalizer are registered with :mod:`pki.services.approvals` (the core calls up through
them) when the app is ready.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pki.auth.access import Actor
from pki.models.approvals import ApprovalAction, ApprovalRequest
from pki.services import approvals as core

from ..inputs import EndEntityInput
from ..models import EndEntity
from .common import require

ACTION = ApprovalAction.ADD_EDIT_END_ENTITY
NEW = 10  # EndEntityStatus.NEW: enrollment open again
_FIELDS = {f.name for f in dataclasses.fields(EndEntityInput)}


def _ref(value: Any) -> Any:
    return getattr(value, "pk", value)


def input_data(data: EndEntityInput, profile: Any = None, **extra: Any) -> dict[str, Any]:
    """``data`` as JSON for a request: models by id, the enrollment code sealed."""
    out = {name: _ref(getattr(data, name)) for name in _FIELDS if name != "password"}
    if getattr(out.get("token_type"), "value", None) is not None:
        out["token_type"] = int(out["token_type"])
    out["password"] = core.seal(data.password)
    out["end_entity_profile"] = _ref(profile)
    out.update(extra)
    return out


def input_from(req: ApprovalRequest) -> EndEntityInput:
    """The :class:`EndEntityInput` a request stored."""
    fields = {k: v for k, v in req.data.items() if k in _FIELDS and k != "password"}
    return EndEntityInput(**fields, password=core.unseal(req.data.get("password")))


def _ids(data: EndEntityInput, profile: Any) -> tuple[Any, Any]:
    """(CA, certificate profile) the approval settings are looked up for (names resolved; None: defaults)."""
    from pki.models import CertificateAuthority, CertificateProfile

    from ..models import EndEntityProfile

    ref = _ref(profile)
    ee_profile = (EndEntityProfile.objects.filter(pk=ref).first() if isinstance(ref, int) or str(ref).isdigit()
                  else EndEntityProfile.objects.filter(name=ref or "EMPTY").first())
    ca, cp = data.ca, data.certificate_profile
    if isinstance(ca, str) and not ca.isdigit():
        ca = CertificateAuthority.objects.filter(name=ca).values_list("pk", flat=True).first()
    if isinstance(cp, str) and not cp.isdigit():
        cp = CertificateProfile.objects.filter(name=cp).values_list("pk", flat=True).first()
    ca = _ref(ca) or getattr(ee_profile, "default_ca_id", None)
    cp = _ref(cp) or getattr(ee_profile, "default_certificate_profile_id", None)
    return ca, cp


def gate_add(actor: Actor, data: EndEntityInput, profile: Any, *, operation: str = "add_end_entity",
             csr_der: bytes | None = None, interface: str = "", checked: Any) -> None:
    """Before adding (and maybe enrolling) an end entity: store it for approval when a profile covers it
    (raises :class:`~pki.services.approvals.WaitingForApproval`). ``checked``: the
    :class:`~endentities.services.entities.NewEndEntity` the caller checked (rules, profile) and built."""
    if core.is_executing():
        return
    core.gate(actor, ACTION, operation, ca=checked.ee.ca_id, certificate_profile=checked.ee.certificate_profile_id,
              data=input_data(data, checked.profile), request_der=csr_der, username=checked.ee.username,
              subject_dn=checked.ee.subject_dn, interface=interface)


def gate_edit(actor: Actor, username: str, data: EndEntityInput | Callable[[], EndEntityInput], profile: Any,
              status: Any = None, interface: str = "", *, operation: str = "edit_end_entity",
              csr_der: bytes | None = None, target: tuple[Any, Any] | None = None) -> None:
    """Before editing an end entity: the same for its CA and certificate profile (current and asked for),
    once the caller is known to be allowed the edit. ``data`` may be a callable that builds the input only when
    approval is needed; ``target`` is then the (CA, certificate profile) asked for (None: unchanged)."""
    if core.is_executing():
        return
    row = EndEntity.objects.filter(username=username).values_list(
        "ca_id", "certificate_profile_id", "end_entity_profile_id").first()
    if row is None:
        return  # the edit itself answers "does not exist"
    asked = target if target is not None else (data.ca, data.certificate_profile)
    ca, cp = _ids(EndEntityInput(ca=asked[0], certificate_profile=asked[1]),
                  profile if profile is not None else row[2])
    ca, cp = ca if asked[0] else row[0], cp if asked[1] else row[1]
    for ca_id, cp_id in ((row[0], row[1]), (ca, cp)):
        if core.profile_for(ACTION, ca_id, cp_id) is not None:
            require(actor, "edit", row[2], row[0])
            if ca_id != row[0]:
                require(actor, "edit", None, ca_id)
            built = data() if callable(data) else data
            core.gate(actor, ACTION, operation, ca=ca_id, certificate_profile=cp_id,
                      data=input_data(dataclasses.replace(built, username=username), profile or row[2],
                                      status=None if status is None else str(getattr(status, "value", status))),
                      request_der=csr_der, username=username, subject_dn=built.subject_dn, interface=interface)


def needs_approval(data: EndEntityInput, profile: Any) -> bool:
    """Whether adding ``data`` would need approval (a cheap look before the caller checks and builds it)."""
    return not core.is_executing() and core.profile_for(ACTION, *_ids(data, profile)) is not None


def _status_code(status: Any) -> int | None:
    """EJBCA's status code of ``status`` (a code, a name or the enum); None when it names none (the change itself
    then refuses it with the reason)."""
    from ..choices import EndEntityStatus

    if status is None:
        return None
    try:
        return int(status) if not isinstance(status, str) or status.isdigit() else int(EndEntityStatus.parse(status))
    except (TypeError, ValueError):
        return None


def gate_status(actor: Actor, username: str, status: Any = None, password: str | None = None,
                interface: str = "") -> None:
    """Before a status change back to NEW and/or a new enrollment code (REST ``setstatus``, the admin UI, ``ra
    setendentitystatus``/``setpwd``): that re-opens enrollment, an edit of the end entity EJBCA puts under "Add/Edit
    End Entity" approval too, so it is stored for approval when a profile covers the end entity (raises)."""
    code = _status_code(status)
    if core.is_executing() or not (code == NEW or password):
        return
    row = EndEntity.objects.filter(username=username).values_list(
        "ca_id", "certificate_profile_id", "end_entity_profile_id", "subject_dn").first()
    if row is None or core.profile_for(ACTION, row[0], row[1]) is None:
        return
    require(actor, "edit", row[2], row[0])
    core.gate(actor, ACTION, "set_status", ca=row[0], certificate_profile=row[1],
              data={"status": code, "password": core.seal(password)},
              username=username, subject_dn=row[3], interface=interface)


def gate_revoke(actor: Actor, username: str, reason: Any) -> None:
    """Before revoking an end entity (EJBCA's "Revocation" covers it): store it for approval when a profile
    covers its CA or certificate profile (raises), once the caller is known to be allowed it."""
    if core.is_executing():
        return
    row = EndEntity.objects.filter(username=username).values_list(
        "ca_id", "certificate_profile_id", "end_entity_profile_id", "subject_dn").first()
    if row is None or core.profile_for(ApprovalAction.REVOCATION, row[0], row[1]) is None:
        return
    require(actor, "revoke", row[2], row[0])
    core.gate(actor, ApprovalAction.REVOCATION, "revoke_end_entity", ca=row[0], certificate_profile=row[1],
              data={"reason": int(reason)}, username=username, subject_dn=row[3])
