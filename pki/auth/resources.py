"""The access-rule resource tree as data: every rule path the product knows, with a label and a group.

EJBCA shows access rules grouped: role-based rules (``/``, ``/administrator``), regular rules
(``/ca_functionality/...``, ``/ra_functionality/...``, ``/system_functionality/...``), per-CA rules
(``/ca/<id>``), end entity profile rules (``/endentityprofilesrules/<id>/...``), crypto token rules
(``/cryptotoken/<action>[/<id>]``), internal key binding rules and others. The roles editor shows
this tree; :func:`is_known` tells it which submitted paths are real.

Registry API (for the apps above the core, which must not be imported from here)
--------------------------------------------------------------------------------
Call these from ``AppConfig.ready`` (they are idempotent, so a re-run of ``ready`` is harmless):

``register_resources(group, [(path, label), ...], order=...)``
    Fixed paths, e.g. ``register_resources("Protocols", [("/protocol/scep", "SCEP enrollment")])``.
    A path registered twice keeps its first label.

``register_resource_provider(key, provider, order=...)``
    Per-object paths computed from the database at the time the tree is shown. ``provider`` is a
    callable returning an iterable of :class:`Resource` (use :func:`object_rules` to build the usual
    "one parent per object plus one child per action" shape). Registering the same ``key`` again
    replaces the provider. A provider that fails (table not migrated yet) is logged and skipped.

    Example, in ``endentities/apps.py``::

        from pki.auth.resources import object_rules, register_resource_provider

        def _profile_rules():
            from .models import EndEntityProfile
            for p in EndEntityProfile.objects.only("pk", "name"):
                yield from object_rules("End entity profiles", f"/endentityprofilesrules/{p.pk}",
                                        f"End entity profile {p.name}", EE_PROFILE_ACTIONS)

        register_resource_provider("endentityprofiles", _profile_rules)

``all_resources()`` / ``grouped_resources()`` / ``known_paths()`` / ``is_known(path)`` / ``label_for(path)``
    Read the tree (the registered fixed paths plus every provider's output, ordered by group, then path).

The core registers its own fixed rules and the per-CA and per-crypto-token providers below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..ids import parse_decimal

logger = logging.getLogger("pki.auth")

SUPERADMIN = "/"


@dataclass(frozen=True)
class Resource:
    """One access-rule path: ``path`` as stored in AccessRule.resource, a label, and the group it is shown in."""

    path: str
    label: str
    group: str
    order: int = 100

    @property
    def depth(self) -> int:
        """How deep in the tree the path is (``/`` is 0, ``/ca`` 1, ``/ca/3`` 2), for indenting."""
        return 0 if self.path == "/" else self.path.strip("/").count("/") + 1


ResourceProvider = Callable[[], Iterable[Resource]]

_fixed: dict[str, Resource] = {}
_providers: dict[str, tuple[int, ResourceProvider]] = {}
_group_order: dict[str, int] = {}


def register_resources(group: str, items: Iterable[tuple[str, str]], order: int = 100) -> None:
    """Add fixed rule paths (``(path, label)`` pairs) to ``group``; groups are shown by ascending ``order``."""
    _group_order.setdefault(group, order)
    for path, label in items:
        _fixed.setdefault(path, Resource(path, label, group, _group_order[group]))


def register_resource_provider(key: str, provider: ResourceProvider, order: int = 100) -> None:
    """Add (or replace, by ``key``) a callable that lists per-object rule paths from the database."""
    _providers[key] = (order, provider)


def object_rules(group: str, base: str, label: str, actions: Iterable[tuple[str, str]] = (),
                 order: int = 100) -> list[Resource]:
    """Rules for one object: ``base`` itself (all its actions) and ``base/<action>`` for each action."""
    out = [Resource(base, label, group, order)]
    out += [Resource(f"{base}/{action}", f"{label}: {action_label}", group, order) for action, action_label in actions]
    return out


def all_resources() -> list[Resource]:
    """Every known rule path (fixed and per-object), by group order, group, then path."""
    seen: dict[str, Resource] = dict(_fixed)
    for key, (_order, provider) in sorted(_providers.items(), key=lambda kv: (kv[1][0], kv[0])):
        try:
            for res in provider():
                seen.setdefault(res.path, res)
        except Exception:  # a provider of another app must never take the roles editor down with it
            logger.exception("Access rule provider %s failed", key)
    return sorted(seen.values(), key=lambda r: (r.order, r.group, _sort_key(r.path)))


def _sort_key(path: str) -> tuple:
    # Numeric ids sort as numbers, so /ca/10 comes after /ca/9.
    return tuple((0, n, "") if (n := parse_decimal(p)) is not None else (1, 0, p) for p in path.strip("/").split("/"))


def grouped_resources() -> list[tuple[str, list[Resource]]]:
    """``all_resources()`` as (group, resources) pairs, in display order."""
    groups: dict[str, list[Resource]] = {}
    for res in all_resources():
        groups.setdefault(res.group, []).append(res)
    return list(groups.items())


def known_paths() -> set[str]:
    """Every known rule path, as a set (one pass over the providers)."""
    return {r.path for r in all_resources()}


def is_known(path: str) -> bool:
    """Whether ``path`` is a rule the product knows (fixed or for an existing object)."""
    return path in _fixed or path in known_paths()


def label_for(path: str) -> str:
    """The label of a known path, else the path itself."""
    res = _fixed.get(path) or next((r for r in all_resources() if r.path == path), None)
    return res.label if res else path


# --- The core's own rules -------------------------------------------------------------------------

CA_FUNCTIONS = [
    ("view_ca", "View CAs and CRLs"),
    ("create_ca", "Create and import CAs"),
    ("edit_ca", "Edit CAs"),
    ("renew_ca", "Renew CAs"),
    ("activate_ca", "Activate and deactivate CAs"),
    ("create_crl", "Create CRLs"),
    ("view_certificate", "View certificates"),
    ("create_certificate", "Issue certificates"),
    ("view_certificate_profiles", "View certificate profiles"),
    ("edit_certificate_profiles", "Edit certificate profiles"),
    ("view_end_entity_profiles", "View end entity profiles"),
    ("edit_end_entity_profiles", "Edit end entity profiles"),
    ("use_username", "Enroll with a user name and enrollment code (RA UI)"),
]
RA_FUNCTIONS = [
    ("view_end_entity", "View end entities"),
    ("create_end_entity", "Create end entities"),
    ("edit_end_entity", "Edit end entities"),
    ("delete_end_entity", "Delete end entities"),
    ("revoke_end_entity", "Revoke end entities and certificates"),
    ("approve_end_entity", "Approve end entity requests"),
    ("view_end_entity_history", "View end entity history"),
]
# The actions of one end entity profile (``/endentityprofilesrules/<id>/<action>``).
EE_PROFILE_ACTIONS = [
    ("view_end_entity", "view end entities"),
    ("create_end_entity", "create end entities"),
    ("edit_end_entity", "edit end entities"),
    ("delete_end_entity", "delete end entities"),
    ("revoke_end_entity", "revoke end entities"),
    ("approve_end_entity", "approve end entities"),
]
SYSTEM_FUNCTIONS = [
    ("edit_systemconfiguration", "Edit system configuration (trusted OAuth providers, ...)"),
    ("view_administrator_privileges", "View roles and access rules"),
    ("edit_administrator_privileges", "Edit roles and access rules"),
]
CRYPTOTOKEN_ACTIONS = [
    ("view", "view"),
    ("use", "use (bind to a CA or key binding)"),
    ("modify", "create and modify"),
    ("delete", "delete"),
    ("activate", "activate"),
    ("deactivate", "deactivate"),
    ("generate_keys", "generate key pairs"),
    ("remove_keys", "remove key pairs"),
    ("test_keys", "test key pairs"),
]
KEYBINDING_ACTIONS = [
    ("view", "View internal key bindings"),
    ("modify", "Create and modify internal key bindings"),
    ("delete", "Delete internal key bindings"),
]

ROLE_BASED = "Role based access rules"
REGULAR = "Regular access rules"
CA_GROUP = "CA access rules"
EE_PROFILE_GROUP = "End entity profile access rules"
CRYPTOTOKEN_GROUP = "Crypto token access rules"
KEYBINDING_GROUP = "Internal key binding access rules"
PROTOCOL_GROUP = "Protocols"
OTHER_GROUP = "Other access rules"

register_resources(ROLE_BASED, [
    (SUPERADMIN, "Super administrator (everything)"),
    ("/administrator", "Administrator (the admin UI and its dashboard)"),
], order=10)
register_resources(REGULAR, [
    ("/ca_functionality", "All CA functions"),
    *[(f"/ca_functionality/{a}", label) for a, label in CA_FUNCTIONS],
    ("/ra_functionality", "All RA functions"),
    *[(f"/ra_functionality/{a}", label) for a, label in RA_FUNCTIONS],
    ("/system_functionality", "All system functions"),
    *[(f"/system_functionality/{a}", label) for a, label in SYSTEM_FUNCTIONS],
], order=20)
register_resources(CA_GROUP, [("/ca", "All CAs")], order=30)
register_resources(EE_PROFILE_GROUP, [
    ("/endentityprofilesrules", "All end entity profiles"),
], order=40)
register_resources(CRYPTOTOKEN_GROUP, [
    ("/cryptotoken", "All crypto token functions"),
    *[(f"/cryptotoken/{a}", f"All crypto tokens: {label}") for a, label in CRYPTOTOKEN_ACTIONS],
], order=50)
register_resources(KEYBINDING_GROUP, [
    ("/internalkeybinding", "All internal key binding functions"),
    *[(f"/internalkeybinding/{a}", label) for a, label in KEYBINDING_ACTIONS],
], order=60)
# The protocol apps add theirs to this group (SCEP: /protocol/scep).
register_resources(PROTOCOL_GROUP, [("/protocol", "All protocols")], order=70)
register_resources(OTHER_GROUP, [("/audit/view", "View and verify the audit log")], order=80)


def _ca_rules() -> Iterable[Resource]:
    from ..models import CertificateAuthority

    for pk, name in CertificateAuthority.objects.order_by("pk").values_list("pk", "name"):
        yield Resource(f"/ca/{pk}", f"CA {name}", CA_GROUP, 30)


def _cryptotoken_rules() -> Iterable[Resource]:
    from cryptotokens.models import CryptoToken

    # EJBCA puts the token id after the action (/cryptotoken/activate/7), so per token the rules are
    # siblings under each action rather than one subtree.
    for pk, name in CryptoToken.objects.order_by("pk").values_list("pk", "name"):
        for action, label in CRYPTOTOKEN_ACTIONS:
            yield Resource(f"/cryptotoken/{action}/{pk}", f"Crypto token {name}: {label}", CRYPTOTOKEN_GROUP, 50)


register_resource_provider("cas", _ca_rules, order=30)
register_resource_provider("cryptotokens", _cryptotoken_rules, order=50)
