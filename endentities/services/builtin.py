"""The built-in EMPTY end entity profile."""

from __future__ import annotations

from django.db import transaction

from pki.models import CertificateProfile

from ..models import EndEntityProfile

EMPTY = "EMPTY"
# EJBCA's "Maximum number of failed login attempts" of EMPTY: without it an enrollment code could be guessed
# without end over SCEP's CA mode, which `init`'s default alias runs. Modifiable, so an end entity may differ.
EMPTY_MAX_FAILED_LOGINS = 10


@transaction.atomic
def ensure_empty_profile(created: list[str] | None = None) -> EndEntityProfile:
    """The built-in EMPTY profile: any CA, any DN, the ENDUSER certificate profile by default (idempotent)."""
    profile, was_created = EndEntityProfile.objects.get_or_create(
        name=EMPTY,
        # EJBCA's EMPTY profile allows clear-text password storage: `ra setclearpwd` works on its end entities.
        defaults={"builtin": True, "any_ca": True, "any_dn": True, "clear_password_use": True,
                  "description": "Built-in profile that accepts any subject DN",
                  "subject_dn_fields": [{"type": "CN", "required": False, "modifiable": True}],
                  "max_failed_logins_use": True, "max_failed_logins": EMPTY_MAX_FAILED_LOGINS,
                  "max_failed_logins_modifiable": True},
    )
    if not was_created and not profile.max_failed_logins_use:
        # An EMPTY from before the limit (it cannot be edited, so this is the old default): limit it now.
        profile.max_failed_logins_use = True
        profile.max_failed_logins = EMPTY_MAX_FAILED_LOGINS
        profile.max_failed_logins_modifiable = True
        profile.save(update_fields=["max_failed_logins_use", "max_failed_logins", "max_failed_logins_modifiable"])
    if was_created:
        enduser = CertificateProfile.objects.filter(name="ENDUSER").first()
        if enduser is not None:
            profile.default_certificate_profile = enduser
            profile.save(update_fields=["default_certificate_profile"])
            profile.available_certificate_profiles.set(CertificateProfile.objects.filter(profile_type="ENDENTITY"))
        if created is not None:
            created.append(f"end entity profile {EMPTY}")
    return profile
