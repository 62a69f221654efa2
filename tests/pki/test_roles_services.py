"""Roles services: create/rename/delete, members of each kind, the rule set saved in one transaction with one
audit event, the rule needed for each change, and the last super administrator kept."""

from __future__ import annotations

import pytest

from pki import bootstrap
from pki.auth.access import Actor, actor_for_user
from pki.auth.resources import all_resources, grouped_resources, is_known, object_rules, register_resource_provider
from pki.choices import MemberMatch
from pki.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from pki.models import AccessRule, AuditEvent, CertificateAuthority, Role, RoleMember
from pki.services import roles as svc
from pki.services.roles import MemberSpec

EDITOR = Actor("editor", role_rules={"editors": [("/", True)]})


@pytest.fixture(autouse=True)
def providers(db):
    """Trusted OAuth providers OAuth members name (by label)."""
    from pki.models import TrustedOAuthProvider

    for label in ("Keycloak", "Azure", "K"):
        TrustedOAuthProvider.objects.create(label=label, issuer=f"https://{label.lower()}.example/", audience="pki")


@pytest.fixture
def superadmin_role(db):
    role = Role.objects.create(name="Super")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="root")
    return role


def test_resource_tree_has_every_group_and_per_object_rules(db, root_ca, soft_token):
    paths = {r.path for r in all_resources()}
    for expected in ["/", "/administrator", "/ca", f"/ca/{root_ca.pk}", "/ca_functionality/view_ca",
                     "/ca_functionality/create_crl", "/ra_functionality/approve_end_entity",
                     "/endentityprofilesrules", "/system_functionality/edit_systemconfiguration",
                     "/system_functionality/edit_administrator_privileges", "/cryptotoken/test_keys",
                     f"/cryptotoken/activate/{soft_token.pk}", "/internalkeybinding/view", "/protocol/scep",
                     "/audit/view"]:
        assert expected in paths, expected
    groups = [g for g, _ in grouped_resources()]
    assert groups[0] == "Role based access rules" and "CA access rules" in groups
    ca_rule = next(r for r in all_resources() if r.path == f"/ca/{root_ca.pk}")
    assert ca_rule.label == "CA TestRoot" and ca_rule.depth == 2
    assert not is_known("/ca/999999") and not is_known("/nonsense")


def test_other_apps_register_per_object_rules_and_a_failing_provider_is_skipped(db):
    register_resource_provider("test-widgets", lambda: object_rules("Widgets", "/widget/1", "Widget one",
                                                                    [("spin", "spin it")]))

    def broken():
        raise RuntimeError("table missing")

    register_resource_provider("test-broken", broken)
    try:
        paths = {r.path for r in all_resources()}
        assert {"/widget/1", "/widget/1/spin", "/"} <= paths
        assert is_known("/widget/1/spin")
    finally:
        from pki.auth import resources

        resources._providers.pop("test-widgets")
        resources._providers.pop("test-broken")


def test_create_rename_delete_role_audited(db):
    role = svc.create_role(EDITOR, "  Operators ", "run things")
    assert role.name == "Operators"
    with pytest.raises(ConflictError):
        svc.create_role(EDITOR, "Operators")
    with pytest.raises(ValidationError):
        svc.create_role(EDITOR, "   ")
    svc.edit_role(EDITOR, role, "Ops", "run things")
    other = svc.create_role(EDITOR, "Other")
    with pytest.raises(ConflictError):
        svc.edit_role(EDITOR, other, "Ops")
    svc.delete_role(EDITOR, role)
    assert not Role.objects.filter(name="Ops").exists()
    events = list(AuditEvent.objects.filter(object_type="role").order_by("sequence")
                  .values_list("event_type", flat=True))
    assert events == ["ROLE_CREATION", "ROLE_RENAMING", "ROLE_CREATION", "ROLE_DELETION"]
    renamed = AuditEvent.objects.get(event_type="ROLE_RENAMING")
    assert renamed.details == {"name": "Ops", "old_name": "Operators"} and renamed.actor == "editor"


