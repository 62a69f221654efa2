"""Local users pages (System ▸ Local users): the list with last logins, create, reset a password, disable and
enable; and every user's own account page and password change. The rules live in :mod:`pki.services.users`.

A generated one-time password is rendered once, in the answer to the POST that made it (never stored in clear,
never in a redirect or a message that a reload could show again; the response is not cached).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ..auth import password_change
from ..forms.users import PasswordChangeForm, UserCreateForm
from ..services import users as user_services
from ..services.users import MANAGE_RULE
from .base import SERVICE_ERRORS, actor, form_error, form_status, posted, refusal_message, requires


def _one_time(request: HttpRequest, username: str, password: str, created: bool) -> HttpResponse:
    response = render(request, "pki/user_password.html", {"username": username, "password": password,
                                                           "created": created})
    response["Cache-Control"] = "no-store"
    return response


@requires(MANAGE_RULE)
def user_list(request: HttpRequest) -> HttpResponse:
    """Every local account with its state and last login, and the form to create one."""
    return render(request, "pki/user_list.html", {"users": user_services.list_users(actor(request)),
                                                  "form": UserCreateForm()})


@requires(MANAGE_RULE)
def user_create(request: HttpRequest) -> HttpResponse:
    """Create an account and show its one-time password once."""
    form = UserCreateForm(posted(request))
    refused = None
    if form.is_bound and form.is_valid():
        try:
            user, password = user_services.create_user(actor(request), form.cleaned_data["username"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            return _one_time(request, user.get_username(), password, created=True)
    return render(request, "pki/form.html", {"form": form, "title": "New local user", "submit": "Create user",
                                             "cancel": "/users/"}, status=form_status(form, refused))


@require_POST
@requires(MANAGE_RULE)
def user_reset(request: HttpRequest, username: str) -> HttpResponse:
    """A new one-time password for the account, shown once."""
    try:
        password = user_services.reset_password(actor(request), username)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("user-list")
    return _one_time(request, username, password, created=False)


@require_POST
@requires(MANAGE_RULE)
def user_set_active(request: HttpRequest, username: str, action: str) -> HttpResponse:
    """Disable or enable an account."""
    try:
        changed = user_services.set_active(actor(request), username, action == "enable")
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        if changed:
            messages.success(request, f"User '{username}' {'enabled' if action == 'enable' else 'disabled'}.")
    return redirect("user-list")


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """The caller's own account: name, last login, roles, and the link to change the password. A user whose
    roles allow no page lands here (not on a "not authorized" page)."""
    who = actor(request)
    return render(request, "pki/account.html", {"roles": who.roles,
                                                "local": request.user.has_usable_password()})


@login_required
def password_change_view(request: HttpRequest) -> HttpResponse:
    """Change one's own password (required first after a one-time password)."""
    form = PasswordChangeForm(posted(request))
    refused = None
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        try:
            user_services.change_own_password(request.user, d["old_password"], d["new_password1"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            update_session_auth_hash(request, request.user)  # this session stays logged in, others end
            password_change.clear_session(request)
            messages.success(request, "Password changed.")
            return redirect("landing")
    required = bool(request.session.get(password_change.SESSION_KEY))
    return render(request, "pki/form.html", {
        "form": form, "title": "Change your password", "submit": "Change password",
        "intro": "Your password was set by an administrator and works once: choose your own to go on."
                 if required else "", "cancel": "" if required else "/account/",
    }, status=form_status(form, refused))
