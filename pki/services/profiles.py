"""Certificate profiles: the built-in set and editing rules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import ProtectedError

from .. import audit
from ..auth.access import Actor
from ..choices import ProfileType
from ..errors import ConflictError, NotFoundError, ValidationError
from ..ids import is_db_id
from ..models import CertificateProfile
from ..x509.extensions import CUSTOM_ENCODINGS, KEY_USAGES, eku_oid
from ..x509.validity import ValidityError, parse_validity
from .names import clean_name

logger = logging.getLogger("pki.profiles")

# The fixed profiles EJBCA ships, with the same names.
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "ENDUSER": {
        "profile_type": ProfileType.ENDENTITY,
        "description": "End user: signing, encryption and client authentication",
        "validity": "2y",
        "key_usage": ["digitalSignature", "nonRepudiation", "keyEncipherment"],
        "extended_key_usage": ["clientAuth", "emailProtection"],
    },
    "SERVER": {
        "profile_type": ProfileType.ENDENTITY,
        "description": "TLS server",
        "validity": "2y",
        "key_usage": ["digitalSignature", "keyEncipherment"],
        "extended_key_usage": ["serverAuth"],
    },
    "OCSPSIGNER": {
        "profile_type": ProfileType.ENDENTITY,
        "description": "OCSP responder signing certificate",
        "validity": "2y",
        "key_usage": ["digitalSignature"],
        "extended_key_usage": ["OCSPSigning"],
        "use_ocsp_no_check": True,
    },
    "SUBCA": {
        "profile_type": ProfileType.SUBCA,
        "description": "Subordinate CA",
        "validity": "25y",
        "key_usage": ["digitalSignature", "keyCertSign", "cRLSign"],
        "allowed_key_algorithms": ["RSA", "EC", "Ed25519", "Ed448"],
        "allowed_rsa_sizes": [2048, 3072, 4096, 6144, 8192],
        "allowed_curves": ["secp256r1", "secp384r1", "secp521r1", "brainpoolP256r1", "brainpoolP384r1",
                           "brainpoolP512r1"],
    },
    "ROOTCA": {
        "profile_type": ProfileType.ROOTCA,
        "description": "Root CA",
        "validity": "25y",
        "key_usage": ["digitalSignature", "keyCertSign", "cRLSign"],
        "use_crl_distribution_point": False,
        "use_authority_info_access": False,
        "allowed_key_algorithms": ["RSA", "EC", "Ed25519", "Ed448"],
        "allowed_rsa_sizes": [2048, 3072, 4096, 6144, 8192],
        "allowed_curves": ["secp256r1", "secp384r1", "secp521r1", "brainpoolP256r1", "brainpoolP384r1",
                           "brainpoolP512r1"],
    },
}

EDITABLE_FIELDS = (
    "description", "profile_type", "validity", "allow_validity_override", "allow_extension_override",
    "allow_dn_override", "key_usage", "key_usage_critical", "extended_key_usage", "extended_key_usage_critical",
    "allowed_key_algorithms", "allowed_rsa_sizes", "allowed_curves", "allowed_signature_algorithms",
    "basic_constraints", "basic_constraints_critical", "path_length", "use_subject_key_id",
    "use_authority_key_id", "use_crl_distribution_point", "use_authority_info_access", "use_ocsp_no_check",
    "use_cabf_organization_identifier", "custom_extensions",
)


def ensure_builtin_profiles() -> None:
    """Create the built-in profiles that do not exist yet (idempotent)."""
    for name, values in BUILTIN_PROFILES.items():
        # Through the same normalization as edited profiles, so built-ins store EKUs as OIDs too.
        CertificateProfile.objects.get_or_create(
            name=name, defaults={**validate_profile_values(values), "builtin": True})


def get_profile(name_or_id: str | int) -> CertificateProfile:
    try:
        if isinstance(name_or_id, int) or is_db_id(str(name_or_id)):
            return CertificateProfile.objects.get(pk=int(name_or_id))
        return CertificateProfile.objects.get(name=name_or_id)
    except CertificateProfile.DoesNotExist:
        raise NotFoundError(f"Certificate profile '{name_or_id}' does not exist.") from None


def validate_profile_values(values: dict[str, Any]) -> dict[str, Any]:
    """Check a profile's values; returns them normalized (EKU names become OIDs)."""
    from datetime import UTC, datetime

    out = dict(values)
    if "validity" in out:
        try:
            parse_validity(out["validity"], datetime.now(UTC))
        except ValidityError as exc:
            raise ValidationError(str(exc), field="validity") from None
    bad = set(out.get("key_usage", [])) - set(KEY_USAGES)
    if bad:
        raise ValidationError(f"Unknown key usage: {', '.join(sorted(bad))}", field="key_usage")
    if "extended_key_usage" in out:
        try:
            out["extended_key_usage"] = [eku_oid(e) for e in out["extended_key_usage"]]
        except ValueError:
            raise ValidationError("Extended key usage must be a known name or a dotted OID.",
                                  field="extended_key_usage") from None
    for ext in out.get("custom_extensions", []) or []:
        if not isinstance(ext, dict) or "oid" not in ext:
            raise ValidationError("Each custom extension needs an OID.", field="custom_extensions")
        try:
            eku_oid(ext["oid"])
        except ValueError:
            raise ValidationError(f"'{ext['oid']}' is not a dotted OID.", field="custom_extensions") from None
        if ext.get("encoding", "UTF8String") not in CUSTOM_ENCODINGS:
            raise ValidationError(f"Encoding must be one of {', '.join(CUSTOM_ENCODINGS)}.", field="custom_extensions")
    for size in out.get("allowed_rsa_sizes", []):
        if not (1024 <= int(size) <= 16384):
            raise ValidationError(f"RSA size {size} is out of range.", field="allowed_rsa_sizes")
    return out


