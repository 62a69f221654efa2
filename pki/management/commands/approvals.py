"""``python manage.py approvals list|show|approve|reject|profiles|addprofile|setapproval``: approval requests and
approval profiles on the command line, through :mod:`pki.services.approvals` like every other interface.

Deciding names the administrator with ``--as``: a local user whose roles are checked as in the UI (the approval
rule, the request's CA, the profile's approver roles; never the requester). Whoever runs manage.py can reach the
database anyway, so this is an attribution, not an authentication.
"""

from __future__ import annotations

import base64
import json

from django.core.management.base import CommandError

from pki.auth.access import Actor, rules_for_roles
from pki.choices import MemberMatch
from pki.management.base import GroupCommand
from pki.models import CertificateAuthority, CertificateProfile, Role, RoleMember
from pki.models.approvals import ApprovalAction, ApprovalProfile, ApprovalStatus
from pki.services import approvals


def _admin(name: str) -> Actor:
    if not name:
        raise CommandError("Name the deciding administrator with --as (a local user with a role).")
    role_ids = list(RoleMember.objects.filter(match_type=MemberMatch.LOCAL_USER, match_value=name)
                    .values_list("role_id", flat=True))
    if not role_ids:
        raise CommandError(f"'{name}' is no member of any role.")
    return Actor(name=name, kind="user", role_rules=rules_for_roles(role_ids))


class Command(GroupCommand):
    help = "Approval requests and approval profiles (EJBCA's Approve Actions and Approval Profiles)."
    subcommands = {
        "list": "List approval requests (waiting ones unless --status says otherwise).",
        "show": "Show one approval request in full (JSON).",
        "approve": "Approve a waiting request (the last required approval carries it out).",
        "reject": "Reject a waiting request.",
        "profiles": "List approval profiles and where they are used.",
        "addprofile": "Add or change an approval profile.",
        "setapproval": "Set (or with --profile none clear) the approval profile of an action on a CA or "
                       "certificate profile.",
    }

    def add_list(self, parser) -> None:
        parser.add_argument("--status", default=ApprovalStatus.WAITING, choices=ApprovalStatus.values)

    def add_show(self, parser) -> None:
        parser.add_argument("id")

    def add_approve(self, parser) -> None:
        parser.add_argument("id")
        parser.add_argument("--as", dest="admin", default="", help="The deciding administrator (a local user)")
        parser.add_argument("--comment", default="")

    add_reject = add_approve

    def add_addprofile(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--approvals", type=int, default=1, help="Number of approvals required (1-100)")
        parser.add_argument("--expiration", type=int, default=8 * 3600, help="Seconds a request stays open")
        parser.add_argument("--role", action="append", default=[], help="A role that may approve (repeatable; "
                            "none: any administrator with the approval rule)")

    def add_setapproval(self, parser) -> None:
        parser.add_argument("--action", required=True, choices=ApprovalAction.values)
        parser.add_argument("--profile", required=True, help="Approval profile name, or 'none'")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--caname")
        target.add_argument("--certprofile")

    def handle_list(self, status: str, **options) -> None:
        rows = approvals.with_status(approvals.visible(self.actor), status)
        for r in rows:
            self.stdout.write(f"{r.pk}\t{r.status}\t{r.action}\t{r.operation}\t{r.username or '-'}\t"
                              f"{r.ca.name if r.ca_id else '-'}\t{r.requested_by}\t{r.approvals.count()}/"
                              f"{r.approvals_required}\t{r.expires_at:%Y-%m-%d %H:%M}")
        if not rows:
            self.stdout.write(f"No {status.lower()} approval requests.")

    def handle_show(self, id: str, **options) -> None:
        r = approvals.get_request(self.actor, id)
        out = {"id": r.pk, "action": r.action, "operation": r.operation, "status": r.status,
               "approvals_required": r.approvals_required, "ca": r.ca.name if r.ca_id else None,
               "certificate_profile": r.certificate_profile.name if r.certificate_profile_id else None,
               "username": r.username, "subject_dn": r.subject_dn, "requested_by": r.requested_by,
               "interface": r.interface, "expires_at": r.expires_at.isoformat(),
               "data": {k: v for k, v in r.data.items() if k != "password"},
               "certificate_request": base64.b64encode(bytes(r.request_der)).decode() if r.request_der else None,
               "approvals": [{"admin": a.admin, "approved": a.approved, "comment": a.comment}
                             for a in r.approvals.all()], "result": r.result}
        self.stdout.write(json.dumps(out, indent=2))

    def _decide(self, id: str, admin: str, comment: str, approve: bool) -> None:
        who = _admin(admin)
        req = approvals.get_request(who, id)
        req = approvals.decide(who, req.pk, approve=approve, comment=comment)
        self.stdout.write(f"Approval request {req.pk}: {req.get_status_display()}"
                          + (f" ({req.result})" if req.result else ""))

    def handle_approve(self, id: str, admin: str, comment: str, **options) -> None:
        self._decide(id, admin, comment, True)

    def handle_reject(self, id: str, admin: str, comment: str, **options) -> None:
        self._decide(id, admin, comment, False)

    def handle_profiles(self, **options) -> None:
        for p in ApprovalProfile.objects.prefetch_related("approver_roles", "settings__ca",
                                                          "settings__certificate_profile"):
            roles = ",".join(r.name for r in p.approver_roles.all()) or "any approver"
            used = "; ".join(f"{s.action} on {s.ca or s.certificate_profile}" for s in p.settings.all()) or "unused"
            self.stdout.write(f"{p.name}\t{p.approvals_required} approval(s)\t{p.request_expiration}s\t{roles}\t"
                              f"{used}")

    def handle_addprofile(self, name: str, approvals: int, expiration: int, role: list[str], **options) -> None:
        from pki.services import approvals as service

        roles = list(Role.objects.filter(name__in=role))
        missing = set(role) - {r.name for r in roles}
        if missing:
            raise CommandError(f"No such role: {', '.join(sorted(missing))}.")
        existing = ApprovalProfile.objects.filter(name=name).first()
        saved = service.save_profile(self.actor, name=name, approvals_required=approvals,
                                     request_expiration=expiration, approver_roles=roles, profile=existing)
        self.stdout.write(f"Approval profile '{saved.name}' {'changed' if existing else 'added'}.")

    def handle_setapproval(self, action: str, profile: str, caname: str | None, certprofile: str | None,
                           **options) -> None:
        chosen = None
        if profile.lower() != "none":
            chosen = ApprovalProfile.objects.filter(name=profile).first()
            if chosen is None:
                raise CommandError(f"No approval profile '{profile}'.")
        ca = cp = None
        if caname:
            ca = CertificateAuthority.objects.filter(name=caname).first()
            if ca is None:
                raise CommandError(f"No CA '{caname}'.")
        else:
            cp = CertificateProfile.objects.filter(name=certprofile).first()
            if cp is None:
                raise CommandError(f"No certificate profile '{certprofile}'.")
        approvals.set_approval(self.actor, action, chosen, ca=ca, certificate_profile=cp)
        self.stdout.write(f"{action} on {ca or cp}: {chosen.name if chosen else 'no approval'}.")
