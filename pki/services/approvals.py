"""Approvals (EJBCA's "Approve Actions"): the gate every approvable action passes, and the decisions.

An action asks :func:`gate` before it changes anything. When an approval profile covers the action on the CA
or the certificate profile (the certificate profile's setting first, as in EJBCA), the request is stored as a
WAITING :class:`~pki.models.approvals.ApprovalRequest` and :class:`WaitingForApproval` is raised with its id:
every interface answers with that id instead of acting (REST 202, a message in the UI, SCEP PENDING, CLI exit
code 3). Administrators then :func:`decide`: a rejection ends the request, the last required approval runs
the operation's executor (registered by the app that owns the operation, :func:`register_executor`), exactly
once: the request row is locked while a decision is taken. While an executor runs, :func:`gate` lets the same
action through (it is the approved action itself).

Who may decide: ``/ra_functionality/approve_end_entity`` (end entity actions) or
``/ca_functionality/approve_caaction`` (CA activation), plus the CA's rule; a member of one of the profile's
approver roles when it names any; never the requester, never twice; never after the request expired.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from cryptotokens.secrets import decrypt_secret, encrypt_secret

from .. import audit
from ..auth.access import Actor
from ..choices import AuditOutcome
from ..errors import AuthorizationDenied, ConflictError, NotFoundError, PkiError, ValidationError
from ..models import CertificateAuthority, CertificateProfile
from ..models.approvals import (
    Approval,
    ApprovalAction,
    ApprovalProfile,
    ApprovalRequest,
    ApprovalSetting,
    ApprovalStatus,
)

logger = logging.getLogger("pki.approvals")

APPROVE_END_ENTITY_RULE = "/ra_functionality/approve_end_entity"
APPROVE_CA_RULE = "/ca_functionality/approve_caaction"
VIEW_RULE = "/ra_functionality/view_approvals"  # listing; approving also lets one list
EDIT_PROFILES_RULE = "/ca_functionality/edit_approval_profiles"


def rule_for(action: str) -> str:
    """The access rule that lets an administrator decide requests of ``action``."""
    return APPROVE_CA_RULE if action == ApprovalAction.CA_ACTIVATION else APPROVE_END_ENTITY_RULE


class WaitingForApproval(PkiError):
    """The action was stored for approval (EJBCA's WaitingForApprovalException): not an error for the caller,
    whose interface answers with :attr:`request_id` (REST: 202)."""

    http_status = 202
    error_code = "WAITING_FOR_APPROVAL"

    def __init__(self, request: ApprovalRequest):
        super().__init__(f"The request is waiting for approval (request id {request.pk}).")
        self.request = request
        self.request_id = request.pk


class SelfApprovalDenied(AuthorizationDenied):
    """The requester may not decide on their own request."""

    def __init__(self, actor: str):
        PkiError.__init__(self, "The requester of an approval request cannot approve or reject it.")
        self.resource = "/approval/own-request"
        self.actor = actor


class ApprovalRequiredHere(PkiError):
    """The action needs approval but was asked inside a transaction that would roll the request back: refused
    (fail closed) rather than carried out without approval."""

    http_status = 403
    error_code = "APPROVAL_REQUIRED"


# --- executors ------------------------------------------------------------------------------------------

Executor = Callable[[ApprovalRequest], None]
_executors: dict[str, Executor] = {}
_executing: contextvars.ContextVar[int | None] = contextvars.ContextVar("pki_approval_executing", default=None)


def register_executor(operation: str, executor: Executor) -> None:
    """``executor(request)`` carries out an approved request of ``operation`` (inside the deciding
    transaction; a :class:`~pki.errors.PkiError` marks the request FAILED with its message)."""
    _executors[operation] = executor


@contextlib.contextmanager
def executing(request: ApprovalRequest) -> Iterator[None]:
    """Inside: the approved ``request`` is being carried out, so :func:`gate` lets its action through."""
    token = _executing.set(request.pk)
    try:
        yield
    finally:
        _executing.reset(token)


@contextlib.contextmanager
def checked() -> Iterator[None]:
    """Inside: the caller has looked for an approval requirement itself (SCEP RA mode, per request) and
    found none, so :func:`gate` need not look again."""
    token = _executing.set(0)
    try:
        yield
    finally:
        _executing.reset(token)


def is_executing() -> bool:
    """Whether an approved request is being carried out in this context."""
    return _executing.get() is not None


_finalizers: dict[str, Callable[..., Any]] = {}


def register_finalizer(operation: str, finalizer: Callable[..., Any]) -> None:
    """``finalizer(actor, request, **options)`` completes an approved enrollment of ``operation`` (REST
    ``finalize``), with the request row locked."""
    _finalizers[operation] = finalizer


def finalize(actor: Actor, pk: int | str, **options: Any) -> Any:
    """Complete an approved enrollment (EJBCA's ``finalize``): the requester, or an administrator who may issue
    on the request's CA. A request still waiting raises :class:`WaitingForApproval`; a rejected, expired or
    failed one is refused. The request row is locked, so concurrent calls issue once."""
    requester = _is_requester(actor, pk)
    req = ApprovalRequest.objects.get(pk=pk) if requester else get_request(actor, pk)
    if not requester:
        actor.require("/ca_functionality/create_certificate")
        if req.ca_id is not None:
            actor.require(f"/ca/{req.ca_id}")
    finalizer = _finalizers.get(req.operation)
    if finalizer is None:
        raise ValidationError(f"Approval request {req.pk} ({req.operation}) is no enrollment to finalize.",
                              field="request_id")
    with transaction.atomic():
        locked = (ApprovalRequest.objects.select_for_update(of=("self",)).select_related("certificate", "ca")
                  .get(pk=req.pk))
        if locked.status == ApprovalStatus.WAITING and not locked.is_expired:
            raise WaitingForApproval(locked)
        if locked.status != ApprovalStatus.APPROVED:
            status = "expired" if locked.is_expired else locked.get_status_display().lower()
            raise ValidationError(f"Approval request {locked.pk} is {status}: there is nothing to finalize.",
                                  field="request_id")
        result = finalizer(actor, locked, **options)
        audit.record("APPROVAL_FINALIZE", actor.name, object_type="approval", object_id=locked.pk,
                     details={"operation": locked.operation, "username": locked.username}, in_transaction=True)
    return result


def _is_requester(actor: Actor, pk: int | str) -> bool:
    from ..ids import parse_db_id

    key = parse_db_id(pk)
    return key is not None and ApprovalRequest.objects.filter(
        pk=key, requested_by=actor.name, requester_kind=actor.kind).exclude(requester_kind="system").exists()


# --- settings -------------------------------------------------------------------------------------------

def profile_for(action: str, ca: CertificateAuthority | int | None,
                certificate_profile: CertificateProfile | int | None = None) -> ApprovalProfile | None:
    """The approval profile ``action`` needs on this CA and certificate profile (the certificate profile's
    setting first), or None."""
    ca_id = getattr(ca, "pk", ca)
    cp_id = getattr(certificate_profile, "pk", certificate_profile)
    q = Q()
    if ca_id is not None:
        q |= Q(ca_id=ca_id)
    if cp_id is not None:
        q |= Q(certificate_profile_id=cp_id)
    if not q:
        return None
    found = {(s.certificate_profile_id is not None): s.approval_profile
             for s in ApprovalSetting.objects.filter(q, action=action).select_related("approval_profile")}
    return found.get(True) or found.get(False)


def set_approval(actor: Actor, action: str, approval_profile: ApprovalProfile | None, *,
                 ca: CertificateAuthority | None = None,
                 certificate_profile: CertificateProfile | None = None) -> None:
    """Set (or with None clear) the approval profile of ``action`` on a CA or a certificate profile (audited)."""
    if action not in ApprovalAction.values:
        raise ValidationError(f"'{action}' is no approvable action ({', '.join(ApprovalAction.values)}).",
                              field="action")
    if (ca is None) == (certificate_profile is None):
        raise ValidationError("Name either a CA or a certificate profile.", field="ca")
    if ca is not None:
        actor.require("/ca_functionality/edit_ca")
        actor.require(f"/ca/{ca.pk}")
    else:
        actor.require("/ca_functionality/edit_certificate_profiles")
    target = {"ca": ca} if ca is not None else {"certificate_profile": certificate_profile}
    with transaction.atomic():
        if approval_profile is None:
            ApprovalSetting.objects.filter(action=action, **target).delete()
        else:
            ApprovalSetting.objects.update_or_create(action=action, **target,
                                                     defaults={"approval_profile": approval_profile})
        audit.record("APPROVAL_SETTINGS_EDIT", actor.name, object_type="ca" if ca else "certificateprofile",
                     object_id=(ca or certificate_profile).pk,
                     details={"action": action, "approval_profile": approval_profile.name if approval_profile
                              else None}, in_transaction=True)


def save_profile(actor: Actor, *, name: str, approvals_required: int, request_expiration: int,
                 approver_roles: list | None = None, profile: ApprovalProfile | None = None) -> ApprovalProfile:
    """Add or edit an approval profile (audited)."""
    actor.require(EDIT_PROFILES_RULE)
    name = (name or "").strip()
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise ValidationError("A name of 1 to 255 printable characters is required.", field="name")
    if not 1 <= int(approvals_required) <= 100:
        raise ValidationError("The number of approvals is 1 to 100.", field="approvals_required")
    if not 60 <= int(request_expiration) <= 366 * 86400:
        raise ValidationError("The request expiration is 60 seconds to a year.", field="request_expiration")
    try:
        with transaction.atomic():
            row = profile or ApprovalProfile()
            row.name, row.approvals_required, row.request_expiration = name, approvals_required, request_expiration
            row.save()
            row.approver_roles.set(approver_roles or [])
            audit.record("APPROVAL_PROFILE_EDIT" if profile else "APPROVAL_PROFILE_ADD", actor.name,
                         object_type="approvalprofile", object_id=row.pk,
                         details={"name": name, "approvals_required": approvals_required,
                                  "request_expiration": request_expiration,
                                  "approver_roles": sorted(r.name for r in row.approver_roles.all())},
                         in_transaction=True)
    except IntegrityError:
        raise ConflictError(f"An approval profile named '{name}' exists already.", field="name") from None
    return row


def delete_profile(actor: Actor, profile: ApprovalProfile) -> None:
    """Delete an approval profile no CA or certificate profile uses (refused naming the users)."""
    actor.require(EDIT_PROFILES_RULE)
    users = [str(s.ca or s.certificate_profile) for s in profile.settings.select_related("ca", "certificate_profile")]
    if users:
        raise ConflictError(f"Approval profile '{profile.name}' is used by {', '.join(sorted(set(users)))}.")
    with transaction.atomic():
        pk, name = profile.pk, profile.name
        profile.delete()
        audit.record("APPROVAL_PROFILE_DELETE", actor.name, object_type="approvalprofile", object_id=pk,
                     details={"name": name}, in_transaction=True)


# --- requests -------------------------------------------------------------------------------------------

def secret_context(field: str) -> str:
    """AES-GCM associated data of a secret kept in a request's ``data``."""
    return f"approval-request:{field}"


def seal(value: str | None, field: str = "password") -> str | None:
    """Encrypt a secret (an enrollment code) for ``data``."""
    return None if value is None else encrypt_secret(value, secret_context(field))


def unseal(token: str | None, field: str = "password") -> str | None:
    """The clear secret :func:`seal` stored."""
    return None if not token else decrypt_secret(token, secret_context(field)).decode()


def csr_digest(der: bytes | None) -> str:
    """SHA-256 (hex) of a PKCS#10 request's signed part ("" when unreadable): the same request again."""
    if not der:
        return ""
    from cryptography import x509

    try:
        return hashlib.sha256(x509.load_der_x509_csr(bytes(der)).tbs_certrequest_bytes).hexdigest()
    except (ValueError, TypeError):
        return ""


def submit(actor: Actor, action: str, operation: str, approval_profile: ApprovalProfile, *,
           ca: CertificateAuthority | int | None, certificate_profile: CertificateProfile | int | None = None,
           data: dict[str, Any] | None = None, request_der: bytes | None = None, username: str = "",
           subject_dn: str = "", interface: str = "", origin: str = "", origin_key: str = "") -> ApprovalRequest:
    """Store a WAITING request (audited). With ``origin``/``origin_key`` (a protocol transaction) a request
    already stored under them is returned instead of a second one."""
    if origin:
        found = ApprovalRequest.objects.filter(origin=origin, origin_key=origin_key).first()
        if found is not None:
            return found
    if action == ApprovalAction.ADD_EDIT_END_ENTITY and subject_dn and ca is not None:
        _require_may_issue_member(actor, ca, subject_dn, operation)
    now = timezone.now()
    try:
        with transaction.atomic():
            req = ApprovalRequest.objects.create(
                action=action, operation=operation, approval_profile=approval_profile,
                approvals_required=approval_profile.approvals_required,
                approver_role_ids=sorted(approval_profile.approver_roles.values_list("pk", flat=True)),
                ca_id=getattr(ca, "pk", ca), certificate_profile_id=getattr(certificate_profile, "pk",
                                                                            certificate_profile),
                username=username[:255], subject_dn=subject_dn[:2048], data=data or {}, request_der=request_der,
                request_digest=csr_digest(request_der), requested_by=actor.name[:255],
                requester_kind=actor.kind[:16], interface=interface[:16], origin=origin, origin_key=origin_key,
                expires_at=now + dt.timedelta(seconds=approval_profile.request_expiration),
            )
            audit.record("APPROVAL_REQUEST", actor.name, object_type="approval", object_id=req.pk,
                         details={"action": action, "operation": operation, "username": username,
                                  "ca": req.ca_id, "interface": interface,
                                  "approval_profile": approval_profile.name}, in_transaction=True)
    except IntegrityError:  # the same protocol transaction submitted concurrently
        return ApprovalRequest.objects.get(origin=origin, origin_key=origin_key)
    logger.info("Approval request %s (%s) stored for %s", req.pk, operation, actor.name)
    return req


def _require_may_issue_member(actor: Actor, ca: CertificateAuthority | int, subject_dn: str, operation: str) -> None:
    """An approved enrollment is carried out later by the system, which may issue anything: whether the
    requester may have a certificate that logs in as a client-certificate role member is decided now, while the
    requester is known (approvers should not have to spot an administrator's CN in a request)."""
    from ..auth.clientcert import require_may_issue_member_certificate
    from ..errors import RoleMemberMatchDenied
    from ..x509.dn import parse_dn

    ca_row = ca if isinstance(ca, CertificateAuthority) else CertificateAuthority.objects.filter(pk=ca).first()
    try:
        subject = parse_dn(subject_dn)
    except Exception:  # noqa: BLE001 - a DN that does not parse is the action's own validation to refuse
        return
    if ca_row is None:
        return
    try:
        require_may_issue_member_certificate(actor, ca_row, subject)
    except RoleMemberMatchDenied as exc:
        audit.record_failure("APPROVAL_REQUEST", actor.name, exc.message, object_type="ca", object_id=ca_row.pk,
                             details={"operation": operation})
        raise


def gate(actor: Actor, action: str, operation: str, *, ca: CertificateAuthority | int | None,
         certificate_profile: CertificateProfile | int | None = None, data: dict[str, Any] | None = None,
         request_der: bytes | None = None, username: str = "", subject_dn: str = "",
         interface: str = "") -> None:
    """Let the action through, or store it for approval and raise :class:`WaitingForApproval`.

    Call it before the action's own transaction: inside one the stored request would roll back with it, so
    there an action that needs approval is refused (:class:`ApprovalRequiredHere`) instead."""
    if is_executing():
        return
    profile = profile_for(action, ca, certificate_profile)
    if profile is None:
        return
    if _in_callers_transaction():
        raise ApprovalRequiredHere(f"This action ({ApprovalAction(action).label}) needs approval by "
                                   f"'{profile.name}' and cannot be submitted from here.")
    req = submit(actor, action, operation, profile, ca=ca, certificate_profile=certificate_profile, data=data,
                 request_der=request_der, username=username, subject_dn=subject_dn, interface=interface)
    raise WaitingForApproval(req)


def _in_callers_transaction() -> bool:
    """Whether a transaction of the caller is open (the blocks a test case wraps around a test do not count,
    as for Django's ``durable`` atomic blocks)."""
    conn = transaction.get_connection()
    return any(not getattr(block, "_from_testcase", False) for block in conn.atomic_blocks)


def visible(actor: Actor) -> QuerySet[ApprovalRequest]:
    """The requests ``actor`` may see: of the CAs it may use, for the actions it may decide or view."""
    qs = ApprovalRequest.objects.select_related("ca", "certificate_profile", "approval_profile")
    if actor.system:
        return qs
    rules = [a for a in ApprovalAction.values if actor.is_allowed(rule_for(a)) or actor.is_allowed(VIEW_RULE)]
    from .certificates import visible_ca_ids

    return qs.filter(action__in=rules).filter(Q(ca_id__in=visible_ca_ids(actor)) | Q(ca__isnull=True))


def with_status(qs: QuerySet[ApprovalRequest], status: str) -> QuerySet[ApprovalRequest]:
    """Requests of ``status`` as they are now: a WAITING request past its expiry counts as EXPIRED."""
    now = timezone.now()
    if status == ApprovalStatus.WAITING:
        return qs.filter(status=status, expires_at__gt=now)
    if status == ApprovalStatus.EXPIRED:
        return qs.filter(Q(status=status) | Q(status=ApprovalStatus.WAITING, expires_at__lte=now))
    return qs.filter(status=status)


def get_request(actor: Actor, pk: int | str) -> ApprovalRequest:
    """One request the actor may see (else NotFoundError, as for a missing one)."""
    from ..ids import parse_db_id

    key = parse_db_id(pk)
    if key is None:
        raise NotFoundError(f"Approval request {str(pk)[:40]!r} does not exist.")
    req = visible(actor).filter(pk=key).first()
    if req is None:
        raise NotFoundError(f"Approval request {key} does not exist.")
    return req


def _may_decide(actor: Actor, req: ApprovalRequest) -> None:
    actor.require(rule_for(req.action))
    if req.ca_id is not None:
        actor.require(f"/ca/{req.ca_id}")
    if req.requested_by == actor.name and req.requester_kind == actor.kind:
        raise SelfApprovalDenied(actor.name)
    if req.approver_role_ids and not actor.system:
        from ..models import Role

        allowed = set(Role.objects.filter(pk__in=req.approver_role_ids).values_list("name", flat=True))
        if not allowed & set(actor.roles):
            raise AuthorizationDenied(f"approval profile '{req.approval_profile or ''}' (not an approver role)",
                                      actor.name)


def decide(actor: Actor, pk: int, *, approve: bool, comment: str = "") -> ApprovalRequest:
    """Approve or reject a WAITING request with a comment. The last required approval carries it out."""
    comment = (comment or "")[:2000]
    if any(ord(c) < 32 and c not in "\n\r\t" for c in comment):
        raise ValidationError("The comment contains control characters.", field="comment")
    try:
        return _decide(actor, pk, approve, comment)
    except (AuthorizationDenied, ConflictError) as exc:  # recorded after the refused transaction rolled back
        audit.record_failure("APPROVAL_APPROVE" if approve else "APPROVAL_REJECT", actor.name, exc.message,
                             object_type="approval", object_id=pk)
        raise


def _decide(actor: Actor, pk: int, approve: bool, comment: str) -> ApprovalRequest:
    expired = False
    with transaction.atomic():
        req = ApprovalRequest.objects.select_for_update(of=("self",)).filter(pk=pk).first()
        if req is None:
            raise NotFoundError(f"Approval request {pk} does not exist.")
        _may_decide(actor, req)
        if req.status == ApprovalStatus.WAITING and req.expires_at <= timezone.now():
            req.status, req.decided_at = ApprovalStatus.EXPIRED, timezone.now()
            req.save(update_fields=["status", "decided_at"])
            audit.record("APPROVAL_EXPIRED", actor.name, object_type="approval", object_id=req.pk,
                         in_transaction=True)
            expired = True
        elif req.status != ApprovalStatus.WAITING:
            raise ConflictError(f"The request is {req.get_status_display().lower()} already.")
        elif req.approvals.filter(admin=actor.name).exists():
            raise ConflictError("You have decided on this request already.")
        else:
            _record_decision(actor, req, approve, comment)
    if expired:
        raise ConflictError(f"Approval request {pk} has expired and can no longer be approved.")
    return req


def _record_decision(actor: Actor, req: ApprovalRequest, approve: bool, comment: str) -> None:
    Approval.objects.create(request=req, admin=actor.name[:255], approved=approve, comment=comment)
    audit.record("APPROVAL_APPROVE" if approve else "APPROVAL_REJECT", actor.name, object_type="approval",
                 object_id=req.pk, details={"operation": req.operation, "username": req.username,
                                            "comment": comment}, in_transaction=True)
    if not approve:  # one rejection rejects the whole request (EJBCA)
        req.status, req.decided_at = ApprovalStatus.REJECTED, timezone.now()
        req.save(update_fields=["status", "decided_at"])
        return
    if req.approvals.filter(approved=True).count() < req.approvals_required:
        return
    req.decided_at = timezone.now()
    executor = _executors.get(req.operation)
    try:
        with transaction.atomic(), executing(req):
            if executor is None:
                raise ValidationError(f"No executor for '{req.operation}' is registered.")
            executor(req)
        req.status = ApprovalStatus.APPROVED
    except PkiError as exc:
        req.status, req.result = ApprovalStatus.FAILED, exc.message[:2000]
        audit.record("APPROVAL_EXECUTE", actor.name, object_type="approval", object_id=req.pk,
                     outcome=AuditOutcome.FAILURE, details={"operation": req.operation, "reason": exc.message},
                     in_transaction=True)
    else:
        audit.record("APPROVAL_EXECUTE", actor.name, object_type="approval", object_id=req.pk,
                     details={"operation": req.operation, "username": req.username}, in_transaction=True)
    req.save(update_fields=["status", "decided_at", "result", "certificate"])
