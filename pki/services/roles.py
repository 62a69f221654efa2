"""Roles, their members and access rules: create, rename, delete, add/remove members, set the rules.

Viewing roles needs ``/system_functionality/view_administrator_privileges``; every change needs
``/system_functionality/edit_administrator_privileges`` and is written to the audit log in the
transaction of the change. As in EJBCA, an administrator changes only roles that allow nothing it is not
allowed itself (before and after the change, denies included: see :func:`uncovered`), and adds certificate
members only for CAs it may use (``/ca/<id>``): editing roles is no way to gain rights.

The installation must keep a way in: a change that would leave no role holding ``/`` (super
administrator) with at least one member is refused with a ConflictError. All role changes take a lock on
the role rows first, so two administrators removing the last two super administrators at the same time
cannot both succeed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count

from .. import audit
from ..auth.access import EDIT_RULE, Actor, may_edit_role, role_allows, uncovered  # noqa: F401 (re-exported)
from ..auth.resources import SUPERADMIN, known_paths
from ..choices import MemberMatch
from ..errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from ..models import AccessRule, CertificateAuthority, Role, RoleMember, TrustedOAuthProvider
from .names import clean_name
from .users import user_exists

VIEW_RULE = "/system_functionality/view_administrator_privileges"

# Claims an OAuth member may match on (EJBCA: subject, preferred user name, e-mail, roles/groups).
OAUTH_CLAIMS = [
    ("sub", "Subject (sub)"),
    ("preferred_username", "Preferred user name (preferred_username)"),
    ("email", "E-mail (email)"),
    ("upn", "User principal name (upn, Azure)"),
    ("groups", "Group (groups claim)"),
    ("roles", "Role (roles claim)"),
]
_RULE_PATH = re.compile(r"^/([A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*)?$")
LOCKOUT_MESSAGE = ("Refused: this would leave no role holding the super administrator rule '/' with a member, "
                   "and nobody could administer the installation any more.")


def list_roles(actor: Actor):
    """Every role with the number of its members and rules."""
    actor.require(VIEW_RULE)
    return Role.objects.annotate(member_count=Count("members", distinct=True), rule_count=Count("rules", distinct=True))


def get_role(actor: Actor, pk: int) -> Role:
    actor.require(VIEW_RULE)
    role = Role.objects.filter(pk=pk).first()
    if role is None:
        raise NotFoundError(f"Role {pk} does not exist.")
    return role


# --- Locking and the last super administrator -------------------------------------------------------

def _lock_roles() -> None:
    """Serialize role changes: lock every role row (roles are few) in a fixed order."""
    list(Role.objects.select_for_update().order_by("pk").values_list("pk", flat=True))


def _superadmin_members() -> int:
    return RoleMember.objects.filter(role__rules__resource=SUPERADMIN, role__rules__allowed=True).count()


class _KeepSuperadmin:
    """Around a change: refuse it if there was a super administrator before and none after."""

    def __enter__(self) -> _KeepSuperadmin:
        _lock_roles()
        self.before = _superadmin_members()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.before > 0 and _superadmin_members() == 0:
            raise ConflictError(LOCKOUT_MESSAGE)


def _require_covers(actor: Actor, role: Role, new_rules: Mapping[str, bool] | None = None) -> None:
    """An administrator edits only roles that allow nothing it is not allowed itself, before and (with
    ``new_rules``, the role's whole new rule set) after the change: otherwise an editor of roles could grant
    itself ``/``, lift one of its own denies, or join a more powerful role. The role rows are locked first, so
    the rules checked are the ones the change lands on."""
    _lock_roles()
    current = list(AccessRule.objects.filter(role=role).values_list("resource", "allowed"))
    for rules in (current, list((new_rules or {}).items())):
        path = uncovered(actor, rules)
        if path is not None:
            raise AuthorizationDenied(path, actor.name)


# --- Roles -------------------------------------------------------------------------------------------

@transaction.atomic
def create_role(actor: Actor, name: str, description: str = "") -> Role:
    """A new role without members or rules (it allows nothing yet)."""
    actor.require(EDIT_RULE)
    name = clean_name(name, "role")
    try:
        with transaction.atomic():
            role = Role.objects.create(name=name, description=(description or "").strip())
    except IntegrityError:
        raise ConflictError(f"A role named '{name}' already exists.", field="name") from None
    audit.record("ROLE_CREATION", actor.name, object_type="role", object_id=role.pk, details={"name": name},
                 in_transaction=True)
    return role


@transaction.atomic
def edit_role(actor: Actor, role: Role, name: str, description: str | None = None) -> Role:
    """Rename a role and/or change its description."""
    actor.require(EDIT_RULE)
    _require_covers(actor, role)
    name = clean_name(name, "role")
    old_name, old_description = role.name, role.description
    role.name = name
    if description is not None:
        role.description = description.strip()
    if (role.name, role.description) == (old_name, old_description):
        return role
    try:
        with transaction.atomic():
            role.save(update_fields=["name", "description"])
    except IntegrityError:
        role.name, role.description = old_name, old_description
        raise ConflictError(f"A role named '{name}' already exists.", field="name") from None
    details = {"name": name}
    if name != old_name:
        details["old_name"] = old_name
    if role.description != old_description:
        details["description"] = role.description
    audit.record("ROLE_RENAMING" if name != old_name else "ROLE_EDIT", actor.name, object_type="role",
                 object_id=role.pk, details=details, in_transaction=True)
    return role


@transaction.atomic
def delete_role(actor: Actor, role: Role) -> None:
    """Delete a role with its members and rules (refused if it holds the last super administrator)."""
    actor.require(EDIT_RULE)
    _require_covers(actor, role)
    with _KeepSuperadmin():
        details = {"name": role.name, "members": [_member_summary(m) for m in role.members.all()],
                   "rules": {r.resource: _state(r.allowed) for r in role.rules.all()}}
        pk = role.pk
        Role.objects.filter(pk=pk).delete()  # not role.delete(): a refusal must leave the instance usable
    audit.record("ROLE_DELETION", actor.name, object_type="role", object_id=pk, details=details, in_transaction=True)


# --- Members -----------------------------------------------------------------------------------------

@dataclass
class MemberSpec:
    """What a member matches on; which fields count depends on ``match_type``."""

    match_type: str
    match_value: str
    provider: str | TrustedOAuthProvider = ""  # the provider's label (or the row itself)
    claim: str = ""
    issuer_ca: CertificateAuthority | None = None
    description: str = ""


def normalize_serial(value: str) -> str:
    """A serial number as stored on certificates: lower-case hex without leading zeros (``0x``, colons and
    spaces accepted on input)."""
    raw = (value or "").strip().lower().replace(":", "").replace(" ", "")
    if raw.startswith("0x"):
        raw = raw[2:]
    if not raw or not re.fullmatch(r"[0-9a-f]+", raw) or len(raw) > 64:
        raise ValidationError("A certificate serial number is hexadecimal (up to 64 digits).", field="match_value")
    return raw.lstrip("0") or "0"


def _clean_member(spec: MemberSpec) -> MemberSpec:
    if spec.match_type not in MemberMatch.values:
        raise ValidationError(f"Unknown member type '{spec.match_type}'.", field="match_type")
    value = (spec.match_value or "").strip()
    provider, claim, issuer = None, "", None
    if spec.match_type == MemberMatch.LOCAL_USER:
        if not value or len(value) > 150:
            raise ValidationError("Give the local user name (at most 150 characters).", field="match_value")
    elif spec.match_type == MemberMatch.OAUTH_CLAIM:
        label = str(getattr(spec.provider, "label", spec.provider) or "").strip()
        claim = (spec.claim or "").strip()
        if not label:
            raise ValidationError("Choose the OAuth provider the claim comes from.", field="provider")
        provider = TrustedOAuthProvider.objects.filter(label=label).first()  # members hold the provider's id
        if provider is None:
            raise ValidationError(f"There is no trusted OAuth provider labelled '{label}'.", field="provider")
        if claim and claim not in dict(OAUTH_CLAIMS):  # blank: the provider's configured user claim
            raise ValidationError(f"The claim must be one of {', '.join(dict(OAUTH_CLAIMS))}.", field="claim")
        if not value:
            raise ValidationError("Give the claim value to match.", field="match_value")
    else:
        issuer = spec.issuer_ca
        if issuer is None:
            raise ValidationError("Choose the CA that issues the client certificates.", field="issuer_ca")
        # On an RA or VA node every CA is imported (its keys stay on the CA node): members of such a CA admit the
        # CA's peer connectors (peers.incoming), never an administrator (pki.auth.clientcert matches local CAs only).
        if issuer.is_external and getattr(settings, "PKI_NODE_ROLE", "ca") == "ca":
            raise ValidationError("Client certificates are matched only for CAs of this installation.",
                                  field="issuer_ca")
        if spec.match_type == MemberMatch.CERTIFICATE_SERIAL:
            value = normalize_serial(value)
        elif not value:
            raise ValidationError("Give the subject common name (CN) to match.", field="match_value")
    if len(value) > 1024:
        raise ValidationError("The value is at most 1024 characters.", field="match_value")
    return MemberSpec(spec.match_type, value, provider, claim, issuer, (spec.description or "").strip()[:255])


CN_MEMBER_WARNING = ("Matching on the subject CN: every certificate this CA issues with that CN logs in as this "
                     "member, including ones issued before the member was added. Matching on the serial number "
                     "(issuing CA + serial) is the safe choice.")
MUTABLE_CLAIM_WARNING = ("E-mail addresses and preferred user names can change or be handed to someone else at the "
                         "identity provider: sub (or oid for Azure) is the stable choice.")
MUTABLE_CLAIMS = {"email", "preferred_username"}
NO_LOCAL_USER_WARNING = ("There is no local user '{name}' yet: the member matches nobody until an account of that "
                         "name is created (System ▸ Local users, or `manage.py users add`).")


def member_warnings(spec: MemberSpec) -> list[str]:
    """What the UI and the command line tell an administrator adding this member (it is still added)."""
    if spec.match_type == MemberMatch.CERTIFICATE_CN:
        return [CN_MEMBER_WARNING]
    if spec.match_type == MemberMatch.OAUTH_CLAIM and (spec.claim or "").strip() in MUTABLE_CLAIMS:
        return [MUTABLE_CLAIM_WARNING]
    if spec.match_type == MemberMatch.LOCAL_USER:
        name = (spec.match_value or "").strip()
        if name and not user_exists(name):
            return [NO_LOCAL_USER_WARNING.format(name=name[:150])]
    return []


def _member_summary(m: RoleMember) -> dict:
    out = {"type": m.match_type, "value": m.match_value}
    if m.provider_id:
        out["provider"] = m.provider.label
    if m.claim:
        out["claim"] = m.claim
    if m.issuer_ca_id:
        out["issuer_ca"] = m.issuer_ca_id
    return out


@transaction.atomic
def add_member(actor: Actor, role: Role, spec: MemberSpec) -> RoleMember:
    """Add a member to ``role``; the same match twice in one role is a conflict (a database constraint)."""
    actor.require(EDIT_RULE)
    _require_covers(actor, role)
    spec = _clean_member(spec)
    if spec.issuer_ca is not None:
        actor.require(f"/ca/{spec.issuer_ca.pk}")
    try:
        with transaction.atomic():
            member = RoleMember.objects.create(
                role=role, match_type=spec.match_type, match_value=spec.match_value, provider=spec.provider,
                claim=spec.claim, issuer_ca=spec.issuer_ca, description=spec.description)
    except IntegrityError:
        raise ConflictError(f"Role '{role.name}' already has this member.", field="match_value") from None
    audit.record("ROLE_ACCESS_USER_ADDITION", actor.name, object_type="role", object_id=role.pk,
                 details={"role": role.name, "member": _member_summary(member)}, in_transaction=True)
    return member


@transaction.atomic
def remove_member(actor: Actor, role: Role, member_id: int) -> None:
    """Remove a member (refused if it is the last member of the last super administrator role)."""
    actor.require(EDIT_RULE)
    _require_covers(actor, role)
    member = RoleMember.objects.filter(role=role, pk=member_id).first()
    if member is None:
        raise NotFoundError(f"Role '{role.name}' has no member {member_id}.")
    with _KeepSuperadmin():
        summary = _member_summary(member)
        RoleMember.objects.filter(pk=member.pk).delete()
    audit.record("ROLE_ACCESS_USER_DELETION", actor.name, object_type="role", object_id=role.pk,
                 details={"role": role.name, "member": summary}, in_transaction=True)


# --- Access rules ------------------------------------------------------------------------------------

def _state(allowed: bool) -> str:
    return "allow" if allowed else "deny"


def validate_rule_path(path: str) -> str:
    """A syntactically valid rule path (``/`` or ``/segment/segment``, no trailing slash)."""
    path = (path or "").strip()
    if len(path) > 512 or not _RULE_PATH.fullmatch(path):
        raise ValidationError(f"'{path[:80]}' is not an access rule path (like /ca_functionality/view_ca).",
                              field="rules")
    return path


@dataclass
class RuleChanges:
    added: dict[str, str]
    removed: dict[str, str]
    changed: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@transaction.atomic
def set_rules(actor: Actor, role: Role, rules: Mapping[str, bool]) -> RuleChanges:
    """Make ``rules`` (path -> allowed) the role's whole rule set, in one transaction and one audit event.

    A path must be a rule the product knows, or one the role holds already (rules of objects since
    deleted may be kept). Paths not in ``rules`` are removed (they inherit again).
    """
    actor.require(EDIT_RULE)
    wanted: dict[str, bool] = {}
    for path, allowed in rules.items():
        path = validate_rule_path(path)
        wanted[path] = bool(allowed)
    _require_covers(actor, role, wanted)
    with _KeepSuperadmin():
        current = {r.resource: r for r in AccessRule.objects.filter(role=role)}
        new_paths = [p for p in wanted if p not in current]
        known = known_paths() if new_paths else set()
        unknown = sorted(p for p in new_paths if p not in known)
        if unknown:
            raise ValidationError(f"Unknown access rule: {', '.join(unknown)}.", field="rules")
        changes = RuleChanges(
            added={p: _state(a) for p, a in wanted.items() if p not in current},
            removed={p: _state(r.allowed) for p, r in current.items() if p not in wanted},
            changed={p: _state(a) for p, a in wanted.items() if p in current and current[p].allowed != a},
        )
        if not changes:
            return changes
        AccessRule.objects.filter(role=role, resource__in=list(changes.removed)).delete()
        for path, state in changes.changed.items():
            AccessRule.objects.filter(pk=current[path].pk).update(allowed=state == "allow")
        AccessRule.objects.bulk_create([AccessRule(role=role, resource=p, allowed=s == "allow")
                                        for p, s in changes.added.items()])
    audit.record("ROLE_ACCESS_RULE_CHANGE", actor.name, object_type="role", object_id=role.pk,
                 details={"role": role.name, "added": changes.added, "removed": changes.removed,
                          "changed": changes.changed}, in_transaction=True)
    return changes


# --- Default roles (bootstrap) -----------------------------------------------------------------------

def ensure_default_roles(defaults: Mapping[str, tuple[str, list[tuple[str, bool]]]]) -> list[str]:
    """Create each missing default role with its rules; an existing role is left as the operator made it.
    Returns the names created. Called by ``init`` (idempotent)."""
    created = []
    for name, (description, rules) in defaults.items():
        role, made = Role.objects.get_or_create(name=name, defaults={"description": description})
        if made:
            AccessRule.objects.bulk_create([AccessRule(role=role, resource=r, allowed=a) for r, a in rules])
            audit.record("ROLE_CREATION", "init", object_type="role", object_id=role.pk,
                         details={"name": name, "rules": {r: _state(a) for r, a in rules}})
            created.append(name)
    return created
