"""Who uses a key binding, asked before it is deleted.

The SCEP Intune validator sits in a layer above this app, so its aliases are read through Django's app
registry (by model name) instead of an import; peer connectors (the next issue) register a provider with
:func:`keybindings.services.register_binding_user`.
"""

from __future__ import annotations

from django.apps import apps

from .models import InternalKeyBinding
from .services import register_binding_user

_TRUE = {"true", "1", "yes", "on"}


def scep_aliases_using(binding: InternalKeyBinding) -> list[str]:
    """SCEP aliases whose Intune validator logs in to Azure AD with ``binding`` (intuneAadKeyBinding)."""
    try:
        alias_model = apps.get_model("scep", "ScepAlias")
    except LookupError:  # SCEP not installed
        return []
    out = []
    for name, settings in alias_model.objects.filter(intune_settings__key_binding=binding.name).values_list(
            "name", "intune_settings"):
        if str((settings or {}).get("use_key_binding", "")).strip().lower() in _TRUE:
            out.append(f"SCEP alias '{name}' (intuneAadKeyBinding)")
    return out


def register_builtin_users() -> None:
    register_binding_user(scep_aliases_using)
