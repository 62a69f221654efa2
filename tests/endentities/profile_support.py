"""Helpers for the end entity profile tests: unsaved profiles for the pure rules, saved ones for the rest."""

from __future__ import annotations

from typing import Any

from endentities.models import EndEntityProfile, normalize_field_instance


def field(type_: str, value: str = "", *, required: bool = False, modifiable: bool = True, validation: str = "",
          **options: Any) -> dict[str, Any]:
    """One field instance, as the profile editor stores it."""
    return {"type": type_, "value": value, "required": required, "modifiable": modifiable,
            "validation": validation, **options}


def make_profile(dn: list[dict] | None = None, alt: list[dict] | None = None, **kw: Any) -> EndEntityProfile:
    """An unsaved profile with normalized field instances (what ``save`` would store)."""
    profile = EndEntityProfile(name=kw.pop("name", "TestProfile"), **kw)
    profile.subject_dn_fields = [normalize_field_instance(f, "dn") for f in (dn or [])]
    profile.subject_alt_name_fields = [normalize_field_instance(f, "altname") for f in (alt or [])]
    return profile
