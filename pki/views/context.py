"""Template context: the navigation, built from a registry so each app adds its own areas, and the
access rules pages ask about to show or hide their buttons."""

from __future__ import annotations

from dataclasses import dataclass

from ..auth.access import Actor, actor_for_request


@dataclass(frozen=True)
class NavItem:
    """One entry of the left navigation, shown only to callers allowed ``resource``."""

    label: str
    url_name: str
    resource: str  # the access rule needed to see the entry
    section: str = "CA functions"


NAVIGATION: list[NavItem] = []


def register_nav(item: NavItem) -> None:
    """Add an entry to the navigation (once per URL name; areas register theirs when their URLs load)."""
    if all(i.url_name != item.url_name for i in NAVIGATION):
        NAVIGATION.append(item)


# Short names templates use (``{% if allowed.create_ca %}``) for the rules behind buttons.
UI_RULES: dict[str, str] = {
    "administrator": "/administrator",
    "view_ca": "/ca_functionality/view_ca",
    "create_ca": "/ca_functionality/create_ca",
    "edit_ca": "/ca_functionality/edit_ca",
    "renew_ca": "/ca_functionality/renew_ca",
    "create_crl": "/ca_functionality/create_crl",
    "view_profiles": "/ca_functionality/view_certificate_profiles",
    "edit_profiles": "/ca_functionality/edit_certificate_profiles",
    "view_certificate": "/ca_functionality/view_certificate",
    "create_certificate": "/ca_functionality/create_certificate",
    "revoke": "/ra_functionality/revoke_end_entity",
    "view_audit": "/audit/view",
    "view_roles": "/system_functionality/view_administrator_privileges",
    "edit_roles": "/system_functionality/edit_administrator_privileges",
    "modify_tokens": "/cryptotoken/modify",
}


class AllowedRules:
    """``allowed.<name>`` in a template: whether the caller holds the rule ``UI_RULES[name]``.

    An unknown name is a KeyError, which templates render as false: a typo hides a button rather than
    showing one the caller cannot use.
    """

    def __init__(self, who: Actor, hidden: frozenset[str] = frozenset()):
        self._actor, self._hidden = who, hidden

    def __getitem__(self, name: str) -> bool:
        return name not in self._hidden and self._actor.is_allowed(UI_RULES[name])


def navigation(request) -> dict:
    """Context processor: ``nav_sections`` (section, entries) the caller may see, ``allowed`` and the actor."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"nav_sections": []}
    who = actor_for_request(request)
    # What this node does not do (request.pki_node, set by the peers app on RA/VA nodes) is not offered.
    node = getattr(request, "pki_node", None)
    blocked, hidden = getattr(node, "blocked_views", ()), getattr(node, "hidden_buttons", frozenset())
    sections: dict[str, list[NavItem]] = {}
    for item in NAVIGATION:
        if who.is_allowed(item.resource) and item.url_name not in blocked:
            sections.setdefault(item.section, []).append(item)
    return {"nav_sections": list(sections.items()), "pki_actor": who, "allowed": AllowedRules(who, hidden)}
