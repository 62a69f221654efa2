"""Local users (pki.services.users and ``manage.py users``): create with a one-time password, list with last
login, reset, disable and enable, change one's own password with Django's validators; who may do it (the
edit-administrator-privileges rule, and never to an account more powerful than oneself); everything audited,
no password in the audit log; role members naming no local user are warned about."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model

from pki.auth.access import EDIT_RULE, Actor
from pki.choices import MemberMatch
from pki.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from pki.models import AccessRule, AuditEvent, LocalAccount, Role, RoleMember
from pki.services import roles as role_services
from pki.services import users
from pki.services.roles import MemberSpec
from tests.pki.cli_support import refused, run

User = get_user_model()


def actor_with(name: str, rules: list[tuple[str, bool]]) -> Actor:
    return Actor(name=name, role_rules={"r": rules})


def member_of(username: str, rules: list[str]) -> Role:
    role = Role.objects.create(name=f"role-{username}")
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=username)
    return role


@pytest.fixture
def admin():
    return actor_with("useradmin", [(EDIT_RULE, True), ("/ra_functionality", True), ("/administrator", True)])


def test_create_gives_a_one_time_password_that_logs_in_and_must_be_changed(db, admin):
    user, password = users.create_user(admin, "carol")
    assert len(password) >= 20 and authenticate(username="carol", password=password) == user
    assert users.must_change_password(user)
    users.change_own_password(user, password, "Kite-Bridge-Ocean-91")
    assert not users.must_change_password(user)
    assert authenticate(username="carol", password="Kite-Bridge-Ocean-91") is not None
    events = list(AuditEvent.objects.filter(object_type="user").order_by("sequence").values_list("event_type", "actor"))
    assert events == [("USER_CREATION", "useradmin"), ("USER_PASSWORD_CHANGE", "carol")]
    dumped = str(list(AuditEvent.objects.values_list("details", flat=True)))
    assert password not in dumped and "Kite-Bridge-Ocean-91" not in dumped


@pytest.mark.parametrize(("name", "error"), [
    ("", ValidationError), ("a" * 151, ValidationError), ("bad name", ValidationError), ("x/y", ValidationError),
    ("carol", ConflictError),
])
def test_create_refuses_bad_and_taken_names(db, admin, name, error):
    User.objects.create_user("carol")
    with pytest.raises(error):
        users.create_user(admin, name)
    assert User.objects.count() == 1


def test_the_same_name_twice_is_refused_by_the_database(db, admin):
    users.create_user(admin, "dave")
    with pytest.raises(ConflictError):
        users.create_user(admin, "dave")


@pytest.mark.parametrize(("old", "new", "field"), [
    ("wrong", "Kite-Bridge-Ocean-91", "old_password"),
    ("Initial-Pass-123", "short", "new_password1"),          # MinimumLengthValidator
    ("Initial-Pass-123", "password123", "new_password1"),    # CommonPasswordValidator
    ("Initial-Pass-123", "Initial-Pass-123", "new_password1"),
])
def test_change_own_password_refusals_change_nothing(db, old, new, field):
    user = User.objects.create_user("erin", password="Initial-Pass-123")
    with pytest.raises(ValidationError) as caught:
        users.change_own_password(user, old, new)
    assert caught.value.field == field
    user.refresh_from_db()
    assert user.check_password("Initial-Pass-123")
    assert not AuditEvent.objects.filter(event_type="USER_PASSWORD_CHANGE", outcome="SUCCESS").exists()


def test_a_wrong_current_password_is_audited_as_a_failure(db):
    user = User.objects.create_user("erin", password="Initial-Pass-123")
    with pytest.raises(ValidationError):
        users.change_own_password(user, "guess", "Kite-Bridge-Ocean-91")
    assert AuditEvent.objects.filter(event_type="USER_PASSWORD_CHANGE", outcome="FAILURE", actor="erin").exists()


def test_reset_makes_the_old_password_stop_and_the_new_one_one_time(db, admin):
    user = User.objects.create_user("frank", password="Initial-Pass-123")
    password = users.reset_password(admin, "frank")
    assert authenticate(username="frank", password="Initial-Pass-123") is None
    assert authenticate(username="frank", password=password) == user
    assert LocalAccount.objects.get(user=user).must_change_password
    assert AuditEvent.objects.filter(event_type="USER_PASSWORD_RESET", object_id="frank").count() == 1


def test_disable_stops_logins_and_enable_lets_them_in_again(db, admin):
    User.objects.create_user("gina", password="Initial-Pass-123")
    assert users.set_active(admin, "gina", False) is True
    assert authenticate(username="gina", password="Initial-Pass-123") is None
    assert users.set_active(admin, "gina", False) is False  # nothing changed, nothing audited
    assert users.set_active(admin, "gina", True) is True
    assert authenticate(username="gina", password="Initial-Pass-123") is not None
    events = AuditEvent.objects.filter(object_type="user").order_by("sequence").values_list("event_type", flat=True)
    assert list(events) == ["USER_DISABLED", "USER_ENABLED"]


def test_nobody_disables_their_own_account(db, admin):
    User.objects.create_user("useradmin")
    with pytest.raises(ConflictError):
        users.set_active(admin, "useradmin", False)


def test_unknown_accounts_are_not_found(db, admin):
    for call in (lambda: users.reset_password(admin, "ghost"), lambda: users.set_active(admin, "ghost", False)):
        with pytest.raises(NotFoundError):
            call()


@pytest.mark.parametrize("call", [
    lambda a: users.list_users(a), lambda a: users.create_user(a, "x"),
    lambda a: users.reset_password(a, "victim"), lambda a: users.set_active(a, "victim", False),
])
def test_every_operation_needs_the_edit_administrator_privileges_rule(db, call):
    User.objects.create_user("victim", password="Initial-Pass-123")
    raowner = actor_with("ra", [("/ra_functionality", True), ("/administrator", True),
                                ("/system_functionality/view_administrator_privileges", True)])
    with pytest.raises(AuthorizationDenied):
        call(raowner)
    assert User.objects.get(username="victim").check_password("Initial-Pass-123")


@pytest.mark.parametrize("call", [lambda a: users.reset_password(a, "root"),
                                  lambda a: users.set_active(a, "root", False)])
def test_attack_an_editor_of_roles_cannot_take_over_a_super_administrator(db, admin, call):
    """Resetting a super administrator's password would hand the attacker '/': refused, naming the rule."""
    User.objects.create_user("root", password="Initial-Pass-123")
    member_of("root", ["/"])
    with pytest.raises(AuthorizationDenied) as caught:
        call(admin)
    assert caught.value.resource == "/"
    root = User.objects.get(username="root")
    assert root.check_password("Initial-Pass-123") and root.is_active