@transaction.atomic
def save_profile(actor: Actor, name: str, values: dict[str, Any], profile: CertificateProfile | None = None
                 ) -> CertificateProfile:
    """Create (``profile`` None) or edit a certificate profile. Built-in profiles are fixed."""
    actor.require("/ca_functionality/edit_certificate_profiles")
    name = clean_name(name, "certificate profile")
    values = validate_profile_values({k: v for k, v in values.items() if k in EDITABLE_FIELDS})
    if profile is None:
        if CertificateProfile.objects.filter(name=name).exists():
            raise ConflictError(f"A certificate profile named '{name}' already exists.", field="name")
        profile = CertificateProfile(name=name, **values)
        event = "CERTPROFILE_CREATION"
    else:
        if profile.builtin:
            raise ValidationError(f"'{profile.name}' is a fixed profile: clone it to change it.")
        if name != profile.name and CertificateProfile.objects.filter(name=name).exists():
            raise ConflictError(f"A certificate profile named '{name}' already exists.", field="name")
        before = {"name": profile.name, **{k: getattr(profile, k) for k in values}}
        profile.name = name
        for k, v in values.items():
            setattr(profile, k, v)
        event = "CERTPROFILE_EDIT"
    profile.save()
    details = {"name": profile.name, **{k: v for k, v in values.items()}}
    if event == "CERTPROFILE_EDIT":  # the audit log shows an edit as what it changed
        details["changes"] = audit.changed_fields(before, details)
    audit.record(event, actor.name, object_type="certificate_profile", object_id=profile.pk,
                 details=details, in_transaction=True)
    return profile


def clone_profile(actor: Actor, source: CertificateProfile, new_name: str) -> CertificateProfile:
    values = {f: getattr(source, f) for f in EDITABLE_FIELDS}
    return save_profile(actor, new_name, values)


# provider(profile) -> what in a layer above uses it, named ("end entity 'alice'", "end entity profile 'VPN' (its
# default)"). The end entity and SCEP apps register theirs at start-up (this core does not import them).
ProfileUsers = Callable[[CertificateProfile], list[str]]
_profile_users: list[ProfileUsers] = []


def register_profile_users(provider: ProfileUsers) -> None:
    """Add ``provider(profile) -> [names]``, asked before a certificate profile is deleted. A provider keeps its
    list short itself (``"12 more end entities"``): the refusal shows all of it."""
    if provider not in _profile_users:
        _profile_users.append(provider)


def profile_users(profile: CertificateProfile) -> list[str]:
    """Everything that uses ``profile``: CAs, and what the registered providers report."""
    from ..models import CertificateAuthority

    found = [f"CA '{name}'" for name in CertificateAuthority.objects.filter(certificate_profile=profile)
             .values_list("name", flat=True)]
    for provider in _profile_users:
        found.extend(provider(profile))
    return found


def _in_use(profile: CertificateProfile, users: list[str]) -> ConflictError:
    return ConflictError(f"Certificate profile '{profile.name}' is used by {', '.join(users)}; change or remove "
                         "them first.")


@transaction.atomic
def delete_profile(actor: Actor, profile: CertificateProfile) -> None:
    """Delete a profile nothing uses (certificates issued under it keep their data). Refused, with the users
    named, while a CA, an end entity, an end entity profile or a SCEP alias uses it."""
    actor.require("/ca_functionality/edit_certificate_profiles")
    if profile.builtin:
        raise ValidationError(f"'{profile.name}' is a fixed profile and cannot be deleted.")
    from ..models import Certificate

    # Locked: a row that starts referring to it meanwhile waits for this transaction (or is seen by the check).
    profile = CertificateProfile.objects.select_for_update().get(pk=profile.pk)
    users = profile_users(profile)
    if users:
        logger.info("Certificate profile %s not deleted: in use by %s", profile.name, ", ".join(users))
        raise _in_use(profile, users)
    Certificate.objects.filter(certificate_profile=profile).update(certificate_profile=None)
    audit.record("CERTPROFILE_DELETION", actor.name, object_type="certificate_profile", object_id=profile.pk,
                 details={"name": profile.name}, in_transaction=True)
    try:
        with transaction.atomic():
            profile.delete()
    except ProtectedError as exc:  # a reference no provider knows of: refused all the same, never a 500
        raise _in_use(profile, sorted({f"{o._meta.verbose_name} '{o}'" for o in exc.protected_objects})) from None
