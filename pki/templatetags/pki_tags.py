"""Template helpers of the admin UI."""

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``{{ dict|get_item:key }}``."""
    return mapping.get(key) if mapping else None


@register.filter
def hexcolons(value: str) -> str:
    """``ab12cd`` -> ``AB:12:CD`` for serials and fingerprints."""
    value = str(value).upper()
    if len(value) % 2:
        value = "0" + value
    return ":".join(value[i : i + 2] for i in range(0, len(value), 2))
