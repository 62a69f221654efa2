"""End entity profiles: create, edit, clone and delete, with the profile's own consistency rules.

Every change checks ``/ca_functionality/edit_end_entity_profiles`` and is audited (EJBCA's event names);
a refusal is a ``ValidationError`` naming the field, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, models, transaction

from pki import audit
from pki.auth.access import Actor
from pki.choices import RevocationReason
from pki.errors import ConflictError, NotFoundError, ValidationError
from pki.ids import parse_db_id
from pki.services.names import clean_name

from ..choices import EndEntityStatus, TokenType
from ..fields import field_type
from ..models import EndEntityProfile, normalize_field_instance, normalize_notification
from ..profilerules import compile_java_regex, load_field_validator

EDIT_RULE = "/ca_functionality/edit_end_entity_profiles"
AUDIT_ADD = "RA_ADDEEPROFILE"
AUDIT_EDIT = "RA_EDITEEPROFILE"
AUDIT_REMOVE = "RA_REMOVEEEPROFILE"

# Who an e-mail notification may go to besides literal addresses.
NOTIFICATION_RECIPIENTS = ("USER", "APPROVER", "ADMIN")
_NOT_EDITABLE = ("id", "name", "builtin", "created_at", "updated_at")


def _editable_fields() -> list[models.Field]:
    return [f for f in EndEntityProfile._meta.get_fields()
            if getattr(f, "concrete", False) and f.name not in _NOT_EDITABLE and not f.auto_created]


def _check_instances(raw: list[dict[str, Any]], kind: str, field: str) -> list[dict[str, Any]]:
    out = []
    for i, inst in enumerate(raw or []):
        try:
            norm = normalize_field_instance(inst, kind)
        except (ValueError, AttributeError) as exc:
            raise ValidationError(f"Field {i + 1}: {exc}.", field=field) from None
        ftype = field_type(norm["type"], kind)  # type: ignore[arg-type]
        if not ftype.repeatable and any(o["type"] == norm["type"] for o in out):
            raise ValidationError(f"{ftype.label} may appear only once.", field=field)
        if norm["validation"]:
            try:
                compile_java_regex(norm["validation"])
            except ValueError as exc:
                raise ValidationError(f"{ftype.ejbca_name}: {exc}", field=field) from None
        if norm.get("validator"):
            try:
                load_field_validator(norm["validator"])
            except ValueError as exc:
                raise ValidationError(f"{ftype.ejbca_name}: {exc}.", field=field) from None
        if not norm["modifiable"] and norm["required"] and not norm["value"] and not (
                norm["use_entity_email"] or norm["use_entity_cn"]):
            raise ValidationError(
                f"{ftype.ejbca_name} is required and not modifiable: it needs a value.", field=field
            )
        out.append(norm)
    return out


def _check_notifications(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, n in enumerate(raw or []):
        norm = normalize_notification(n)
        unknown = [e for e in norm["events"] if e not in EndEntityStatus.names]
        if unknown or not norm["events"]:
            raise ValidationError(
                f"Notification {i + 1}: events must be end entity statuses ({', '.join(EndEntityStatus.names)}).",
                field="notifications",
            )
        bad = [r for r in norm["recipients"] if r.upper() not in NOTIFICATION_RECIPIENTS and "@" not in r]
        if bad or not norm["recipients"]:
            raise ValidationError(
                f"Notification {i + 1}: recipients are USER, APPROVER, ADMIN or e-mail addresses "
                f"(not {', '.join(bad) or 'none'}).", field="notifications",
            )
        out.append(norm)
    return out


def validate_profile_values(values: dict[str, Any]) -> dict[str, Any]:
    """Check a profile's values together; returns them normalized. Unknown keys are ignored."""
    from ..extended import parse_validity_time

    names = {f.name for f in _editable_fields()}
    out = {k: v for k, v in values.items() if k in names}
    out["subject_dn_fields"] = _check_instances(out.get("subject_dn_fields", []), "dn", "subject_dn_fields")
    out["subject_alt_name_fields"] = _check_instances(out.get("subject_alt_name_fields", []), "altname",
                                                      "subject_alt_name_fields")
    out["notifications"] = _check_notifications(out.get("notifications", []))
    tokens = [int(t) for t in (out.get("available_token_types") or [int(t) for t in TokenType])]
    if any(t not in TokenType.values for t in tokens) or not tokens:
        raise ValidationError("Available tokens must be some of " + ", ".join(TokenType.names) + ".",
                              field="available_token_types")
    out["available_token_types"] = sorted(set(tokens))
    default_token = int(out.get("default_token_type") or TokenType.USERGENERATED)
    if default_token not in tokens:
        raise ValidationError("The default token must be one of the available tokens.", field="default_token_type")
    if int(out.get("password_min_strength_bits") or 0) < 0:
        raise ValidationError("The minimum password strength is 0 bits or more.", field="password_min_strength_bits")
    if out.get("allowed_requests_use"):
        default, maximum = int(out.get("allowed_requests_default", 1)), int(out.get("allowed_requests_max", 1))
        if not 1 <= default <= maximum:
            raise ValidationError("The default number of allowed requests must be 1 to the maximum.",
                                  field="allowed_requests_default")
    reason = out.get("revocation_reason_default")
    if reason not in (None, "") and int(reason) not in RevocationReason.values:
        raise ValidationError(f"{reason} is not a revocation reason code.", field="revocation_reason_default")
    for which in ("validity_start_default", "validity_end_default"):
        if (out.get(which) or "").strip():
            from django.utils import timezone

            parse_validity_time(out[which].strip(), timezone.now(), which)
    if int(out.get("max_failed_logins", -1)) < -1:
        raise ValidationError("The maximum number of failed logins is -1 (unlimited) or more.",
                              field="max_failed_logins")
    default_ca, cas = out.get("default_ca"), list(out.get("available_cas") or [])
    if default_ca is not None and not out.get("any_ca", True) and cas and default_ca not in cas:
        raise ValidationError("The default CA must be one of the available CAs.", field="default_ca")
    default_cp, cps = out.get("default_certificate_profile"), list(out.get("available_certificate_profiles") or [])
    if default_cp is not None and cps and default_cp not in cps:
        raise ValidationError("The default certificate profile must be one of the available ones.",
                              field="default_certificate_profile")
    if default_cp is not None and getattr(default_cp, "is_ca", False):
        raise ValidationError(f"'{default_cp}' is a CA profile.", field="default_certificate_profile")
    return out