def test_an_account_whose_roles_the_actor_covers_may_be_reset(db, admin):
    User.objects.create_user("clerk")
    member_of("clerk", ["/ra_functionality/view_end_entity"])
    assert users.reset_password(admin, "clerk")


def test_list_shows_state_last_login_and_roles(db, admin):
    users.create_user(admin, "hank")
    member_of("hank", ["/administrator"])
    User.objects.create_user("ivy", is_active=False)
    rows = {r.username: r for r in users.list_users(admin)}
    assert rows["hank"].roles == ["role-hank"] and rows["hank"].must_change_password and rows["hank"].is_active
    assert not rows["ivy"].is_active and rows["ivy"].last_login is None


def test_a_role_member_naming_no_local_user_is_warned_about(db):
    spec = MemberSpec(MemberMatch.LOCAL_USER, "nosuchuser")
    assert any("no local user 'nosuchuser'" in w for w in role_services.member_warnings(spec))
    User.objects.create_user("nosuchuser")
    assert role_services.member_warnings(spec) == []


# --- manage.py users ---------------------------------------------------------------------------------

def test_cli_add_list_passwd_disable_enable(db):
    out = run("users", "add", "julia")
    password = out.strip().splitlines()[-1]
    assert "One-time password" in out and authenticate(username="julia", password=password) is not None
    assert "julia" in run("users", "list") and "must change password" in run("users", "list")
    new = run("users", "passwd", "julia").strip().splitlines()[-1]
    assert new != password and authenticate(username="julia", password=new) is not None
    assert "Disabled 'julia'" in run("users", "disable", "julia")
    assert "disabled" in run("users", "list")
    assert "Enabled 'julia'" in run("users", "enable", "julia")
    assert set(AuditEvent.objects.filter(actor="cli", object_type="user").values_list("event_type", flat=True)) == {
        "USER_CREATION", "USER_PASSWORD_RESET", "USER_DISABLED", "USER_ENABLED"}


@pytest.mark.parametrize(("args", "message"), [
    (("add", "bad name"), "letters, digits"),
    (("passwd", "ghost"), "no local user 'ghost'"),
    (("disable", "ghost"), "no local user 'ghost'"),
])
def test_cli_refusals(db, args, message):
    assert message in refused("users", *args)


def test_cli_status_and_unlock_are_kept(db):
    assert "No lockouts." in run("users", "status")


def test_accounts_an_oidc_login_made_are_not_local_users(db, admin):
    """An OpenID Connect login makes a Django account (oauth-<provider>:<claim>): it is not listed among the
    local users, and no administrator can give it a local password (a second way into that person's account)."""
    oidc = get_user_model().objects.create_user("oauth-1:alice@example.com")
    users.create_user(admin, "dave")
    assert [row.username for row in users.list_users(admin)] == ["dave"]
    with pytest.raises(ValidationError, match="OpenID Connect"):
        users.reset_password(admin, oidc.username)
    oidc.refresh_from_db()
    assert not oidc.has_usable_password() and not LocalAccount.objects.filter(user=oidc).exists()
