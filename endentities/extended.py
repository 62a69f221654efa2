"""The end entity options beyond its name: CA and certificate profile, validity start/end, custom
certificate extension data, revocation reason after issuance, PSD2 and CA/B Forum data, counters and
flags (EJBCA's ExtendedInformation)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from pki.choices import RevocationReason
from pki.errors import ValidationError
from pki.ids import looks_numeric, parse_db_id, parse_decimal
from pki.x509.qc import PSD2_ROLES, QCError, cabf_organization_identifier_extension, psd2_qc_statements_extension

if TYPE_CHECKING:
    from pki.models import CertificateAuthority, CertificateProfile

    from .inputs import EndEntityInput, ValidatedEndEntity
    from .models import EndEntityProfile

_RELATIVE_RE = re.compile(r"^\s*(\d+):(\d+):(\d+)\s*$")


# --- CA and certificate profile ----------------------------------------------------------------------------

def _available_ids(profile: EndEntityProfile) -> tuple[set[int], set[int]]:
    """The available CA and certificate profile ids, read once per profile instance (validation is hot)."""
    cache = getattr(profile, "_ee_available", None)
    if cache is None or cache[0] != profile.updated_at:
        if profile.pk is None:
            cas, cps = set(), set()
        else:
            cas = set(profile.available_cas.values_list("pk", flat=True))
            cps = set(profile.available_certificate_profiles.values_list("pk", flat=True))
        cache = (profile.updated_at, cas, cps)
        profile._ee_available = cache  # type: ignore[attr-defined]
    return cache[1], cache[2]


def remember_available_ids(profile: EndEntityProfile, ca_ids: set[int], certificate_profile_ids: set[int]) -> None:
    """Give ``profile`` its available CA and certificate profile ids, read by the caller with the profile's row
    (one statement instead of :func:`_available_ids`' two)."""
    profile._ee_available = (profile.updated_at, set(ca_ids), set(certificate_profile_ids))  # type: ignore[attr-defined]


def _lookup(model, value, what: str, field: str):
    if isinstance(value, model):
        return value
    try:
        if isinstance(value, int) or looks_numeric(value):
            pk = parse_db_id(value.strip() if isinstance(value, str) else value)
            if not pk:  # other scripts' digits, or beyond the id column: no such row (and no database error)
                raise model.DoesNotExist
            return model.objects.get(pk=pk)
        return model.objects.get(name=str(value).strip())
    except model.DoesNotExist:
        raise ValidationError(f"{what} '{value}' does not exist.", field=field) from None


def resolve_ca_and_profile(
    profile: EndEntityProfile, ca: Any, certificate_profile: Any
) -> tuple[CertificateAuthority, CertificateProfile]:
    """The CA and certificate profile (given or the end entity profile's defaults), both available in it."""
    from pki.models import CertificateAuthority, CertificateProfile

    ca_ids, cp_ids = _available_ids(profile)
    if ca in (None, ""):
        if profile.default_ca_id is None:
            raise ValidationError(f"A CA is required: end entity profile '{profile.name}' has no default CA.",
                                  field="ca")
        ca = profile.default_ca if profile.default_ca_id else None
    ca_obj = _lookup(CertificateAuthority, ca, "CA", "ca")
    if not profile.any_ca and ca_obj.pk not in ca_ids and ca_obj.pk != profile.default_ca_id:
        raise ValidationError(f"CA '{ca_obj.name}' is not available in end entity profile '{profile.name}'.",
                              field="ca")
    if certificate_profile in (None, ""):
        if profile.default_certificate_profile_id is None:
            raise ValidationError(
                f"A certificate profile is required: end entity profile '{profile.name}' has no default.",
                field="certificate_profile",
            )
        certificate_profile = profile.default_certificate_profile
    cp_obj = _lookup(CertificateProfile, certificate_profile, "Certificate profile", "certificate_profile")
    if cp_obj.pk not in cp_ids and cp_obj.pk != profile.default_certificate_profile_id:
        raise ValidationError(
            f"Certificate profile '{cp_obj.name}' is not available in end entity profile '{profile.name}'.",
            field="certificate_profile",
        )
    if cp_obj.is_ca:
        raise ValidationError(f"Certificate profile '{cp_obj.name}' is a CA profile.", field="certificate_profile")
    return ca_obj, cp_obj


# --- validity ----------------------------------------------------------------------------------------------

def parse_validity_time(text: str, relative_to: datetime, field: str) -> datetime:
    """An absolute time ("2026-12-01", "2026-12-01 10:00", ISO 8601 with offset; UTC when none) or a
    relative one, "days:hours:minutes" after ``relative_to``."""
    from pki.x509.validity import parse_absolute

    m = _RELATIVE_RE.match(text)
    if m:
        days, hours, minutes = (int(g) for g in m.groups())
        if hours > 23 or minutes > 59:
            raise ValidationError(f"'{text}': hours must be 0-23 and minutes 0-59 in days:hours:minutes.",
                                  field=field)
        return relative_to + timedelta(days=days, hours=hours, minutes=minutes)
    absolute = parse_absolute(text) if re.match(r"^\s*\d{4}-\d{2}-\d{2}", text) else None
    if absolute is None:
        raise ValidationError(
            f"'{text}' is neither a date (YYYY-MM-DD [HH:MM[:SS]][+HH:MM]) nor days:hours:minutes.", field=field
        )
    return absolute.astimezone(UTC)


def _option(use: bool, default: str, modifiable: bool, given: str, what: str, field: str) -> str:
    given = (given or "").strip()
    if not use:
        if given:
            raise ValidationError(f"The end entity profile does not use {what}.", field=field)
        return ""
    if given and not modifiable and given != default.strip():
        raise ValidationError(f"{what[0].upper()}{what[1:]} is not modifiable: it must be '{default}'.", field=field)
    return given or default.strip()


def _validity(profile: EndEntityProfile, data: EndEntityInput, out: ValidatedEndEntity, now: datetime) -> None:
    start = _option(profile.validity_start_use, profile.validity_start_default, profile.validity_start_modifiable,
                    data.validity_start, "a certificate validity start time", "validity_start")
    end = _option(profile.validity_end_use, profile.validity_end_default, profile.validity_end_modifiable,
                  data.validity_end, "a certificate validity end time", "validity_end")
    not_before = parse_validity_time(start, now, "validity_start") if start else None
    not_after = parse_validity_time(end, not_before or now, "validity_end") if end else None
    if not_before and not_after and not_after <= not_before:
        raise ValidationError("The validity end time is not after the start time.", field="validity_end")
    out.validity_start, out.validity_end = start, end
    if start or end:
        out.extended["validity_start"] = start
        out.extended["validity_end"] = end
    # Honoured only when the certificate profile allows validity override (otherwise its validity applies).
    if out.certificate_profile.allow_validity_override:
        out.not_before, out.not_after = not_before, not_after


# --- custom certificate extension data ---------------------------------------------------------------------

def parse_properties(text: str) -> list[tuple[str, str]]:
    """Java properties text: ``key=value``, ``key: value`` or ``key value`` per line, ``#``/``!`` comments,
    backslash line continuation and escapes (``\\n``, ``\\t``, ``\\=``, ``\\:``, ``\\\\``)."""
    lines = (text or "").replace("\r\n", "\n").split("\n")
    logical: list[str] = []
    buf = ""
    for line in lines:
        stripped = line.lstrip() if not buf else line.lstrip()
        if not buf and (not stripped or stripped[0] in "#!"):
            continue
        trailing = len(stripped) - len(stripped.rstrip("\\"))
        if trailing % 2 == 1:
            buf += stripped[:-1]
            continue
        logical.append(buf + stripped)
        buf = ""
    if buf:
        logical.append(buf)
    out = []
    for entry in logical:
        key_chars: list[str] = []
        i = 0
        while i < len(entry) and entry[i] not in "=: \t":
            if entry[i] == "\\" and i + 1 < len(entry):
                i += 1
            key_chars.append(entry[i])
            i += 1
        rest = entry[i:].lstrip(" \t")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t")
        value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), rest)
        out.append(("".join(key_chars), value))
    return out


