"""Role templates, as EJBCA's basic mode of the roles editor: a new role made from a template and a choice of
CAs (and, for RA roles, end entity profiles) gets the whole rule set the template describes. The rule tree editor
stays the advanced view of the same rules.

A role is made by :func:`pki.services.roles.create_role` and :func:`pki.services.roles.set_rules` in one
transaction, so the escalation check of every role edit applies: an administrator never makes a role allowing
something it is not allowed itself (refused, and nothing is left behind).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction

from ..auth.access import Actor
from ..auth.resources import SUPERADMIN, all_resources
from ..errors import ValidationError
from ..models import Role
from . import roles as role_services

_CA_RULE = re.compile(r"^/ca/\d+$")
_PROFILE_RULE = re.compile(r"^/endentityprofilesrules/\d+$")

RA_RULES = ["/administrator", "/ra_functionality", "/ca_functionality/view_ca", "/ca_functionality/view_certificate",
            "/ca_functionality/create_certificate", "/ca_functionality/view_end_entity_profiles",
            "/ca_functionality/use_username"]
CA_ADMIN_RULES = ["/administrator", "/ca_functionality", "/ra_functionality", "/cryptotoken",
                  "/internalkeybinding/view", "/audit/view"]
AUDITOR_RULES = ["/administrator", "/audit/view", "/ca_functionality/view_ca", "/ca_functionality/view_certificate",
                 "/ca_functionality/view_certificate_profiles", "/ca_functionality/view_end_entity_profiles",
                 "/cryptotoken/view", "/internalkeybinding/view", "/ra_functionality/view_end_entity",
                 "/ra_functionality/view_end_entity_history",
                 "/system_functionality/view_administrator_privileges"]
SUPERVISOR_RULES = ["/administrator", "/audit/view", "/ca_functionality/view_certificate",
                    "/ra_functionality/view_end_entity", "/ra_functionality/view_end_entity_history"]


@dataclass(frozen=True)
class RoleTemplate:
    """A template: its name, what it is for, whether a choice of CAs / end entity profiles applies, and the
    fixed rules (the chosen CAs and profiles are added as ``/ca/<id>`` and ``/endentityprofilesrules/<id>``)."""

    key: str
    label: str
    description: str
    rules: tuple[str, ...]
    uses_cas: bool = True
    uses_profiles: bool = False


TEMPLATES: dict[str, RoleTemplate] = {t.key: t for t in [
    RoleTemplate("superadmin", "Super Administrator", "Every right on everything (the rule '/').", (SUPERADMIN,),
                 uses_cas=False),
    RoleTemplate("caadmin", "CA Administrator",
                 "Manages the chosen CAs, their crypto tokens, profiles, end entities and CRLs, and reads the "
                 "audit log; no role administration.", tuple(CA_ADMIN_RULES), uses_profiles=True),
    RoleTemplate("raadmin", "RA Administrator",
                 "Enrolls, finds, edits and revokes end entities and certificates of the chosen CAs and end "
                 "entity profiles (the RA portal).", tuple(RA_RULES), uses_profiles=True),
    RoleTemplate("auditor", "Auditor", "Reads the audit log and views CAs, profiles, certificates and end "
                 "entities of the chosen CAs; changes nothing.", tuple(AUDITOR_RULES), uses_profiles=True),
    RoleTemplate("supervisor", "Supervisor", "Views end entities, their history and certificates of the chosen "
                 "CAs and profiles, and the audit log; changes nothing.", tuple(SUPERVISOR_RULES),
                 uses_profiles=True),
]}


def _choices(pattern: re.Pattern) -> list[tuple[str, str]]:
    return [(r.path, r.label) for r in all_resources() if pattern.fullmatch(r.path)]


def ca_choices() -> list[tuple[str, str]]:
    """(rule path, label) of every CA, for the template form."""
    return _choices(_CA_RULE)


def profile_choices() -> list[tuple[str, str]]:
    """(rule path, label) of every end entity profile, for the template form."""
    return _choices(_PROFILE_RULE)


def _pick(chosen: Iterable[str], known: Callable[[], list[tuple[str, str]]], field: str, what: str) -> list[str]:
    chosen = list(dict.fromkeys(chosen))
    allowed = {p for p, _ in known()}
    unknown = [p for p in chosen if p not in allowed]
    if unknown:
        raise ValidationError(f"Unknown {what}: {', '.join(unknown)[:200]}.", field=field)
    return chosen


def template_rules(template: str, cas: Iterable[str] = (), profiles: Iterable[str] = ()) -> dict[str, bool]:
    """The rule set (path -> allowed) of ``template`` for the chosen CA rules (``/ca/<id>``) and end entity
    profile rules (``/endentityprofilesrules/<id>``). A template that uses CAs needs at least one."""
    spec = TEMPLATES.get(template)
    if spec is None:
        raise ValidationError(f"Unknown role template '{str(template)[:40]}'.", field="template")
    rules = dict.fromkeys(spec.rules, True)
    if spec.uses_cas:
        chosen = _pick(cas, ca_choices, "cas", "CA")
        if not chosen:
            raise ValidationError("Choose at least one CA for this role.", field="cas")
        rules.update(dict.fromkeys(chosen, True))
    if spec.uses_profiles:
        chosen = _pick(profiles, profile_choices, "profiles", "end entity profile")
        if not chosen:
            raise ValidationError("Choose at least one end entity profile for this role.", field="profiles")
        rules.update(dict.fromkeys(chosen, True))
    return rules


@transaction.atomic
def create_role_from_template(actor: Actor, name: str, template: str, description: str = "",
                              cas: Iterable[str] = (), profiles: Iterable[str] = ()) -> Role:
    """A new role named ``name`` with the rules of ``template``; refused as a whole (no role left) when the
    actor does not hold every rule it would give."""
    rules = template_rules(template, cas, profiles)
    role = role_services.create_role(actor, name, description or TEMPLATES[template].description)
    role_services.set_rules(actor, role, rules)
    return role
