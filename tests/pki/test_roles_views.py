"""The "Roles and Access Rules" pages: list, create/rename/delete, members tab, the tri-state rules tab,
what a viewer sees, and the refusals (last super administrator, bad input) shown as pages, never a 500."""

from __future__ import annotations

import pytest

from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, Role, RoleMember

from .test_views_auth import ui_client

VIEW = "/system_functionality/view_administrator_privileges"
EDIT = "/system_functionality/edit_administrator_privileges"


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("roleadmin", ["/"])


@pytest.fixture
def viewer(db):
    return ui_client("roleviewer", ["/administrator", VIEW])


def test_list_shows_roles_with_counts_and_the_nav_entry(admin):
    html = admin.get("/roles/").content.decode()
    assert "role-roleadmin" in html and 'href="/roles/new/"' in html
    nav = html.split('<nav class="side"', 1)[1].split("</nav>", 1)[0]
    assert ">Roles and access rules</a>" in nav


def test_create_rename_and_delete_a_role(admin):
    r = admin.post("/roles/new/", {"name": "Operators", "description": "day shift"})
    role = Role.objects.get(name="Operators")
    assert r.status_code == 302 and r["Location"] == f"/roles/{role.pk}/rules/"
    r = admin.post("/roles/new/", {"name": "Operators"})
    assert r.status_code == 409 and "already exists" in r.content.decode()
    r = admin.post(f"/roles/{role.pk}/edit/", {"name": "Night shift", "description": ""})
    assert r.status_code == 302
    role.refresh_from_db()
    assert role.name == "Night shift"
    r = admin.post(f"/roles/{role.pk}/delete/")
    assert r.status_code == 302 and not Role.objects.filter(pk=role.pk).exists()
    assert list(AuditEvent.objects.filter(object_type="role").order_by("sequence")
                .values_list("event_type", flat=True)) == ["ROLE_CREATION", "ROLE_RENAMING", "ROLE_DELETION"]


def test_members_tab_adds_and_removes_each_kind(admin, root_ca):
    from pki.models import TrustedOAuthProvider

    TrustedOAuthProvider.objects.create(label="Keycloak", issuer="https://kc.example/realms/pki", audience="pki")
    role = Role.objects.create(name="Integrations")
    url = f"/roles/{role.pk}/"
    posts = [
        {"match_type": MemberMatch.LOCAL_USER, "match_value": "carol"},
        {"match_type": MemberMatch.OAUTH_CLAIM, "provider": "Keycloak", "claim": "groups", "match_value": "pki-ra"},
        {"match_type": MemberMatch.CERTIFICATE_SERIAL, "issuer_ca": root_ca.pk, "match_value": "1A:2B"},
        {"match_type": MemberMatch.CERTIFICATE_CN, "issuer_ca": root_ca.pk, "match_value": "ra-client"},
    ]
    for data in posts:
        r = admin.post(url + "members/add/", data)
        assert r.status_code == 302, r.content.decode()[:2000]
    html = admin.get(url).content.decode()
    for text in ["carol", "pki-ra", "1a2b", "ra-client", "Keycloak", "TestRoot"]:
        assert text in html
    # Bad input: the form again with the error, nothing stored.
    r = admin.post(url + "members/add/", {"match_type": MemberMatch.CERTIFICATE_SERIAL, "match_value": "zz"})
    assert r.status_code == 400 and "issuing" in r.content.decode().lower()
    r = admin.post(url + "members/add/", posts[0])
    assert r.status_code == 409 and "already has this member" in r.content.decode()
    assert role.members.count() == 4
    member = role.members.get(match_value="carol")
    r = admin.post(f"{url}members/{member.pk}/remove/")
    assert r.status_code == 302 and role.members.count() == 3


def test_rules_tab_is_a_tri_state_tree_saved_at_once(admin, root_ca):
    role = Role.objects.create(name="CA viewers")
    AccessRule.objects.create(role=role, resource="/ca_functionality/create_ca", allowed=False)
    url = f"/roles/{role.pk}/rules/"
    html = admin.get(url).content.decode()
    for path in ["/", "/administrator", f"/ca/{root_ca.pk}", "/cryptotoken/view", "/audit/view",
                 "/ra_functionality/approve_end_entity", "/endentityprofilesrules"]:
        assert f'<span class="mono">{path}</span>' in html, path
    assert 'name="rule:/ca_functionality/create_ca" value="deny"' in html and "checked" in html
    assert "CA access rules" in html and "Crypto token access rules" in html
    r = admin.post(url, {"rule:/administrator": "allow", "rule:/ca_functionality/view_ca": "allow",
                         f"rule:/ca/{root_ca.pk}": "allow", "rule:/ca_functionality/create_ca": "",
                         "rule:/cryptotoken": "deny"})
    assert r.status_code == 302
    assert dict(role.rules.values_list("resource", "allowed")) == {
        "/administrator": True, "/ca_functionality/view_ca": True, f"/ca/{root_ca.pk}": True, "/cryptotoken": False}
    event = AuditEvent.objects.get(event_type="ROLE_ACCESS_RULE_CHANGE")
    assert event.details["removed"] == {"/ca_functionality/create_ca": "deny"}
    assert event.details["added"]["/cryptotoken"] == "deny"


