"""Roles over REST (``/ejbca/ejbca-rest-api/v1/roles``): list, read, add and remove roles and members, change
rules; every change audited and checked by the role-edit rule (a caller never grants what it is denied)."""

from __future__ import annotations

import pytest

from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, Role, RoleMember
from tests.pki.test_api_auth import (
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

ROLES = "/ejbca/ejbca-rest-api/v1/roles"
EDIT = "/system_functionality/edit_administrator_privileges"
VIEW = "/system_functionality/view_administrator_privileges"
ERROR = {"error_code", "error_message"}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def operators(db):
    """A role "Operators" with one rule and one member."""
    role = Role.objects.create(name="Operators", description="day shift")
    AccessRule.objects.create(role=role, resource="/ca_functionality/view_certificate", allowed=True)
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="olga")
    return role


@pytest.fixture
def editor(db, root_ca):
    """A role editor allowed view_certificate and CA TestRoot, denied /ca_functionality/create_certificate."""
    return make_client("editor", [EDIT, VIEW, "/ca_functionality/view_certificate", f"/ca/{root_ca.pk}"])


def test_list_and_read(api, operators):
    r = api.get(ROLES)
    assert r.status_code == 200
    row = next(x for x in r.json()["roles"] if x["name"] == "Operators")
    assert row == {"id": operators.pk, "name": "Operators", "description": "day shift", "member_count": 1,
                   "rule_count": 1}
    detail = api.get(f"{ROLES}/Operators").json()
    assert set(detail) == {"id", "name", "description", "members", "access_rules"}
    assert detail["access_rules"] == [{"resource": "/ca_functionality/view_certificate", "state": "ALLOW"}]
    (member,) = detail["members"]
    assert member["match_type"] == "LOCAL_USER" and member["match_value"] == "olga"
    assert api.get(f"{ROLES}/{operators.pk}").json()["name"] == "Operators"  # by id too
    assert api.get(f"{ROLES}/Operators/rules").json() == detail["access_rules"]


def test_add_role_member_rule_and_remove_them(api, root_ca):
    r = api.post(ROLES, {"role_name": "Auditors2", "description": "read only"}, format="json")
    assert r.status_code == 201 and r.json()["members"] == [] and r.json()["access_rules"] == []
    r = api.put(f"{ROLES}/Auditors2/rules", {"rules": {"/audit/view": "ALLOW", "/ca": "DENY"}}, format="json")
    assert r.status_code == 200 and r.json()["added"] == {"/audit/view": "allow", "/ca": "deny"}
    r = api.put(f"{ROLES}/Auditors2/rules", {"rules": {"/ca": "INHERIT"}}, format="json")
    assert r.json()["removed"] == {"/ca": "deny"}
    assert set(AccessRule.objects.filter(role__name="Auditors2").values_list("resource", "allowed")) == {
        ("/audit/view", True)}
    r = api.post(f"{ROLES}/Auditors2/members", {"match_type": "WITH_SERIALNUMBER", "match_value": "0x0A1B",
                                                "issuer_ca": "TestRoot"}, format="json")
    assert r.status_code == 201, r.content
    member = r.json()
    assert member["match_type"] == "CERTIFICATE_SERIAL" and member["match_value"] == "a1b"
    assert member["issuer_ca"] == "TestRoot" and member["warnings"] == []
    cn = api.post(f"{ROLES}/Auditors2/members", {"match_type": "WITH_COMMONNAME", "match_value": "ops",
                                                 "issuer_ca": "TestRoot"}, format="json").json()
    assert cn["warnings"] and "serial" in cn["warnings"][0]
    assert api.delete(f"{ROLES}/Auditors2/members/{member['id']}").status_code == 200
    assert not RoleMember.objects.filter(pk=member["id"]).exists()
    assert api.delete(f"{ROLES}/Auditors2").status_code == 200
    assert not Role.objects.filter(name="Auditors2").exists()
    events = list(AuditEvent.objects.filter(object_type="role").values_list("event_type", flat=True))
    assert {"ROLE_CREATION", "ROLE_ACCESS_RULE_CHANGE", "ROLE_ACCESS_USER_ADDITION", "ROLE_ACCESS_USER_DELETION",
            "ROLE_DELETION"} <= set(events)
    assert AuditEvent.objects.filter(event_type="ROLE_CREATION", actor="apiadmin").exists()