@pytest.mark.parametrize(("spec", "stored"), [
    (dict(match_type=MemberMatch.LOCAL_USER, match_value=" alice "), ("alice", "", "")),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, provider="Keycloak", claim="preferred_username", match_value="bob"),
     ("bob", "Keycloak", "preferred_username")),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, provider="Azure", claim="groups", match_value="pki-admins"),
     ("pki-admins", "Azure", "groups")),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, provider="K", claim="", match_value="u-123"), ("u-123", "K", "")),
    (dict(match_type=MemberMatch.CERTIFICATE_SERIAL, match_value="00:0A:bC:01", issuer_ca="ca"), ("abc01", "", "")),
    (dict(match_type=MemberMatch.CERTIFICATE_SERIAL, match_value="0x00ff", issuer_ca="ca"), ("ff", "", "")),
    (dict(match_type=MemberMatch.CERTIFICATE_CN, match_value="ra-client-1", issuer_ca="ca"), ("ra-client-1", "", "")),
])
def test_members_of_each_kind(db, root_ca, spec, stored):
    role = svc.create_role(EDITOR, "R")
    if spec.get("issuer_ca") == "ca":
        spec["issuer_ca"] = root_ca
    member = svc.add_member(EDITOR, role, MemberSpec(**spec))
    assert (member.match_value, member.provider.label if member.provider else "", member.claim) == stored
    assert (member.issuer_ca == root_ca) == ("issuer_ca" in spec)
    with pytest.raises(ConflictError):  # the same match twice (a database constraint)
        svc.add_member(EDITOR, role, MemberSpec(**spec))
    event = AuditEvent.objects.get(event_type="ROLE_ACCESS_USER_ADDITION")
    assert event.details["member"]["value"] == stored[0]
    svc.remove_member(EDITOR, role, member.pk)
    assert not role.members.exists()
    assert AuditEvent.objects.filter(event_type="ROLE_ACCESS_USER_DELETION").count() == 1


@pytest.mark.parametrize(("spec", "field"), [
    (dict(match_type="NOPE", match_value="x"), "match_type"),
    (dict(match_type=MemberMatch.LOCAL_USER, match_value=""), "match_value"),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, claim="sub", match_value="x"), "provider"),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, provider="Nobody", claim="sub", match_value="x"), "provider"),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, provider="K", claim="address", match_value="x"), "claim"),
    (dict(match_type=MemberMatch.OAUTH_CLAIM, provider="K", claim="sub", match_value=" "), "match_value"),
    (dict(match_type=MemberMatch.CERTIFICATE_SERIAL, match_value="12"), "issuer_ca"),
    (dict(match_type=MemberMatch.CERTIFICATE_SERIAL, match_value="xyz", issuer_ca="ca"), "match_value"),
    (dict(match_type=MemberMatch.CERTIFICATE_CN, match_value="", issuer_ca="ca"), "match_value"),
])
def test_bad_members_are_refused_naming_the_field(db, root_ca, spec, field):
    role = svc.create_role(EDITOR, "R")
    if spec.get("issuer_ca") == "ca":
        spec["issuer_ca"] = root_ca
    with pytest.raises(ValidationError) as info:
        svc.add_member(EDITOR, role, MemberSpec(**spec))
    assert info.value.field == field
    assert not RoleMember.objects.filter(role=role).exists()


def test_set_rules_is_one_transaction_and_one_audit_event(db, root_ca):
    role = svc.create_role(EDITOR, "R")
    svc.set_rules(EDITOR, role, {"/administrator": True, "/ca_functionality/view_ca": True, "/ca": True})
    changes = svc.set_rules(EDITOR, role, {"/administrator": True, "/ca": False, f"/ca/{root_ca.pk}": True})
    assert changes.added == {f"/ca/{root_ca.pk}": "allow"}
    assert changes.removed == {"/ca_functionality/view_ca": "allow"}
    assert changes.changed == {"/ca": "deny"}
    assert dict(role.rules.values_list("resource", "allowed")) == {
        "/administrator": True, "/ca": False, f"/ca/{root_ca.pk}": True}
    events = AuditEvent.objects.filter(event_type="ROLE_ACCESS_RULE_CHANGE").order_by("sequence")
    assert events.count() == 2
    assert events.last().details == {"role": "R", "added": {f"/ca/{root_ca.pk}": "allow"},
                                     "removed": {"/ca_functionality/view_ca": "allow"}, "changed": {"/ca": "deny"}}
    # No change: no event.
    assert not svc.set_rules(EDITOR, role, {"/administrator": True, "/ca": False, f"/ca/{root_ca.pk}": True})
    assert AuditEvent.objects.filter(event_type="ROLE_ACCESS_RULE_CHANGE").count() == 2


@pytest.mark.parametrize("bad", ["/nonsense/rule", "ca_functionality", "/ca//1", "/ca/", "/ca/ 1", "/ca/999999"])
def test_unknown_or_malformed_rules_change_nothing(db, bad):
    role = svc.create_role(EDITOR, "R")
    svc.set_rules(EDITOR, role, {"/administrator": True})
    with pytest.raises(ValidationError):
        svc.set_rules(EDITOR, role, {"/audit/view": True, bad: True})
    assert list(role.rules.values_list("resource", flat=True)) == ["/administrator"]


