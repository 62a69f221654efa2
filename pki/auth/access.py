"""Who is calling, and whether an access rule allows what they ask.

Rules are resource paths (``/ca/3``, ``/cryptotoken/activate/2``) allowed or denied per role. A rule
applies to its path and everything below it; on a given path the most specific rule of a role decides,
and a deny beats an allow of the same specificity. A caller is allowed when any of its roles allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AuthorizationDenied

SUPERADMIN_RULE = "/"
# Per end entity profile rules: enforced only while PKI_END_ENTITY_PROFILE_LIMITATIONS is on (EJBCA's "Enable End
# Entity Profile Limitations"); off, a caller's RA rights cover every end entity profile.
EE_PROFILE_RULES = "/endentityprofilesrules/"
# Editing roles and their members (the rule every role edit, and issuing a member's certificate, checks).
EDIT_RULE = "/system_functionality/edit_administrator_privileges"


def _profile_limitations() -> bool:
    from django.conf import settings

    return getattr(settings, "PKI_END_ENTITY_PROFILE_LIMITATIONS", True)


def _matches(rule: str, resource: str) -> bool:
    if rule == "/":
        return True
    rule = rule.rstrip("/")
    return resource == rule or resource.startswith(rule + "/")


def role_allows(rules: list[tuple[str, bool]], resource: str) -> bool:
    """Decide ``resource`` for one role's rules (most specific match wins, deny over allow on a tie)."""
    best_len = -1
    decision = False
    for rule, allowed in rules:
        if not _matches(rule, resource):
            continue
        length = 0 if rule == "/" else len(rule.rstrip("/").split("/"))
        if length > best_len:
            best_len, decision = length, allowed
        elif length == best_len and not allowed:
            decision = False
    return decision


@dataclass
class Actor:
    """An authenticated caller with the rules of its roles, loaded once per request."""

    name: str
    kind: str = "user"  # user, oauth, certificate, system
    role_rules: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    system: bool = False
    # The server acting for a remote client that proved only a shared secret or an enrollment code (SCEP):
    # the server's rights in the pipeline, never an administrator's (may_edit_role below).
    for_client: bool = False

    def is_allowed(self, resource: str) -> bool:
        if self.system:
            return True
        if resource.startswith(EE_PROFILE_RULES) and not _profile_limitations():
            return True  # the RA rule (/ra_functionality/...) checked beside it still decides
        return any(role_allows(rules, resource) for rules in self.role_rules.values())

    def require(self, resource: str) -> None:
        """Raise AuthorizationDenied naming the rule unless it is allowed."""
        if not self.is_allowed(resource):
            raise AuthorizationDenied(resource, self.name)

    @property
    def roles(self) -> list[str]:
        return sorted(self.role_rules)

    @classmethod
    def system_actor(cls, name: str = "cli") -> Actor:
        """The local command line and internal jobs: they run with the server's own rights."""
        return cls(name=name, kind="system", system=True)

    @classmethod
    def client_proxy(cls, name: str) -> Actor:
        """A protocol endpoint working for a client it authenticated by a secret (see ``for_client``)."""
        return cls(name=name, kind="system", system=True, for_client=True)


def rules_for_roles(role_ids) -> dict[str, list[tuple[str, bool]]]:
    from ..models import AccessRule

    result: dict[str, list[tuple[str, bool]]] = {}
    for role_name, resource, allowed in AccessRule.objects.filter(role_id__in=role_ids).values_list(
        "role__name", "resource", "allowed"
    ):
        result.setdefault(role_name, []).append((resource, allowed))
    return result


def actor_for_user(user) -> Actor:
    """The actor of a Django-authenticated local user (roles matched on the user name)."""
    from ..choices import MemberMatch
    from ..models import RoleMember

    if not getattr(user, "is_authenticated", False):
        return Actor(name="anonymous", kind="anonymous")
    if getattr(user, "pki_actor", None) is not None:  # a client-certificate caller (pki.auth.clientcert)
        return user.pki_actor
    role_ids = RoleMember.objects.filter(
        match_type=MemberMatch.LOCAL_USER, match_value=user.get_username()
    ).values_list("role_id", flat=True)
    return Actor(name=user.get_username(), kind="user", role_rules=rules_for_roles(list(role_ids)))


# Callables that recognise a caller by a credential of their own (pki.auth.oauth: a bearer token or an OIDC
# session), asked in order before the Django user. They build on this module, so this module cannot import
# them: they are registered at start-up (PkiConfig.ready).
_request_authenticators: list[Callable[[Any], Actor | None]] = []


def register_request_authenticator(authenticate: Callable[[Any], Actor | None]) -> None:
    """Let ``authenticate(request)`` name the actor of a request (None: not its kind of caller)."""
    if authenticate not in _request_authenticators:
        _request_authenticators.append(authenticate)


def actor_for_request(request) -> Actor:
    """The actor of a web or API request, computed once and kept on the request."""
    actor = getattr(request, "_pki_actor", None)
    if actor is None:
        for authenticate in _request_authenticators:  # OAuth callers (bearer token or OIDC session) first
            actor = authenticate(request)
            if actor is not None:
                break
        else:
            actor = actor_for_user(request.user)
        request._pki_actor = actor
    return actor


def uncovered(actor: Actor, rules: list[tuple[str, bool]]) -> str | None:
    """The first resource that a role with ``rules`` is allowed and ``actor`` is not, or None.

    Decisions are constant on the rule tree between rule paths: a resource is decided, for every role, like
    the longest rule path (of the actor's roles or of ``rules``) above it. So checking each of those paths is
    checking every resource, including the ones below a granted path that the actor is denied (granting
    ``/ca`` while denied ``/ca/5`` is caught at ``/ca/5``)."""
    if actor.system:
        return None
    paths = {p for p, _ in rules} | {p for role_rules in actor.role_rules.values() for p, _ in role_rules}
    for path in sorted(paths):
        if role_allows(rules, path) and not actor.is_allowed(path):
            return path
    return None


def may_edit_role(actor: Actor, role_id: int) -> bool:
    """Whether ``actor`` may change the role (the check of every role edit): it holds the edit rule and the role
    allows nothing the actor is not allowed. A server acting for a protocol client never may."""
    if actor.for_client:
        return False
    if not actor.is_allowed(EDIT_RULE):
        return False
    from ..models import AccessRule

    rules = list(AccessRule.objects.filter(role_id=role_id).values_list("resource", "allowed"))
    return uncovered(actor, rules) is None
