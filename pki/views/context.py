"""Template context: the navigation, built from a registry so each app adds its own areas."""

from __future__ import annotations

from dataclasses import dataclass

from ..auth.access import actor_for_request


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    resource: str  # the access rule needed to see the entry
    section: str = "CA functions"


NAVIGATION: list[NavItem] = []


def register_nav(item: NavItem) -> None:
    if all(i.url_name != item.url_name for i in NAVIGATION):
        NAVIGATION.append(item)


def navigation(request) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"nav_sections": []}
    actor = actor_for_request(request)
    sections: dict[str, list[NavItem]] = {}
    for item in NAVIGATION:
        if actor.is_allowed(item.resource):
            sections.setdefault(item.section, []).append(item)
    return {"nav_sections": list(sections.items()), "pki_actor": actor}