def test_a_rule_the_role_already_holds_may_be_kept_after_its_object_is_gone(db):
    role = svc.create_role(EDITOR, "R")
    AccessRule.objects.create(role=role, resource="/ca/424242")
    svc.set_rules(EDITOR, role, {"/ca/424242": True, "/audit/view": True})
    assert set(role.rules.values_list("resource", flat=True)) == {"/ca/424242", "/audit/view"}


@pytest.mark.parametrize("call", [
    lambda r: svc.create_role(Actor("x"), "N"),
    lambda r: svc.edit_role(Actor("x"), r, "N"),
    lambda r: svc.delete_role(Actor("x"), r),
    lambda r: svc.add_member(Actor("x"), r, MemberSpec(MemberMatch.LOCAL_USER, "u")),
    lambda r: svc.remove_member(Actor("x"), r, 1),
    lambda r: svc.set_rules(Actor("x"), r, {"/": True}),
    lambda r: svc.list_roles(Actor("x")),
])
def test_every_role_change_needs_its_rule(db, call):
    role = Role.objects.create(name="R")
    with pytest.raises(AuthorizationDenied, match="administrator_privileges"):
        call(role)
    assert Role.objects.count() == 1 and not AuditEvent.objects.exists()


def test_an_auditor_may_view_but_not_edit(db):
    viewer = Actor("viewer", role_rules={"v": [("/system_functionality/view_administrator_privileges", True)]})
    role = Role.objects.create(name="R")
    assert list(svc.list_roles(viewer)) == [role]
    with pytest.raises(AuthorizationDenied):
        svc.set_rules(viewer, role, {"/": True})


def test_last_superadmin_cannot_be_locked_out(superadmin_role):
    member = superadmin_role.members.get()
    with pytest.raises(ConflictError, match="super administrator"):
        svc.remove_member(EDITOR, superadmin_role, member.pk)
    with pytest.raises(ConflictError, match="super administrator"):
        svc.set_rules(EDITOR, superadmin_role, {"/administrator": True})
    with pytest.raises(ConflictError, match="super administrator"):
        svc.set_rules(EDITOR, superadmin_role, {"/": False})
    with pytest.raises(ConflictError, match="super administrator"):
        svc.delete_role(EDITOR, superadmin_role)
    assert superadmin_role.members.count() == 1
    assert list(superadmin_role.rules.values_list("resource", "allowed")) == [("/", True)]
    assert not AuditEvent.objects.exists()

    # With a second super administrator the first may go.
    svc.add_member(EDITOR, superadmin_role, MemberSpec(MemberMatch.LOCAL_USER, "root2"))
    svc.remove_member(EDITOR, superadmin_role, member.pk)
    with pytest.raises(NotFoundError):
        svc.remove_member(EDITOR, superadmin_role, member.pk)


def test_a_second_superadmin_role_lets_the_first_go(superadmin_role):
    other = svc.create_role(EDITOR, "Other supers")
    svc.add_member(EDITOR, other, MemberSpec(MemberMatch.LOCAL_USER, "deputy"))
    svc.set_rules(EDITOR, other, {"/": True})
    svc.delete_role(EDITOR, superadmin_role)
    assert actor_for_user(type("U", (), {"is_authenticated": True, "get_username": lambda s: "deputy"})()
                          ).is_allowed("/anything")


def test_default_roles_from_init(db, settings, monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "init-password-1")
    bootstrap.run()
    rules = {r.name: dict(r.rules.values_list("resource", "allowed")) for r in Role.objects.all()}
    assert rules["Super Administrator Role"] == {"/": True}
    assert RoleMember.objects.get(role__name="Super Administrator Role", match_type="LOCAL_USER").match_value == "admin"
    # and init's superadmin.p12, by issuing CA + serial (issue 14)
    assert RoleMember.objects.get(role__name="Super Administrator Role", match_type="CERTIFICATE_SERIAL").issuer_ca \
        .name == "ManagementCA"

    def can(role: str, path: str) -> bool:
        return Actor("x", role_rules={role: list(rules[role].items())}).is_allowed(path)

    management_ca = CertificateAuthority.objects.get(name="ManagementCA").pk
    for path in ["/ra_functionality/create_end_entity", "/ra_functionality/revoke_end_entity",
                 f"/ca/{management_ca + 1}",  # any other CA: the CAs an operator creates for end entities
                 "/ca_functionality/view_ca", "/ca_functionality/view_certificate",
                 "/endentityprofilesrules/3/create_end_entity"]:
        assert can("RA Administrator", path), path
    # ManagementCA issues administrator credentials: never to the RA role (issue 11, item 2).
    for path in ["/system_functionality/edit_systemconfiguration", "/cryptotoken/view", "/cryptotoken/activate/1",
                 "/system_functionality/edit_administrator_privileges", "/ca_functionality/create_ca", "/audit/view",
                 f"/ca/{management_ca}"]:
        assert not can("RA Administrator", path), path
    for path in ["/audit/view", "/ca_functionality/view_ca", "/ca_functionality/view_certificate_profiles",
                 "/ra_functionality/view_end_entity", "/system_functionality/view_administrator_privileges"]:
        assert can("Auditor", path), path
    for path in ["/ca_functionality/create_ca", "/ca_functionality/edit_ca", "/ra_functionality/create_end_entity",
                 "/ra_functionality/revoke_end_entity", "/cryptotoken/modify",
                 "/system_functionality/edit_administrator_privileges",
                 "/ca_functionality/create_crl", "/ca_functionality/edit_certificate_profiles"]:
        assert not can("Auditor", path), path
    # Every default rule is one the product knows.
    for role_rules in rules.values():
        assert all(is_known(p) for p in role_rules)
    # Idempotent: an operator's change to a default role survives the next init.
    AccessRule.objects.filter(role__name="Auditor", resource="/cryptotoken/view").delete()
    AccessRule.objects.filter(role__name="RA Administrator", resource=f"/ca/{management_ca}").delete()
    assert bootstrap.run().created == []
    assert not AccessRule.objects.filter(role__name="Auditor", resource="/cryptotoken/view").exists()
    assert not AccessRule.objects.filter(role__name="RA Administrator", resource__startswith="/ca/").exists()


