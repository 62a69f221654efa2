"""Adding, editing, finding, revoking and deleting end entities (EJBCA's EndEntityManagementSession).

Every change checks ``/ra_functionality/<action>``, ``/endentityprofilesrules/<profile id>/<action>`` and
``/ca/<id>``, runs in one transaction with the row locked, and writes the audit log (subject names redacted
when the profile says so). Field rules are the end entity profile's (``endentities.validation``).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from pki import audit
from pki.auth.access import Actor
from pki.choices import CertificateStatus, RevocationReason
from pki.db import insert_row
from pki.errors import ConflictError, NotFoundError, ValidationError
from pki.ids import parse_db_id
from pki.models import Certificate, CertificateAuthority, CertificateProfile

from ..choices import EndEntityStatus, TokenType
from ..models import EndEntity, EndEntityProfile
from . import approvals
from .common import AUDIT_ADD, AUDIT_DELETE, AUDIT_EDIT, AUDIT_REVOKE, notify_status_change, redacted_details, require
from .passwords import encrypt_clear_password, hash_password

logger = logging.getLogger("endentities.services")


def get_end_entity_profile(ref: str | int | EndEntityProfile | None) -> EndEntityProfile:
    """A profile by name or id; None gives the built-in EMPTY profile."""
    if isinstance(ref, EndEntityProfile):
        return ref
    from .builtin import EMPTY, ensure_empty_profile

    if ref in (None, "", EMPTY):
        return ensure_empty_profile()
    qs = EndEntityProfile.objects.all()
    found = qs.filter(name=str(ref)).first()
    if found is None and parse_db_id(str(ref)) is not None:
        found = qs.filter(pk=parse_db_id(str(ref))).first()
    if found is None:
        raise NotFoundError(f"End entity profile '{ref}' does not exist.", field="end_entity_profile_name")
    return found


def _lock(username: str) -> EndEntity:
    ee = (EndEntity.objects.select_for_update(of=("self",))
          .select_related("end_entity_profile", "ca", "certificate_profile").filter(username=username).first())
    if ee is None:
        raise NotFoundError(f"End entity '{username}' does not exist.", field="username")
    return ee


def _validated(profile: EndEntityProfile, data, existing: EndEntity | None = None):
    """The profile's verdict on ``data`` (raises ValidationError naming the field and the rule). Editing keeps
    the username, and the stored password when none is given."""
    from ..validation import validate_end_entity

    if existing is not None:
        data.username = existing.username
    # No code is set when the stored one stays (it met the rules when it was set), or when a protocol's RA
    # authenticated the request itself (SCEP RA mode: a code nobody will ever type would only cost a slow hash
    # inside the enrollment's transaction; the end entity then has no code and cannot enroll with one).
    keep_password = not data.password and (
        bool(getattr(data, "ra_authenticated", False)) or (existing is not None and bool(existing.password_hash)))
    if keep_password:
        # A long random stand-in passes the password checks (and stops auto-generation) without weakening any
        # other check. It is discarded below.
        data = dataclasses.replace(data, password=secrets.token_urlsafe(48))
    result = validate_end_entity(profile, data)
    if keep_password:
        result.password, result.password_generated = None, False
    return result


def _profile_requests(profile: EndEntityProfile) -> int:
    return profile.allowed_requests_default if profile.allowed_requests_use else 1


def _apply(ee: EndEntity, v, profile: EndEntityProfile) -> str | None:
    """Copy validated values onto ``ee``; returns the clear password when one was set (for notifications)."""
    ee.end_entity_profile = profile
    ee.subject_dn = v.subject_dn or ""
    ee.subject_alt_name = v.subject_alt_name or ""
    ee.email = v.email or ""
    ee.ca = v.ca
    ee.certificate_profile = v.certificate_profile
    ee.token_type = int(v.token_type)
    ee.key_recoverable = bool(getattr(v, "key_recoverable", False))
    ee.send_notification = bool(getattr(v, "send_notification", False))
    allowed = getattr(v, "allowed_requests", None) or _profile_requests(profile)
    if ee.pk is None or allowed != ee.allowed_requests:
        ee.allowed_requests = allowed
        ee.request_counter = min(ee.request_counter if ee.pk else allowed, allowed)
    max_failed = getattr(v, "max_failed_logins", None)
    ee.max_failed_logins = None if max_failed in (None, -1) else int(max_failed)
    info = dict(ee.extended_information or {})
    info.update(getattr(v, "extended", None) or {})
    info.update({
        "validity_start": v.validity_start, "validity_end": v.validity_end, "revocation_reason": v.revocation_reason,
        "extension_data": dict(v.custom_extension_values or {}),
        # Computed extensions (PSD2 QC statement, CA/B Forum organization identifier) as DER, for issuance.
        "extensions_der": [{"oid": e.oid.dotted_string, "critical": e.critical, "value": e.value.public_bytes().hex()}
                           for e in v.extra_extensions or []],
    })
    ee.extended_information = {k: val for k, val in info.items() if val not in (None, "", [], {})}
    password = getattr(v, "password", None)
    if password:
        ee.password_hash = hash_password(password)
        # The recoverable copy is kept only when this end entity is set for clear-text (batch) storage.
        keep = bool(getattr(v, "clear_password", False))
        ee.clear_password = encrypt_clear_password(ee.username, password) if keep else ""
        ee.failed_login_count = 0
    return password or None


class EndEntityExists(ConflictError):
    """The username is taken by another end entity."""

    def __init__(self, username: str):
        super().__init__(f"End entity '{username}' already exists.", field="username")


@dataclass
class NewEndEntity:
    """An end entity checked and built for adding, not yet written: the row, its profile, the clear password
    that was set (None if none), and whether the profile generated it."""

    ee: EndEntity
    profile: EndEntityProfile
    password: str | None
    password_generated: bool


def new_end_entity(actor: Actor, data, *, profile: EndEntityProfile | str | int | None = None,
                   status: EndEntityStatus | int | str | None = None) -> NewEndEntity:
    """Everything :func:`add_end_entity` does before writing: the access rules, the profile's verdict, the row
    built from it (nothing is written or recorded)."""
    profile = get_end_entity_profile(profile if profile is not None else getattr(data, "end_entity_profile", None))
    require(actor, "create", profile.pk, None)
    v = _validated(profile, data)
    require(actor, "create", None, v.ca.pk)
    ee = EndEntity(username=v.username, status=_parse_status(status) if status is not None else EndEntityStatus.NEW)
    password = _apply(ee, v, profile)
    return NewEndEntity(ee, profile, password, bool(getattr(v, "password_generated", False)))


def record_added(actor: Actor, new: NewEndEntity, status: int | None = None) -> None:
    """The RA_ADDENDENTITY event of a written end entity and its status notifications (``status``: the status
    it was added with, when the row already holds a later one)."""
    ee, profile = new.ee, new.profile
    status = ee.status if status is None else status
    audit.record(AUDIT_ADD, actor.name, object_type="endentity", object_id=ee.username,
                 details=redacted_details(profile, ee.subject_dn, ee.subject_alt_name,
                                          profile=profile.name, ca=ee.ca.name, status=EndEntityStatus(status).name,
                                          certificate_profile=ee.certificate_profile.name,
                                          token=TokenType(ee.token_type).name),
                 in_transaction=True)
    notify_status_change(ee, None, new.password, status=status)


def add_end_entity(actor: Actor, data, *, profile: EndEntityProfile | str | int | None = None,
                   status: EndEntityStatus | int | str | None = None) -> EndEntity:
    """Add an end entity (EJBCA's addUser). ``data`` is an ``endentities.validation.EndEntityInput``.

    The profile is ``profile``, else ``data.end_entity_profile``, else EMPTY. A generated username or
    password is returned on the instance as ``generated_password`` (never stored in clear unless the
    profile keeps passwords). A taken username is a ConflictError.
    """
    new = new_end_entity(actor, data, profile=profile, status=status)
    approvals.gate_add(actor, data, profile, checked=new)  # may store it for approval instead (raises)
    ee = new.ee
    try:
        with transaction.atomic():
            insert_row(ee)  # as ee.save() for a new row, with the statement text built once (SCEP RA adds per request)
            record_added(actor, new)
    except IntegrityError:
        raise EndEntityExists(ee.username) from None
    ee.generated_password = new.password if new.password_generated else None
    return ee


def insert_if_new(ee: EndEntity) -> bool:
    """INSERT the new end entity ``ee`` unless its username is taken (False, and nothing written).

    A taken name is no error here, so a caller inside a transaction needs no savepoint to go on (the SCEP RA
    path then edits the existing end entity): one statement where ``add_end_entity`` inside a transaction
    costs three."""
    return insert_row(ee, unless_taken="username")


def _parse_status(value: EndEntityStatus | int | str) -> EndEntityStatus:
    try:
        return EndEntityStatus.parse(value) if not isinstance(value, EndEntityStatus) else value
    except ValueError as exc:
        raise ValidationError(str(exc), field="status") from None


def edit_end_entity(actor: Actor, username: str, data, *, profile: EndEntityProfile | str | int | None = None,
                    status: EndEntityStatus | int | str | None = None) -> EndEntity:
    """Change an end entity (EJBCA's changeUser). Setting status NEW from another status resets the request
    counter to the profile's default; a new password resets the failed-login counter."""
    approvals.gate_edit(actor, username, data, profile, status)  # may store it for approval instead (raises)
    with transaction.atomic():
        ee = _lock(username)
        require(actor, "edit", ee.end_entity_profile_id, ee.ca_id)
        new_profile = get_end_entity_profile(profile if profile is not None else ee.end_entity_profile)
        if new_profile.pk != ee.end_entity_profile_id:
            require(actor, "edit", new_profile.pk, None)
        v = _validated(new_profile, data, existing=ee)
        if v.ca.pk != ee.ca_id:
            require(actor, "edit", None, v.ca.pk)
        old_status = ee.status
        password = _apply(ee, v, new_profile)
        if status is not None:
            _change_status(ee, _parse_status(status))
        ee.save()
        audit.record(AUDIT_EDIT, actor.name, object_type="endentity", object_id=ee.username,
                     details=redacted_details(new_profile, ee.subject_dn, ee.subject_alt_name, profile=new_profile.name,
                                              ca=ee.ca.name, status=ee.status_name,
                                              password_changed=bool(password)),
                     in_transaction=True)
        notify_status_change(ee, old_status, password)
    return ee


def _change_status(ee: EndEntity, status: EndEntityStatus) -> None:
    if status == EndEntityStatus.NEW and ee.status != EndEntityStatus.NEW:
        # Back to NEW: the profile's default number of allowed requests again, and a fresh failed-login budget.
        ee.allowed_requests = ee.request_counter = _profile_requests(ee.end_entity_profile)
        ee.failed_login_count = 0
    ee.status = int(status)


def set_status(actor: Actor, username: str, status: EndEntityStatus | int | str) -> EndEntity:
    """Set the status (EJBCA's setUserStatus); NEW resets the request and failed-login counters."""
    status = _parse_status(status)
    approvals.gate_status(actor, username, status)  # back to NEW may need approval (raises)
    with transaction.atomic():
        ee = _lock(username)
        require(actor, "edit", ee.end_entity_profile_id, ee.ca_id)
        old_status = ee.status
        _change_status(ee, status)
        ee.save(update_fields=["status", "request_counter", "allowed_requests", "failed_login_count", "updated_at"])
        audit.record(AUDIT_EDIT, actor.name, object_type="endentity", object_id=ee.username,
                     details={"status": ee.status_name, "previous_status": EndEntityStatus(old_status).name},
                     in_transaction=True)
        notify_status_change(ee, old_status)
    return ee


def set_password(actor: Actor, username: str, password: str, *, clear: bool = False) -> EndEntity:
    """Set the enrollment code (checked against the profile's strength rule). ``clear``: also keep the
    recoverable encrypted copy (EJBCA's setClearTextPassword), which the profile must allow."""
    if not password:
        raise ValidationError("The password must not be empty.", field="password")
    approvals.gate_status(actor, username, None, password)  # a new code may need approval (raises)
    with transaction.atomic():
        ee = _lock(username)
        require(actor, "edit", ee.end_entity_profile_id, ee.ca_id)
        profile = ee.end_entity_profile
        _check_strength(profile, password)
        if clear and not profile.clear_password_use:
            raise ValidationError(
                f"End entity profile '{profile.name}' does not allow storing the password recoverable "
                "(batch generation, clear text password storage, is not used).", field="password")
        ee.password_hash = hash_password(password)
        keep = clear
        ee.clear_password = encrypt_clear_password(ee.username, password) if keep else ""
        ee.failed_login_count = 0
        ee.save(update_fields=["password_hash", "clear_password", "failed_login_count", "updated_at"])
        audit.record(AUDIT_EDIT, actor.name, object_type="endentity", object_id=ee.username,
                     details={"password_changed": True, "recoverable": keep}, in_transaction=True)
    return ee


def set_clear_password(actor: Actor, username: str, password: str) -> EndEntity:
    """EJBCA's ``ra setclearpwd``: the password, kept recoverable (encrypted under the master key)."""
    return set_password(actor, username, password, clear=True)


def _check_strength(profile: EndEntityProfile, password: str) -> None:
    from ..validation import check_password

    check_password(profile, password)


def revoke_end_entity(actor: Actor, username: str, reason: RevocationReason | int | str = 0) -> EndEntity:
    """Revoke every certificate of the end entity (through ``pki.revocation``) and set status REVOKED
    (certificateHold puts the certificates on hold and leaves the status). Already REVOKED: ConflictError."""
    from pki.revocation import revoke

    try:
        reason = RevocationReason.parse(reason) if not isinstance(reason, RevocationReason) else reason
    except ValueError as exc:
        raise ValidationError(str(exc), field="reason") from None
    if reason == RevocationReason.REMOVE_FROM_CRL:
        raise ValidationError("removeFromCRL is not a reason to revoke an end entity.", field="reason")
    approvals.gate_revoke(actor, username, reason)  # may store it for approval instead (raises)
    with transaction.atomic():
        ee = _lock(username)
        require(actor, "revoke", ee.end_entity_profile_id, ee.ca_id)
        if ee.status == EndEntityStatus.REVOKED:
            raise ConflictError(f"End entity '{username}' is already revoked.")
        certs = Certificate.objects.filter(username=ee.username).exclude(status=CertificateStatus.REVOKED)
        if reason == RevocationReason.CERTIFICATE_HOLD:
            certs = certs.exclude(status=CertificateStatus.ON_HOLD)
        serials = []
        for cert in certs.select_related("ca"):
            revoke(actor, cert, reason)
            serials.append(cert.serial)
        old_status = ee.status
        if reason != RevocationReason.CERTIFICATE_HOLD:
            ee.status = EndEntityStatus.REVOKED
            ee.save(update_fields=["status", "updated_at"])
        audit.record(AUDIT_REVOKE, actor.name, object_type="endentity", object_id=ee.username,
                     details={"reason": reason.label, "certificates": serials, "status": ee.status_name},
                     in_transaction=True)
        notify_status_change(ee, old_status)
    return ee


def delete_end_entity(actor: Actor, username: str, *, revoke_reason: RevocationReason | int | str | None = None,
                      ) -> None:
    """Delete the end entity (its certificates stay). With ``revoke_reason``, revoke them first (EJBCA's
    ``revokeAndDeleteUser``)."""
    with transaction.atomic():
        ee = _lock(username)
        require(actor, "delete", ee.end_entity_profile_id, ee.ca_id)
        if revoke_reason is not None and ee.status != EndEntityStatus.REVOKED:
            revoke_end_entity(actor, username, revoke_reason)
        ee.delete()
        audit.record(AUDIT_DELETE, actor.name, object_type="endentity", object_id=username,
                     details=redacted_details(ee.end_entity_profile, ee.subject_dn, None,
                                              profile=ee.end_entity_profile.name),
                     in_transaction=True)


# --- finding -----------------------------------------------------------------------------------------


def find_end_entity(actor: Actor, username: str) -> EndEntity:
    """One end entity the actor may view (NotFoundError otherwise, without saying which rule failed)."""
    actor.require("/ra_functionality/view_end_entity")
    ee = (EndEntity.objects.restrict(actor, "view_end_entity")
          .select_related("end_entity_profile", "ca", "certificate_profile").filter(username=username).first())
    if ee is None:
        raise NotFoundError(f"End entity '{username}' does not exist.", field="username")
    return ee


@dataclass
class EndEntityQuery:
    """Search criteria: each list is OR-ed within itself, lists are AND-ed. ``text`` matches username,
    subject DN, alt name or e-mail; ``usernames``/``subjects`` take (value, "EQUAL"|"LIKE") pairs, LIKE
    meaning "contains" as in EJBCA's REST search."""

    text: str = ""
    usernames: list[tuple[str, str]] = field(default_factory=list)
    subjects: list[tuple[str, str]] = field(default_factory=list)
    emails: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    profiles: list[EndEntityProfile] = field(default_factory=list)
    certificate_profiles: list[CertificateProfile] = field(default_factory=list)
    cas: list[CertificateAuthority] = field(default_factory=list)
    token_types: list[int] = field(default_factory=list)
    exact: str = ""  # username, subject DN, alt name or e-mail equal to this (EJBCA's QUERY with EQUAL)
    modified_after: datetime | None = None
    modified_before: datetime | None = None


def _match(column: str, pairs: list[tuple[str, str]]) -> Q:
    q = Q()
    for value, op in pairs:
        q |= Q(**{f"{column}__icontains" if op.upper() == "LIKE" else column: value})
    return q


def search_end_entities(actor: Actor, query: EndEntityQuery) -> QuerySet[EndEntity]:
    """End entities matching ``query`` that ``actor`` may view, by username."""
    actor.require("/ra_functionality/view_end_entity")
    qs = EndEntity.objects.restrict(actor, "view_end_entity").select_related(
        "end_entity_profile", "ca", "certificate_profile")
    if query.text:
        t = query.text.strip()
        qs = qs.filter(Q(username__icontains=t) | Q(subject_dn__icontains=t) | Q(subject_alt_name__icontains=t)
                       | Q(email__icontains=t))
    if query.exact:
        t = query.exact.strip()
        qs = qs.filter(Q(username=t) | Q(subject_dn=t) | Q(subject_alt_name__iexact=t) | Q(email__iexact=t))
    if query.modified_after:
        qs = qs.filter(updated_at__gt=query.modified_after)
    if query.modified_before:
        qs = qs.filter(updated_at__lt=query.modified_before)
    if query.usernames:
        qs = qs.filter(_match("username", query.usernames))
    if query.subjects:
        qs = qs.filter(_match("subject_dn", query.subjects))
    if query.emails:
        qs = qs.filter(_match("email", query.emails))
    if query.statuses:
        qs = qs.filter(status__in=[int(s) for s in query.statuses])
    if query.profiles:
        qs = qs.filter(end_entity_profile__in=query.profiles)
    if query.certificate_profiles:
        qs = qs.filter(certificate_profile__in=query.certificate_profiles)
    if query.cas:
        qs = qs.filter(ca__in=query.cas)
    if query.token_types:
        qs = qs.filter(token_type__in=[int(t) for t in query.token_types])
    return qs.order_by("username")


def certificates_of(actor: Actor, ee: EndEntity) -> QuerySet[Certificate]:
    """The certificates issued to an end entity, newest first (the CA rule is the end entity's)."""
    require(actor, "view", ee.end_entity_profile_id, ee.ca_id)
    return Certificate.objects.filter(username=ee.username).select_related("ca").order_by("-created_at")


def describe(ee: EndEntity) -> dict[str, Any]:
    """A plain summary (CLI, logs): subject names redacted as the profile says."""
    return redacted_details(ee.end_entity_profile, ee.subject_dn, ee.subject_alt_name, username=ee.username,
                            status=ee.status_name, email=ee.email, ca=ee.ca.name,
                            certificate_profile=ee.certificate_profile.name,
                            end_entity_profile=ee.end_entity_profile.name, token=TokenType(ee.token_type).name)
