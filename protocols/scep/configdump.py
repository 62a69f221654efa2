"""SCEP aliases as configdump items (EJBCA's ``SCEPCONFIG``/``scep-config``), without their secrets (RA
shared secret, Intune application key and proxy password), written through :mod:`protocols.scep.services`.
Registered from ``ScepConfig.ready``."""

from __future__ import annotations

from typing import Any

from pki.auth.access import Actor
from pki.services.configdump import ImportContext, ItemType, register

from . import services
from .models import ScepAlias

_REF_TYPE = {"default_ca": "CA", "ra_default_ca": "CA", "ra_certificate_profile": "CERTPROFILE",
             "ra_end_entity_profile": "EEPROFILE"}


def _export(actor: Actor) -> list[dict[str, Any]]:
    out = []
    for alias in ScepAlias.objects.select_related(*services.REFERENCES).order_by("name"):
        item: dict[str, Any] = {"name": alias.name, **{f: getattr(alias, f) for f in services.PLAIN_FIELDS}}
        for f in services.REFERENCES:
            ref = getattr(alias, f)
            item[f] = ref.name if ref else ""
        item["intune_settings"] = dict(alias.intune_settings or {})
        out.append(item)
    return out


def _write(actor: Actor, item: dict[str, Any], existing: bool, ctx: ImportContext) -> None:
    settings = {k: v for k, v in item.items() if k in services.EDITABLE}
    if existing:
        services.edit_alias(actor, item["name"], **settings)
    else:
        secretless = (settings.get("operation_mode") == "ra" and not settings.get("ra_auth_password")
                      and not settings.get("challenge_validator") and not settings.get("use_intune"))
        if secretless:  # enabled, it would issue to anyone until the secret is set (services refuse that)
            settings["enabled"] = False
        services.add_alias(actor, item["name"], **settings)
        if secretless:
            ctx.warnings.append(f"SCEPCONFIG '{item['name']}': imported disabled; set its RA shared secret (never "
                                "part of a dump), then enable it.")


def _references(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(t, str(item[f]), f) for f, t in _REF_TYPE.items()
            if item.get(f) and not (f == "ra_default_ca" and item[f] == "ProfileDefault")]


def _drop(item: dict[str, Any], field: str) -> None:
    item[field] = ""


def register_items() -> None:
    register(ItemType(
        name="SCEPCONFIG", directory="scep-config", label="SCEP Configuration", view_rule=services.RULE,
        export=_export, order=70, exists=lambda name: ScepAlias.objects.filter(name=name).exists(), write=_write,
        references=_references, drop_reference=_drop,
    ))