def _audit_value(value: Any) -> Any:
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, models.QuerySet | list | tuple) and value and isinstance(value[0], models.Model):
        return [v.pk for v in value]
    if isinstance(value, models.QuerySet):
        return []
    return value


@transaction.atomic
def save_profile(actor: Actor, name: str, values: dict[str, Any], profile: EndEntityProfile | None = None
                 ) -> EndEntityProfile:
    """Create (``profile`` None) or edit an end entity profile. EMPTY (built-in) is fixed: clone it."""
    actor.require(EDIT_RULE)
    name = clean_name(name, "profile")
    values = validate_profile_values(values)
    m2m = {k: values.pop(k) for k in ("available_cas", "available_certificate_profiles") if k in values}
    if profile is not None and profile.builtin:
        raise ValidationError(f"'{profile.name}' is the built-in profile: clone it to change it.", field="name")
    creating = profile is None
    if creating:
        profile = EndEntityProfile(name=name)
        before = {}
    else:
        before = {"name": profile.name, **{k: _audit_value(getattr(profile, k)) for k in values},
                  **{k: sorted(getattr(profile, k).values_list("pk", flat=True)) for k in m2m}}
        profile.name = name
    for k, v in values.items():
        setattr(profile, k, v)
    try:
        with transaction.atomic():  # the unique name is the database's to enforce
            profile.save()
    except IntegrityError:
        raise ConflictError(f"An end entity profile named '{name}' already exists.", field="name") from None
    for k, v in m2m.items():
        getattr(profile, k).set(v)
    details = {"name": profile.name, **{k: _audit_value(v) for k, v in {**values, **m2m}.items()}}
    if not creating:  # the audit log shows an edit as what it changed
        details["changes"] = audit.changed_fields(before, {**details, **{k: sorted(details[k]) for k in m2m}})
    audit.record(AUDIT_ADD if creating else AUDIT_EDIT, actor.name, object_type="end_entity_profile",
                 object_id=profile.pk, details=details, in_transaction=True)
    return profile


def clone_profile(actor: Actor, source: EndEntityProfile, new_name: str) -> EndEntityProfile:
    """A copy of ``source`` (also of EMPTY) under ``new_name``; the copy is not built-in."""
    values = {f.name: getattr(source, f.name) for f in _editable_fields() if not f.many_to_many}
    values["available_cas"] = list(source.available_cas.all())
    values["available_certificate_profiles"] = list(source.available_certificate_profiles.all())
    return save_profile(actor, new_name, values)


@transaction.atomic
def delete_profile(actor: Actor, profile: EndEntityProfile) -> None:
    """Delete a profile no end entity uses; EMPTY cannot be deleted."""
    actor.require(EDIT_RULE)
    if profile.builtin:
        raise ValidationError(f"'{profile.name}' is the built-in profile and cannot be deleted.", field="name")
    profile = EndEntityProfile.objects.select_for_update().get(pk=profile.pk)
    used = profile.end_entities.count() if hasattr(profile, "end_entities") else 0
    if used:
        raise ConflictError(f"End entity profile '{profile.name}' is used by {used} end entit"
                            f"{'y' if used == 1 else 'ies'}.")
    audit.record(AUDIT_REMOVE, actor.name, object_type="end_entity_profile", object_id=profile.pk,
                 details={"name": profile.name}, in_transaction=True)
    profile.delete()


def get_profile(name_or_id: str | int) -> EndEntityProfile:
    """A profile by name or id."""
    try:
        pk = parse_db_id(name_or_id)
        if pk is not None:
            return EndEntityProfile.objects.get(pk=pk)
        return EndEntityProfile.objects.get(name=name_or_id)
    except EndEntityProfile.DoesNotExist:
        raise NotFoundError(f"End entity profile '{name_or_id}' does not exist.") from None