def custom_extension_values(cert_profile: CertificateProfile, text: str) -> dict[str, str]:
    """``OID.value=...`` entries -> {oid: value}; an entry no dynamic custom extension of the certificate
    profile takes is refused (EJBCA rejects issuance for it)."""
    configured = {c["oid"]: c for c in (cert_profile.custom_extensions or []) if c.get("oid")}
    values: dict[str, str] = {}
    for key, value in parse_properties(text):
        oid, dot, prop = key.rpartition(".")
        custom = configured.get(oid) if dot else None
        if custom is None or prop != "value":
            raise ValidationError(
                f"Custom extension data '{key}' matches no custom certificate extension of certificate profile "
                f"'{cert_profile.name}' (expected OID.value for one of: "
                f"{', '.join(sorted(configured)) or 'none configured'}).", field="custom_extension_data",
            )
        if not custom.get("dynamic"):
            raise ValidationError(
                f"Custom certificate extension {oid} of certificate profile '{cert_profile.name}' is not dynamic: "
                f"it takes no value from the end entity.", field="custom_extension_data",
            )
        values[oid] = value
    return values


# --- the rest ----------------------------------------------------------------------------------------------

def _revocation_reason(profile: EndEntityProfile, given: int | str | None) -> int | None:
    if given in (None, "", -1, "-1"):
        return profile.revocation_reason_default if profile.revocation_reason_use else None
    if not profile.revocation_reason_use:
        raise ValidationError("The end entity profile does not use a revocation reason after issuance.",
                              field="revocation_reason")
    try:
        if isinstance(given, str) and parse_decimal(given) is None:
            labels = {label.lower(): value for value, label in RevocationReason.choices}
            labels.update({name.lower(): value for name, value in RevocationReason.__members__.items()})
            return int(RevocationReason(labels[given.strip().lower()]))
        return int(RevocationReason(int(given)))
    except (KeyError, ValueError):
        raise ValidationError(f"'{given}' is not a revocation reason.", field="revocation_reason") from None


