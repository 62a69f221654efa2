"""``python manage.py roles <subcommand>``: roles, members and access rules with ``ejbca.sh roles``'s arguments,
through the same services as the *Roles and access rules* pages (authorized, audited).

    roles listroles · roles addrole --role "Sub RA" · roles removerole --role "Sub RA"
    roles listadmins --role "Super Administrator Role"
    roles addrolemember --role "Super Administrator Role" --caname ManagementCA \\
        --with WITH_SERIALNUMBER --value 1A2B3C
    roles removerolemember --role "Sub RA" --caname ManagementCA --with WITH_COMMONNAME --value "RA 1"   (or --id N)
    roles changerule --role "Sub RA" --rule /ra_functionality/view_end_entity --state ACCEPT   (DECLINE, UNDEFINED)
    roles listrules --role "Sub RA"

``--with`` takes EJBCA's match names (``WITH_SERIALNUMBER``, ``WITH_COMMONNAME``, optionally prefixed
``CertificateAuthenticationToken:``) or this product's (``LOCAL_USER``, ``OAUTH_CLAIM``, ``CERTIFICATE_SERIAL``,
``CERTIFICATE_CN``). Risky matches are added with a warning on stderr, as the UI warns. Matches this project has
no member type for (``WITH_FULLDN``, ``WITH_ORGANIZATION``, ...) exit with code 2.
"""

from __future__ import annotations

import argparse

from django.core.management.base import CommandError

from pki.choices import MemberMatch
from pki.management.base import GroupCommand, unsupported
from pki.models import AccessRule, Role
from pki.services import roles as role_services
from pki.services.cas import get_ca

_EJBCA_MATCHES = {"WITH_SERIALNUMBER": MemberMatch.CERTIFICATE_SERIAL, "WITH_COMMONNAME": MemberMatch.CERTIFICATE_CN}
# EJBCA's rule states (and the UI's words): ACCEPT allows, DECLINE denies, UNDEFINED removes the rule (inherit).
_STATES = {"ACCEPT": True, "ALLOW": True, "DECLINE": False, "DENY": False, "UNDEFINED": None, "INHERIT": None,
           "UNUSED": None}


def _match_type(value: str) -> str:
    name = value.strip().split(":", 1)[-1].upper()
    if name in _EJBCA_MATCHES:
        return _EJBCA_MATCHES[name]
    if name in MemberMatch.values:
        return name
    if name.startswith("WITH_"):
        raise unsupported(f"role members matched {name}",
                          "Match client certificates by WITH_SERIALNUMBER (safe) or WITH_COMMONNAME.")
    raise CommandError(f"--with must be one of {', '.join([*_EJBCA_MATCHES, *MemberMatch.values])}")


def _role_arg(p) -> None:
    p.add_argument("role_pos", nargs="?", metavar="ROLE")
    p.add_argument("--role", "--name", dest="role")