@pytest.mark.parametrize(("method", "path", "body", "status", "needle"), [
    ("post", "", {"role_name": "Operators"}, 409, "already exists"),
    ("post", "", {"role_name": ""}, 400, "role_name"),
    ("get", "/NoSuchRole", None, 404, "NoSuchRole"),
    ("put", "/Operators/rules", {"rules": {"/ca": "MAYBE"}}, 400, "ALLOW, DENY or INHERIT"),
    ("put", "/Operators/rules", {"rules": {"no-slash": "ALLOW"}}, 400, "access rule path"),
    ("put", "/Operators/rules", {"rules": {"/not/a/known/rule": "ALLOW"}}, 400, "Unknown access rule"),
    ("put", "/Operators/rules", {"rules": {}}, 400, "rules"),
    ("post", "/Operators/members", {"match_type": "TELEPATHY", "match_value": "x"}, 400, "TELEPATHY"),
    ("post", "/Operators/members", {"match_type": "CERTIFICATE_SERIAL", "match_value": "zz",
                                    "issuer_ca": "TestRoot"}, 400, "hexadecimal"),
    ("post", "/Operators/members", {"match_type": "CERTIFICATE_SERIAL", "match_value": "0a"}, 400, "CA"),
    ("post", "/Operators/members", {"match_type": "LOCAL_USER", "match_value": "olga"}, 409, "already has"),
    ("delete", "/Operators/members/999999", None, 404, "999999"),
])
def test_bad_requests_change_nothing(api, operators, root_ca, tracebacks, method, path, body, status, needle):
    before = (Role.objects.count(), RoleMember.objects.count(), AccessRule.objects.count(),
              AuditEvent.objects.filter(object_type="role").count())
    r = getattr(api, method)(ROLES + path, body, format="json")
    assert r.status_code == status, r.content
    assert set(r.json()) == ERROR and needle in r.json()["error_message"]
    assert (Role.objects.count(), RoleMember.objects.count(), AccessRule.objects.count(),
            AuditEvent.objects.filter(object_type="role").count()) == before
    assert not tracebacks.records


def test_the_last_superadmin_role_cannot_be_removed(api):
    role = Role.objects.get(name="role-apiadmin")
    r = api.delete(f"{ROLES}/{role.name}")
    assert r.status_code == 409 and Role.objects.filter(pk=role.pk).exists()


@pytest.mark.parametrize(("method", "path", "body", "rule"), [
    ("get", "", None, VIEW),
    ("get", "/Operators", None, VIEW),
    ("post", "", {"role_name": "x"}, EDIT),
    ("delete", "/Operators", None, EDIT),
    ("put", "/Operators/rules", {"rules": {"/audit/view": "ALLOW"}}, EDIT),
    ("post", "/Operators/members", {"match_type": "LOCAL_USER", "match_value": "x"}, EDIT),
])
def test_each_operation_needs_its_rule(db, operators, method, path, body, rule):
    viewer = make_client("viewer", [VIEW])
    client = viewer if rule == EDIT else make_client("nobody", [])
    r = getattr(client, method)(ROLES + path, body, format="json")
    assert r.status_code == 403 and rule in r.json()["error_message"]


def test_escalation_over_rest_is_refused(api, editor, operators, root_ca):
    """The attack: an editor of roles tries to grant rules it does not hold — to a role it is a member of, to
    a new role, to Operators — and to join the super administrators. Each is 403 naming the rule, nothing
    changes; a grant within its own rights succeeds."""
    own = Role.objects.get(name="role-editor")
    before = sorted(AccessRule.objects.values_list("role__name", "resource", "allowed"))
    for target, rules in [(own.name, {"/": "ALLOW"}),
                          (own.name, {"/ca_functionality/create_certificate": "ALLOW"}),
                          ("Operators", {"/ca": "ALLOW"}),  # all CAs, while the editor has TestRoot only
                          ("Operators", {"/ca_functionality": "ALLOW"})]:
        r = editor.put(f"{ROLES}/{target}/rules", {"rules": rules}, format="json")
        assert r.status_code == 403, (target, rules, r.content)
        assert set(r.json()) == ERROR
    assert sorted(AccessRule.objects.values_list("role__name", "resource", "allowed")) == before
    refused = AuditEvent.objects.filter(event_type="ROLE_ACCESS_RULE_CHANGE", outcome="FAILURE", actor="editor")
    assert refused.count() == 4 and {e.object_id for e in refused} == {own.name, "Operators"}
    superadmins = Role.objects.get(name="role-apiadmin")
    r = editor.post(f"{ROLES}/{superadmins.name}/members", {"match_type": "LOCAL_USER", "match_value": "editor"},
                    format="json")
    assert r.status_code == 403 and not superadmins.members.filter(match_value="editor").exists()
    assert editor.delete(f"{ROLES}/{superadmins.name}").status_code == 403
    r = editor.put(f"{ROLES}/Operators/rules", {"rules": {f"/ca/{root_ca.pk}": "ALLOW"}}, format="json")
    assert r.status_code == 200 and r.json()["added"] == {f"/ca/{root_ca.pk}": "allow"}


def test_a_member_for_a_ca_the_editor_may_not_use_is_refused(editor, operators, sub_ca):
    r = editor.post(f"{ROLES}/Operators/members", {"match_type": "CERTIFICATE_SERIAL", "match_value": "01",
                                                   "issuer_ca": "TestSub"}, format="json")
    assert r.status_code in (403, 404) and not operators.members.filter(match_value="1").exists()