def _flag(use: bool, default: bool, required: bool, given: bool | None, what: str, field: str) -> bool:
    if not use:
        if given:
            raise ValidationError(f"The end entity profile does not use {what}.", field=field)
        return False
    value = default if given is None else bool(given)
    if required and not value:
        raise ValidationError(f"The end entity profile requires {what}.", field=field)
    return value


def validate_extended(profile: EndEntityProfile, data: EndEntityInput, out: ValidatedEndEntity,
                      now: datetime | None = None) -> None:
    """Fill ``out`` with the validated extended information of ``data``."""
    _validity(profile, data, out, now or timezone.now().replace(microsecond=0))
    if data.custom_extension_data.strip():
        if not profile.custom_extension_data_use:
            raise ValidationError("The end entity profile does not use custom certificate extension data.",
                                  field="custom_extension_data")
        out.custom_extension_values = custom_extension_values(out.certificate_profile, data.custom_extension_data)
        out.extended["custom_extension_data"] = data.custom_extension_data
    out.revocation_reason = _revocation_reason(profile, data.revocation_reason)
    if out.revocation_reason is not None:
        out.extended["revocation_reason"] = out.revocation_reason
    psd2_given = bool(data.psd2_nca_name or data.psd2_nca_id or data.psd2_roles)
    if psd2_given:
        if not profile.psd2_qc_statement_use:
            raise ValidationError("The end entity profile does not use the ETSI PSD2 QC statement.",
                                  field="psd2_qc_statement")
        unknown = [r for r in data.psd2_roles if r not in PSD2_ROLES]
        if unknown:
            raise ValidationError(f"Unknown PSD2 role(s) {', '.join(unknown)} (use {', '.join(PSD2_ROLES)}).",
                                  field="psd2_roles")
        try:
            out.extra_extensions.append(
                psd2_qc_statements_extension(data.psd2_nca_name, data.psd2_nca_id, list(data.psd2_roles))
            )
        except QCError as exc:
            raise ValidationError(str(exc), field="psd2_qc_statement") from None
        out.extended.update(psd2_nca_name=data.psd2_nca_name, psd2_nca_id=data.psd2_nca_id,
                            psd2_roles=list(data.psd2_roles))
    if data.cabf_organization_identifier.strip():
        if not profile.cabf_organization_identifier_use:
            raise ValidationError("The end entity profile does not use the CA/B Forum organization identifier.",
                                  field="cabf_organization_identifier")
        try:
            out.extra_extensions.append(cabf_organization_identifier_extension(data.cabf_organization_identifier))
        except QCError as exc:
            raise ValidationError(str(exc), field="cabf_organization_identifier") from None
        out.extended["cabf_organization_identifier"] = data.cabf_organization_identifier.strip()
    _counters(profile, data, out)


def _counters(profile: EndEntityProfile, data: EndEntityInput, out: ValidatedEndEntity) -> None:
    if profile.allowed_requests_use:
        n = profile.allowed_requests_default if data.allowed_requests is None else data.allowed_requests
        if n < 1 or n > profile.allowed_requests_max:
            raise ValidationError(
                f"The number of allowed requests must be 1 to {profile.allowed_requests_max} ({n} given).",
                field="allowed_requests",
            )
        out.allowed_requests = n
    elif data.allowed_requests not in (None, 1):
        raise ValidationError("The end entity profile does not use the number of allowed requests.",
                              field="allowed_requests")
    if profile.max_failed_logins_use:
        n = profile.max_failed_logins if data.max_failed_logins is None else data.max_failed_logins
        if n != profile.max_failed_logins and not profile.max_failed_logins_modifiable:
            raise ValidationError(
                f"The maximum number of failed login attempts is not modifiable: it must be "
                f"{profile.max_failed_logins}.", field="max_failed_logins",
            )
        if n < -1:
            raise ValidationError("The maximum number of failed login attempts is -1 (unlimited) or more.",
                                  field="max_failed_logins")
        out.max_failed_logins = n
    elif data.max_failed_logins not in (None, -1):
        raise ValidationError("The end entity profile does not use a maximum number of failed login attempts.",
                              field="max_failed_logins")
    out.key_recoverable = _flag(profile.key_recoverable_use, profile.key_recoverable_default,
                                profile.key_recoverable_required, data.key_recoverable, "key recovery",
                                "key_recoverable")
    out.send_notification = _flag(profile.send_notification_use, profile.send_notification_default,
                                  profile.send_notification_required, data.send_notification, "e-mail notification",
                                  "send_notification")
    out.clear_password = _flag(profile.clear_password_use, profile.clear_password_default,
                               profile.clear_password_required, data.clear_password,
                               "clear text password storage (batch generation)", "clear_password")