class Command(GroupCommand):
    help = "Roles, role members and access rules (ejbca.sh roles subcommands)."
    subcommands = {
        "listroles": "List the roles.",
        "addrole": "Add a role (it allows nothing until rules are added).",
        "removerole": "Remove a role.",
        "listadmins": "List the members of a role.",
        "addrolemember": "Add a member to a role (a client certificate member needs --caname, its issuing CA).",
        "removerolemember": "Remove a member from a role (by --caname/--with/--value, or by --id).",
        "changerule": "Set one access rule of a role: ACCEPT, DECLINE or UNDEFINED (remove).",
        "listrules": "List the access rules of a role.",
    }
    aliases = {"listrolemembers": "listadmins"}

    def _role(self, o: dict) -> Role:
        name = o.get("role") or o.get("role_pos")
        if not name:
            raise CommandError("--role is required")
        self.actor.require(role_services.VIEW_RULE)
        role = Role.objects.filter(name=name).first()
        if role is None:
            raise CommandError(f"Role '{name}' does not exist")
        return role

    # --- roles ---------------------------------------------------------------------------------------------------

    def handle_listroles(self, **o) -> None:
        for role in role_services.list_roles(self.actor).order_by("name"):
            self.stdout.write(f"{role.name}\t({role.member_count} member(s), {role.rule_count} rule(s))")

    def add_addrole(self, p) -> None:
        _role_arg(p)
        p.add_argument("--description", default="")
        p.add_argument("--namespace", help="(ejbca.sh) role namespaces: not supported")

    def handle_addrole(self, description="", namespace=None, **o) -> None:
        if namespace:
            raise unsupported("role namespaces (--namespace)")
        name = o.get("role") or o.get("role_pos")
        if not name:
            raise CommandError("--role is required")
        role = role_services.create_role(self.actor, name, description)
        self.stdout.write(f"Added role '{role.name}' (id {role.pk})")

    def add_removerole(self, p) -> None:
        _role_arg(p)

    def handle_removerole(self, **o) -> None:
        role = self._role(o)
        role_services.delete_role(self.actor, role)
        self.stdout.write(f"Removed role '{role.name}'")

    # --- members -------------------------------------------------------------------------------------------------

    def add_listadmins(self, p) -> None:
        _role_arg(p)

    def handle_listadmins(self, **o) -> None:
        for m in self._role(o).members.select_related("issuer_ca").order_by("match_type", "match_value"):
            where = m.issuer_ca.name if m.issuer_ca_id else str(getattr(m.provider, "label", m.provider) or "")
            self.stdout.write("\t".join([str(m.pk), m.match_type, where or "-", m.claim or "-", m.match_value]))

    def _member_args(self, p) -> None:
        _role_arg(p)
        p.add_argument("--caname", help="Issuing CA of client certificate members (required for them)")
        p.add_argument("--with", dest="match_with",
                       help="WITH_SERIALNUMBER (safe), WITH_COMMONNAME, LOCAL_USER or OAUTH_CLAIM")
        p.add_argument("--value", help="Serial number (hex), subject CN, user name or claim value")
        p.add_argument("--provider", default="", help="Trusted OAuth provider's label (OAUTH_CLAIM)")
        p.add_argument("--claim", default="", help="Claim (OAUTH_CLAIM; default the provider's user claim)")

    def _spec(self, match_with, value, caname, provider="", claim="", description="") -> role_services.MemberSpec:
        if not match_with or value in (None, ""):
            raise CommandError("--with and --value are required")
        spec = role_services.MemberSpec(
            match_type=_match_type(match_with), match_value=value, provider=provider, claim=claim,
            issuer_ca=get_ca(caname) if caname else None, description=description)
        if spec.issuer_ca is None and spec.match_type in (MemberMatch.CERTIFICATE_SERIAL, MemberMatch.CERTIFICATE_CN):
            raise CommandError("A client certificate member needs --caname, the CA that issues its certificates")
        return spec

    def add_addrolemember(self, p) -> None:
        self._member_args(p)
        p.add_argument("--description", default="")

    def handle_addrolemember(self, match_with=None, value=None, caname=None, provider="", claim="", description="",
                             **o) -> None:
        role = self._role(o)
        spec = self._spec(match_with, value, caname, provider, claim, description)
        member = role_services.add_member(self.actor, role, spec)
        for warning in role_services.member_warnings(spec):
            self.stderr.write(f"Warning: {warning}")
        self.stdout.write(f"Added member {member.pk} to role '{role.name}'")

    def add_removerolemember(self, p) -> None:
        self._member_args(p)
        p.add_argument("--id", dest="member_id", type=int, help="The member's id (listadmins shows it)")

    def handle_removerolemember(self, member_id=None, match_with=None, value=None, caname=None, provider="",
                                claim="", **o) -> None:
        role = self._role(o)
        if member_id is None:
            spec = self._spec(match_with, value, caname, provider, claim)
            match_value = role_services.normalize_serial(spec.match_value) \
                if spec.match_type == MemberMatch.CERTIFICATE_SERIAL else spec.match_value.strip()
            found = role.members.filter(match_type=spec.match_type, match_value=match_value,
                                        issuer_ca=spec.issuer_ca)
            if spec.match_type == MemberMatch.OAUTH_CLAIM:
                found = found.filter(provider__label=provider)
            member = found.first()
            if member is None:
                raise CommandError(f"Role '{role.name}' has no such member")
            member_id = member.pk
        role_services.remove_member(self.actor, role, member_id)
        self.stdout.write(f"Removed member {member_id} from role '{role.name}'")

    # --- rules ---------------------------------------------------------------------------------------------------

    def add_changerule(self, p) -> None:
        _role_arg(p)
        p.add_argument("--rule", required=True, help="Access rule path, e.g. /ca_functionality/view_ca or /ca/3")
        p.add_argument("--state", required=True, help="ACCEPT (allow), DECLINE (deny) or UNDEFINED (remove)")
        p.add_argument("--recursive", action="store_true", help=argparse.SUPPRESS)

    def handle_changerule(self, rule, state, **o) -> None:
        role = self._role(o)
        key = state.strip().upper()
        if key not in _STATES:
            raise CommandError("--state must be ACCEPT, DECLINE or UNDEFINED")
        rules = dict(AccessRule.objects.filter(role=role).values_list("resource", "allowed"))
        path = rule.strip().rstrip("/") or "/"
        if _STATES[key] is None:
            rules.pop(path, None)
        else:
            rules[path] = _STATES[key]
        changes = role_services.set_rules(self.actor, role, rules)
        word = {True: "ACCEPT", False: "DECLINE", None: "UNDEFINED"}[_STATES[key]]
        self.stdout.write(f"Rule {path} of role '{role.name}' is {word}" + ("" if changes else " (unchanged)"))

    def add_listrules(self, p) -> None:
        _role_arg(p)

    def handle_listrules(self, **o) -> None:
        for resource, allowed in AccessRule.objects.filter(role=self._role(o)).order_by("resource").values_list(
                "resource", "allowed"):
            self.stdout.write(f"{resource}\t{'ACCEPT' if allowed else 'DECLINE'}")
