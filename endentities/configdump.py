"""End entity profiles as configdump items (EJBCA's ``EEPROFILE``/``end-entity-profiles``): their settings,
with CAs and certificate profiles named, written through :func:`endentities.services.profiles.save_profile`.
Registered from ``EndEntitiesConfig.ready``."""

from __future__ import annotations

from typing import Any

from django.db import models

from pki.auth.access import Actor
from pki.errors import ValidationError
from pki.models import CertificateAuthority, CertificateProfile
from pki.services.configdump import ImportContext, ItemType, register

from .models import EndEntityProfile
from .services import profiles as profile_services

_FK = {"default_ca": CertificateAuthority, "default_certificate_profile": CertificateProfile}
_M2M = {"available_cas": CertificateAuthority, "available_certificate_profiles": CertificateProfile}
_REF_TYPE = {CertificateAuthority: "CA", CertificateProfile: "CERTPROFILE"}


def _fields() -> list[models.Field]:
    return profile_services._editable_fields()


def _export(actor: Actor) -> list[dict[str, Any]]:
    out = []
    for profile in EndEntityProfile.objects.filter(builtin=False).prefetch_related(*_M2M).order_by("name"):
        item: dict[str, Any] = {"name": profile.name}
        for f in _fields():
            if f.name in _FK:
                ref = getattr(profile, f.name)
                item[f.name] = ref.name if ref else ""
            elif f.name in _M2M:
                item[f.name] = sorted(o.name for o in getattr(profile, f.name).all())
            else:
                item[f.name] = getattr(profile, f.name)
        out.append(item)
    return out


def _resolve(model: type[models.Model], name: str, field: str):
    obj = model.objects.filter(name=name).first()
    if obj is None:
        raise ValidationError(f"{field} names '{name}', which does not exist.", field=field)
    return obj


def _write(actor: Actor, item: dict[str, Any], existing: bool, ctx: ImportContext) -> None:
    names = {f.name for f in _fields()}
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key not in names:
            continue
        if key in _FK:
            values[key] = _resolve(_FK[key], str(value), key) if value else None
        elif key in _M2M:
            if not isinstance(value, list):
                raise ValidationError(f"{key} is a list of names.", field=key)
            values[key] = [_resolve(_M2M[key], str(v), key) for v in value]
        else:
            values[key] = value
    current = EndEntityProfile.objects.filter(name=item["name"]).first() if existing else None
    profile_services.save_profile(actor, item["name"], values, current)


def _references(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    refs = [(_REF_TYPE[m], str(item[f]), f) for f, m in _FK.items() if item.get(f)]
    for f, m in _M2M.items():
        refs += [(_REF_TYPE[m], str(v), f) for v in item.get(f) or [] if isinstance(v, str)]
    return refs


def _drop(item: dict[str, Any], field: str) -> None:
    """resolve=useDefault: a missing CA or profile is left out (the profile then uses its own default)."""
    if field in _FK:
        item[field] = ""
    elif field in _M2M:
        model = _M2M[field]
        item[field] = [v for v in item.get(field) or [] if model.objects.filter(name=v).exists()]


def register_items() -> None:
    register(ItemType(
        name="EEPROFILE", directory="end-entity-profiles", label="End Entity Profile",
        view_rule="/ca_functionality/view_end_entity_profiles", export=_export, order=20,
        exists=lambda name: EndEntityProfile.objects.filter(name=name).exists(), write=_write,
        references=_references, drop_reference=_drop, rule_prefix="/endentityprofilesrules/",
        id_to_name=lambda pk: EndEntityProfile.objects.filter(pk=pk).values_list("name", flat=True).first(),
        name_to_id=lambda name: EndEntityProfile.objects.filter(name=name).values_list("pk", flat=True).first(),
    ))