@pytest.mark.parametrize(("claim", "value", "claims", "matched"), [
    ("groups", "pki-admins", {"sub": "u1", "groups": ["staff", "pki-admins"]}, True),
    ("groups", "pki-admins", {"sub": "u1", "groups": ["staff"]}, False),
    ("email", "ann@example.org", {"sub": "u1", "email": "ann@example.org", "email_verified": True}, True),
    ("email", "ann@example.org", {"sub": "u1", "email": "ann@example.org"}, False),  # unverified address
    ("", "u1", {"sub": "u1"}, True),  # blank claim: the provider's user claim (sub)
    ("preferred_username", "ann", {"sub": "u1", "preferred_username": "bob"}, False),
])
def test_oauth_members_added_here_are_matched_by_the_oauth_login(db, claim, value, claims, matched):
    """The contract with pki.auth.oauth: a member names the provider by its label, a claim and a value."""
    from pki.auth.oauth import ProviderConfig, actor_for_oauth
    from pki.models import TrustedOAuthProvider

    role = svc.create_role(EDITOR, "OAuth admins")
    svc.set_rules(EDITOR, role, {"/audit/view": True})
    svc.add_member(EDITOR, role, MemberSpec(MemberMatch.OAUTH_CLAIM, value, provider="Keycloak", claim=claim))
    provider = ProviderConfig.from_model(TrustedOAuthProvider.objects.get(label="Keycloak"))
    assert actor_for_oauth(provider, claims).is_allowed("/audit/view") is matched
    other = ProviderConfig.from_model(TrustedOAuthProvider.objects.get(label="Azure"))
    assert not actor_for_oauth(other, claims).is_allowed("/audit/view")


def test_editing_roles_is_no_way_to_gain_rights(superadmin_role, root_ca):
    """An editor of roles who holds only some rules changes only roles within them (EJBCA's rule)."""
    limited = Actor("limited", role_rules={"r": [("/system_functionality/edit_administrator_privileges", True),
                                                 ("/system_functionality/view_administrator_privileges", True),
                                                 ("/audit/view", True), ("/ca_functionality/view_ca", True)]})
    auditors = svc.create_role(limited, "Auditors")
    svc.set_rules(limited, auditors, {"/audit/view": True, "/ca_functionality/view_ca": True})
    svc.add_member(limited, auditors, MemberSpec(MemberMatch.LOCAL_USER, "newbie"))
    with pytest.raises(AuthorizationDenied, match="resource /\\."):
        svc.set_rules(limited, auditors, {"/": True})
    with pytest.raises(AuthorizationDenied, match="/cryptotoken"):
        svc.set_rules(limited, auditors, {"/audit/view": True, "/cryptotoken": True})
    with pytest.raises(AuthorizationDenied, match="resource /\\."):  # joining the super administrators
        svc.add_member(limited, superadmin_role, MemberSpec(MemberMatch.LOCAL_USER, "limited"))
    with pytest.raises(AuthorizationDenied):
        svc.delete_role(limited, superadmin_role)
    with pytest.raises(AuthorizationDenied, match=f"/ca/{root_ca.pk}"):  # a CA it may not use
        svc.add_member(limited, auditors, MemberSpec(MemberMatch.CERTIFICATE_CN, "x", issuer_ca=root_ca))
    assert dict(auditors.rules.values_list("resource", "allowed")) == {"/audit/view": True,
                                                                       "/ca_functionality/view_ca": True}
    assert superadmin_role.members.count() == 1
