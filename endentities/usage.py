"""What in this app uses a certificate profile: asked by the core before the profile is deleted
(pki.services.profiles.register_profile_users), so a profile in use is refused with its users named instead of
failing on the database's PROTECT (end entities) or silently leaving an end entity profile without it."""

from __future__ import annotations

from pki.models import CertificateProfile

from .models import EndEntity, EndEntityProfile

NAMED = 10  # end entities named; the rest are counted


def certificate_profile_users(profile: CertificateProfile) -> list[str]:
    """End entities issued under ``profile``, and end entity profiles that offer it or have it as default."""
    found: list[str] = []
    entities = EndEntity.objects.filter(certificate_profile=profile)
    names = list(entities.order_by("username").values_list("username", flat=True)[:NAMED + 1])
    found.extend(f"end entity '{name}'" for name in names[:NAMED])
    if len(names) > NAMED:
        found.append(f"{entities.count() - NAMED} more end entities")
    default = set(EndEntityProfile.objects.filter(default_certificate_profile=profile).values_list("name", flat=True))
    offered = set(EndEntityProfile.objects.filter(available_certificate_profiles=profile).values_list("name",
                                                                                                       flat=True))
    for name in sorted(default | offered):
        found.append(f"end entity profile '{name}'" + (" (its default)" if name in default else ""))
    return found