def test_a_bad_rule_value_changes_nothing(admin):
    role = Role.objects.create(name="R")
    r = admin.post(f"/roles/{role.pk}/rules/", {"rule:/administrator": "maybe"})
    assert r.status_code == 400 and not role.rules.exists()


def test_last_superadmin_refusals_are_messages_not_500(admin):
    role = Role.objects.get(name="role-roleadmin")
    member = role.members.get()
    r = admin.post(f"/roles/{role.pk}/members/{member.pk}/remove/", follow=True)
    assert r.status_code == 200 and "no role holding the super administrator rule" in r.content.decode()
    r = admin.post(f"/roles/{role.pk}/rules/", {"rule:/administrator": "allow"})
    assert r.status_code == 409 and "super administrator" in r.content.decode()
    r = admin.post(f"/roles/{role.pk}/delete/", follow=True)
    assert "super administrator" in r.content.decode()
    assert role.members.count() == 1 and list(role.rules.values_list("resource", flat=True)) == ["/"]


def test_viewer_sees_roles_without_edit_controls_and_cannot_post(viewer):
    role = Role.objects.create(name="Other")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="zed")
    for url, hidden in [("/roles/", ['href="/roles/new/"']),
                        (f"/roles/{role.pk}/", ["Add member", "Remove", "Delete role", "Rename"]),
                        (f"/roles/{role.pk}/rules/", ["Save access rules", 'name="rule:']),]:
        r = viewer.get(url)
        assert r.status_code == 200, url
        for text in hidden:
            assert text not in r.content.decode(), (url, text)
    for method, url in [("post", f"/roles/{role.pk}/rules/"), ("get", "/roles/new/"), ("post", "/roles/new/"),
                        ("post", f"/roles/{role.pk}/delete/"), ("post", f"/roles/{role.pk}/members/add/"),
                        ("get", f"/roles/{role.pk}/edit/")]:
        r = getattr(viewer, method)(url, {"rule:/": "allow"} if method == "post" else None)
        assert r.status_code == 403 and f"<code>{EDIT}</code>" in r.content.decode(), url
    assert not role.rules.exists() and Role.objects.filter(pk=role.pk).exists()


def test_role_pages_need_the_view_rule(db):
    client = ui_client("plain", ["/administrator"])
    r = client.get("/roles/")
    assert r.status_code == 403 and f"<code>{VIEW}</code>" in r.content.decode()
    nav = client.get("/").content.decode()
    assert "Roles and access rules" not in nav


def test_rules_page_query_count_does_not_grow_with_objects(admin, ca_factory, django_assert_max_num_queries):
    role = Role.objects.create(name="R")
    ca_factory("A")
    with django_assert_max_num_queries(15):
        admin.get(f"/roles/{role.pk}/rules/")
    ca_factory("B")
    ca_factory("C")
    with django_assert_max_num_queries(15):
        admin.get(f"/roles/{role.pk}/rules/")


@pytest.mark.parametrize(("data", "warning"), [
    ({"match_type": MemberMatch.CERTIFICATE_CN, "match_value": "ra-client"}, "serial number (issuing CA + serial)"),
    ({"match_type": MemberMatch.OAUTH_CLAIM, "provider": "Keycloak", "claim": "email", "match_value": "a@b.example"},
     "sub (or oid for Azure) is the stable choice"),
    ({"match_type": MemberMatch.OAUTH_CLAIM, "provider": "Keycloak", "claim": "preferred_username",
      "match_value": "alice"}, "sub (or oid for Azure) is the stable choice"),
    ({"match_type": MemberMatch.OAUTH_CLAIM, "provider": "Keycloak", "claim": "sub", "match_value": "u-1"}, None),
    ({"match_type": MemberMatch.CERTIFICATE_SERIAL, "match_value": "1f"}, None),
])
def test_member_form_warns_about_cn_and_mutable_claims(admin, root_ca, data, warning):
    """The form shows both warnings (JavaScript shows the one its choice concerns); adding such a member repeats it."""
    from pki.models import TrustedOAuthProvider

    TrustedOAuthProvider.objects.create(label="Keycloak", issuer="https://kc.example/realms/pki", audience="pki")
    role = Role.objects.create(name="Warned")
    form = admin.get(f"/roles/{role.pk}/").content.decode()
    assert 'id="member-warning-cn" data-for-match="CERTIFICATE_CN"' in form
    assert 'data-for-match="OAUTH_CLAIM" data-for-claims="email preferred_username"' in form
    if "issuer_ca" not in data and data["match_type"] != MemberMatch.OAUTH_CLAIM:
        data = {**data, "issuer_ca": root_ca.pk}
    r = admin.post(f"/roles/{role.pk}/members/add/", data, follow=True)
    assert r.status_code == 200 and role.members.count() == 1
    messages = [str(m) for m in r.context["messages"]]
    assert [m for m in messages if "stable choice" in m or "safe choice" in m] == ([] if warning is None else [
        next(m for m in messages if warning in m)])


def test_a_cn_member_without_its_issuing_ca_is_refused(admin):
    role = Role.objects.create(name="No CA")
    r = admin.post(f"/roles/{role.pk}/members/add/", {"match_type": MemberMatch.CERTIFICATE_CN, "match_value": "x"})
    assert r.status_code == 400 and "Choose the CA that issues the client certificates" in r.content.decode()
    assert not role.members.exists()
