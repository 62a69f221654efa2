"""The Local users pages and the own account pages: create (the one-time password shown once, not cached),
reset, disable/enable, the forced password change after a one-time password, who sees the menu entry, and the
attacks (no rule, a forged POST, a reset of a more powerful account) answered 403 with nothing changed."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from pki.auth.access import EDIT_RULE
from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, Role, RoleMember

from .test_views_auth import ui_client

User = get_user_model()
NEW_PASSWORD = "Kite-Bridge-Ocean-91"


@pytest.fixture
def admin(db):
    return ui_client("uadmin", ["/"])


@pytest.fixture
def role_editor(db):
    """May edit roles and use the RA, but is not a super administrator."""
    return ui_client("editor", ["/administrator", EDIT_RULE, "/ra_functionality"])


@pytest.fixture
def ra_clerk(db):
    return ui_client("clerk", ["/administrator", "/ra_functionality/view_end_entity"])


def nav(html: str) -> str:
    return html.split('<nav class="side"', 1)[1].split("</nav>", 1)[0] if '<nav class="side"' in html else ""


def create(client: Client, username: str) -> str:
    r = client.post("/users/new/", {"username": username})
    assert r.status_code == 200, r.content.decode()[:500]
    assert r["Cache-Control"] == "no-store"
    html = r.content.decode()
    return html.split('id="one-time-password">', 1)[1].split("<", 1)[0]


def test_admin_creates_a_user_who_must_change_the_one_time_password_first(admin):
    assert ">Local users</a>" in nav(admin.get("/roles/").content.decode())
    password = create(admin, "newbie")
    assert password and User.objects.get(username="newbie").check_password(password)
    listing = admin.get("/users/").content.decode()
    assert "newbie" in listing and "one-time password" in listing and password not in listing
    assert password not in admin.get("/users/new/").content.decode()

    user = Client()
    r = user.post("/login/", {"username": "newbie", "password": password})
    assert r.status_code == 302
    for url in ("/", "/start/", "/certificates/", "/users/", "/account/"):
        r = user.get(url)
        assert r.status_code == 302 and r["Location"] == "/account/password/", url
    r = user.get("/api/v1/ca")
    assert r.status_code == 403 and "one-time password" in r.json()["error_message"]
    r = user.post("/account/password/", {"old_password": password, "new_password1": "short",
                                         "new_password2": "short"})
    assert r.status_code == 400 and "too short" in r.content.decode()
    r = user.post("/account/password/", {"old_password": password, "new_password1": NEW_PASSWORD,
                                         "new_password2": NEW_PASSWORD})
    assert r.status_code == 302 and r["Location"] == "/start/"
    r = user.get("/start/")  # no role yet: their account page, not a 403
    assert r.status_code == 302 and r["Location"] == "/account/"
    assert user.get("/account/").status_code == 200
    assert AuditEvent.objects.filter(event_type="USER_PASSWORD_CHANGE", actor="newbie", outcome="SUCCESS").exists()


def test_reset_shows_a_new_password_once_and_ends_the_users_sessions(admin):
    victim = User.objects.create_user("bob", password="Initial-Pass-123")
    session = Client()
    session.force_login(victim)
    assert session.get("/account/").status_code == 200
    r = admin.post("/users/bob/reset/")
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    password = r.content.decode().split('id="one-time-password">', 1)[1].split("<", 1)[0]
    victim.refresh_from_db()
    assert victim.check_password(password)
    assert session.get("/account/")["Location"].startswith("/login/")  # the old session ended
    assert admin.get("/users/bob/reset/").status_code == 405


def test_disable_and_enable(admin):
    User.objects.create_user("bob", password="Initial-Pass-123")
    r = admin.post("/users/bob/disable/")
    assert r.status_code == 302 and not User.objects.get(username="bob").is_active
    assert Client().post("/login/", {"username": "bob", "password": "Initial-Pass-123"}).status_code == 200
    admin.post("/users/bob/enable/")
    assert User.objects.get(username="bob").is_active


def test_an_administrator_cannot_disable_themselves(admin):
    r = admin.post("/users/uadmin/disable/", follow=True)
    assert "cannot disable your own account" in r.content.decode()
    assert User.objects.get(username="uadmin").is_active


@pytest.mark.parametrize(("data", "message"), [
    ({"username": ""}, "This field is required"),
    ({"username": "bad name"}, "letters, digits"),
    ({"username": "uadmin"}, "already exists"),
])
def test_bad_new_user_names_are_form_errors(admin, data, message):
    r = admin.post("/users/new/", data)
    assert r.status_code in (400, 409) and message in r.content.decode()
    assert User.objects.count() == 1


@pytest.mark.parametrize(("method", "url"), [
    ("get", "/users/"), ("get", "/users/new/"), ("post", "/users/new/"), ("post", "/users/victim/reset/"),
    ("post", "/users/victim/disable/"),
])
def test_without_the_rule_no_menu_entry_and_403(ra_clerk, method, url):
    User.objects.create_user("victim", password="Initial-Pass-123")
    assert ">Local users</a>" not in nav(ra_clerk.get("/").content.decode())
    r = getattr(ra_clerk, method)(url, {"username": "intruder"} if method == "post" else None)
    assert r.status_code == 403
    victim = User.objects.get(username="victim")
    assert victim.check_password("Initial-Pass-123") and victim.is_active
    assert not User.objects.filter(username="intruder").exists()


@pytest.mark.parametrize("action", ["reset", "disable"])
def test_attack_a_role_editor_cannot_take_over_a_super_administrator(role_editor, action):
    root = User.objects.create_user("root", password="Initial-Pass-123")
    role = Role.objects.create(name="Supers")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="root")
    r = role_editor.post(f"/users/root/{action}/")
    assert r.status_code == 403 and "<code>/</code>" in r.content.decode()
    root.refresh_from_db()
    assert root.check_password("Initial-Pass-123") and root.is_active


def test_own_password_change_needs_the_current_password(db):
    user = User.objects.create_user("dora", password="Initial-Pass-123")
    client = Client()
    client.force_login(user)
    assert 'href="/account/"' in client.get("/account/").content.decode()
    r = client.post("/account/password/", {"old_password": "nope", "new_password1": NEW_PASSWORD,
                                           "new_password2": NEW_PASSWORD})
    assert r.status_code == 400 and "current password is not right" in r.content.decode()
    r = client.post("/account/password/", {"old_password": "Initial-Pass-123", "new_password1": NEW_PASSWORD,
                                           "new_password2": NEW_PASSWORD + "x"})
    assert r.status_code == 400 and "differ" in r.content.decode()
    user.refresh_from_db()
    assert user.check_password("Initial-Pass-123")
    r = client.post("/account/password/", {"old_password": "Initial-Pass-123", "new_password1": NEW_PASSWORD,
                                           "new_password2": NEW_PASSWORD})
    assert r.status_code == 302
    assert client.get("/account/").status_code == 200  # this session stays logged in
