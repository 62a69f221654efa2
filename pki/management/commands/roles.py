"""``python manage.py roles addrolemember|listrolemembers|removerolemember``: role members from the command line
(EJBCA's ``roles`` verbs), through the same service as the *Roles and access rules* pages.

``--with`` takes EJBCA's match names (``WITH_SERIALNUMBER``, ``WITH_COMMONNAME``, optionally prefixed
``CertificateAuthenticationToken:``) or this product's (``LOCAL_USER``, ``OAUTH_CLAIM``, ``CERTIFICATE_SERIAL``,
``CERTIFICATE_CN``). Risky matches are added with a warning on stderr, as the UI warns.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from pki.choices import MemberMatch
from pki.management.base import GroupCommand
from pki.models import Role
from pki.services import roles as role_services
from pki.services.cas import get_ca

_EJBCA_MATCHES = {"WITH_SERIALNUMBER": MemberMatch.CERTIFICATE_SERIAL, "WITH_COMMONNAME": MemberMatch.CERTIFICATE_CN}


def _match_type(value: str) -> str:
    name = value.strip().split(":", 1)[-1].upper()
    if name in _EJBCA_MATCHES:
        return _EJBCA_MATCHES[name]
    if name in MemberMatch.values:
        return name
    raise CommandError(f"--with must be one of {', '.join([*_EJBCA_MATCHES, *MemberMatch.values])}")


class Command(GroupCommand):
    help = "Role members."
    subcommands = {
        "addrolemember": "Add a member to a role (a client certificate member needs --caname, its issuing CA).",
        "listrolemembers": "List the members of a role.",
        "removerolemember": "Remove a member (by the id listrolemembers shows) from a role.",
    }

    def _role(self, name: str) -> Role:
        role = Role.objects.filter(name=name).first()
        if role is None:
            raise CommandError(f"Role '{name}' does not exist")
        return role

    def add_addrolemember(self, p) -> None:
        p.add_argument("--role", required=True)
        p.add_argument("--with", dest="match_with", required=True,
                       help="WITH_SERIALNUMBER (safe), WITH_COMMONNAME, LOCAL_USER or OAUTH_CLAIM")
        p.add_argument("--value", required=True, help="Serial number (hex), subject CN, user name or claim value")
        p.add_argument("--caname", help="Issuing CA of client certificate members (required for them)")
        p.add_argument("--provider", default="", help="Trusted OAuth provider's label (OAUTH_CLAIM)")
        p.add_argument("--claim", default="", help="Claim (OAUTH_CLAIM; default the provider's user claim)")
        p.add_argument("--description", default="")

    def handle_addrolemember(self, role, match_with, value, caname=None, provider="", claim="", description="",
                             **o) -> None:
        spec = role_services.MemberSpec(
            match_type=_match_type(match_with), match_value=value, provider=provider, claim=claim,
            issuer_ca=get_ca(caname) if caname else None, description=description)
        if spec.issuer_ca is None and spec.match_type in (MemberMatch.CERTIFICATE_SERIAL, MemberMatch.CERTIFICATE_CN):
            raise CommandError("A client certificate member needs --caname, the CA that issues its certificates")
        member = role_services.add_member(self.actor, self._role(role), spec)
        for warning in role_services.member_warnings(spec):
            self.stderr.write(f"Warning: {warning}")
        self.stdout.write(f"Added member {member.pk} to role '{role}'")

    def add_listrolemembers(self, p) -> None:
        p.add_argument("--role", required=True)

    def handle_listrolemembers(self, role, **o) -> None:
        for m in self._role(role).members.select_related("issuer_ca").order_by("match_type", "match_value"):
            where = m.issuer_ca.name if m.issuer_ca_id else str(getattr(m.provider, "label", m.provider) or "")
            self.stdout.write("\t".join([str(m.pk), m.match_type, where or "-", m.claim or "-", m.match_value]))

    def add_removerolemember(self, p) -> None:
        p.add_argument("--role", required=True)
        p.add_argument("--id", dest="member_id", type=int, required=True)

    def handle_removerolemember(self, role, member_id, **o) -> None:
        role_services.remove_member(self.actor, self._role(role), member_id)
        self.stdout.write(f"Removed member {member_id} from role '{role}'")
