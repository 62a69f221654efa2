"""Local user accounts: create, list, disable/enable, reset a password (one-time), change one's own password.

Managing accounts needs ``/system_functionality/edit_administrator_privileges`` (the rule that edits roles:
whoever may make someone a member of a role may also make the account that logs in as that member). Resetting
a password or disabling an account is a way into that account's roles, so an administrator may do it only to
accounts whose roles allow nothing it is not allowed itself (the check of every role edit,
:func:`pki.auth.access.uncovered`). Every change is written to the audit log in its transaction; passwords
never are.

A password an administrator sets (a new account, a reset) is generated here, shown once, and one-time: the
account must choose its own (checked by Django's password validators) at the next login
(:class:`pki.auth.password_change.PasswordChangeRequiredMiddleware`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit
from ..auth import password_change
from ..auth.access import EDIT_RULE, Actor, rules_for_roles, uncovered
from ..auth.oauth import OIDC_USERNAME_PREFIX
from ..choices import MemberMatch
from ..errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from ..models import LocalAccount, RoleMember

MANAGE_RULE = EDIT_RULE
ONE_TIME_PASSWORD_BYTES = 15  # 20 URL-safe characters


@dataclass(frozen=True)
class UserRow:
    """One account as the list pages show it."""

    username: str
    is_active: bool
    last_login: datetime | None
    date_joined: datetime
    must_change_password: bool
    roles: list[str]


def _user_model():
    return get_user_model()


def _roles_of(username: str) -> list[str]:
    return sorted(set(RoleMember.objects.filter(match_type=MemberMatch.LOCAL_USER, match_value=username)
                      .values_list("role__name", flat=True)))


def list_users(actor: Actor) -> list[UserRow]:
    """Every local account with its state, last login and the roles that name it (not the accounts an OpenID
    Connect login made: their passwords and rights are the provider's, see the roles' OAuth members)."""
    actor.require(MANAGE_RULE)
    members: dict[str, set[str]] = {}
    for value, role in RoleMember.objects.filter(match_type=MemberMatch.LOCAL_USER).values_list(
            "match_value", "role__name"):
        members.setdefault(value, set()).add(role)
    must_change = set(LocalAccount.objects.filter(must_change_password=True).values_list("user_id", flat=True))
    return [UserRow(u.username, u.is_active, u.last_login, u.date_joined, u.pk in must_change,
                    sorted(members.get(u.username, ())))
            for u in _user_model().objects.exclude(username__startswith=OIDC_USERNAME_PREFIX).order_by("username")]


def user_exists(username: str) -> bool:
    """Whether a local account of that name exists (role members naming none are warned about)."""
    return _user_model().objects.filter(username=username).exists()


def _get(username: str):
    user = _user_model().objects.select_for_update().filter(username=username).first()
    if user is None:
        raise NotFoundError(f"There is no local user '{username[:150]}'.")
    return user


def _require_covers_account(actor: Actor, username: str) -> None:
    """Refuse unless ``actor`` holds every right the account's roles give: taking over an account (by
    resetting its password) must never give more than the actor has."""
    role_ids = list(RoleMember.objects.filter(match_type=MemberMatch.LOCAL_USER, match_value=username)
                    .values_list("role_id", flat=True))
    for rules in rules_for_roles(role_ids).values():
        path = uncovered(actor, rules)
        if path is not None:
            raise AuthorizationDenied(path, actor.name)


def new_one_time_password() -> str:
    """A random password an administrator hands over once."""
    return secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)


def _clean_username(username: str) -> str:
    username = (username or "").strip()
    if not username or len(username) > 150:
        raise ValidationError("A user name is 1 to 150 characters.", field="username")
    try:
        UnicodeUsernameValidator()(username)
    except DjangoValidationError:
        raise ValidationError("A user name holds only letters, digits and @ . + - _.", field="username") from None
    return username


def _set_one_time(user, password: str) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    LocalAccount.objects.update_or_create(user=user, defaults={"must_change_password": True,
                                                               "password_changed_at": timezone.now()})


@transaction.atomic
def create_user(actor: Actor, username: str) -> tuple[object, str]:
    """A new active account with a one-time password; returns (user, password). The name is unique (a
    database constraint): a second account of the same name is a ConflictError."""
    actor.require(MANAGE_RULE)
    username = _clean_username(username)
    password = new_one_time_password()
    try:
        with transaction.atomic():
            user = _user_model().objects.create_user(username)
    except IntegrityError:
        raise ConflictError(f"A user named '{username}' already exists.", field="username") from None
    _set_one_time(user, password)
    audit.record("USER_CREATION", actor.name, object_type="user", object_id=username,
                 details={"username": username, "roles": _roles_of(username)}, in_transaction=True)
    return user, password


@transaction.atomic
def reset_password(actor: Actor, username: str) -> str:
    """Give the account a new one-time password (returned once, never stored in clear or audited)."""
    actor.require(MANAGE_RULE)
    user = _get(username)
    if user.username.startswith(OIDC_USERNAME_PREFIX):
        # A local password would open a second way into an account whose owner logs in at their provider.
        raise ValidationError("This account logs in with OpenID Connect; its password is kept by the provider.",
                              field="username")
    _require_covers_account(actor, user.username)
    password = new_one_time_password()
    _set_one_time(user, password)
    audit.record("USER_PASSWORD_RESET", actor.name, object_type="user", object_id=user.username,
                 details={"username": user.username}, in_transaction=True)
    return password


@transaction.atomic
def set_active(actor: Actor, username: str, active: bool) -> bool:
    """Disable (or enable again) an account; a disabled account cannot log in and its sessions end at once.
    Nobody disables their own account. Returns whether anything changed."""
    actor.require(MANAGE_RULE)
    user = _get(username)
    if not active and user.username == actor.name and actor.kind == "user":
        raise ConflictError("You cannot disable your own account.", field="username")
    _require_covers_account(actor, user.username)
    if user.is_active == active:
        return False
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit.record("USER_ENABLED" if active else "USER_DISABLED", actor.name, object_type="user",
                 object_id=user.username, details={"username": user.username}, in_transaction=True)
    return True


def must_change_password(user) -> bool:
    """Whether the account logs in with a one-time password it must replace first."""
    return password_change.must_change(user)


def change_own_password(user, old_password: str, new_password: str) -> None:
    """Replace one's own password: the old one must be right and the new one pass Django's password
    validators (and differ from the old). Clears the one-time mark."""
    if not user.check_password(old_password or ""):
        audit.record_failure("USER_PASSWORD_CHANGE", user.get_username(), "the current password is wrong",
                             object_type="user", object_id=user.get_username())
        raise ValidationError("The current password is not right.", field="old_password")
    if new_password == old_password:
        raise ValidationError("Choose a password different from the current one.", field="new_password1")
    try:
        password_validation.validate_password(new_password, user)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), field="new_password1") from None
    with transaction.atomic():  # the failure above is audited on its own, this change with its event
        user.set_password(new_password)
        user.save(update_fields=["password"])
        LocalAccount.objects.update_or_create(user=user, defaults={"must_change_password": False,
                                                                   "password_changed_at": timezone.now()})
        audit.record("USER_PASSWORD_CHANGE", user.get_username(), object_type="user",
                     object_id=user.get_username(), details={"username": user.get_username()}, in_transaction=True)
