"""A local account logged in with a one-time password (set by an administrator: a new account or a reset) must
choose its own before anything else: every page redirects to the password change page, every API call is 403.

The mark is read from the database once, at login, and kept in the session; a reset while the user is logged in
changes the password hash, which ends their sessions (Django's session auth hash), so the next login reads it
again."""

from __future__ import annotations

from django.http import HttpResponseRedirect, JsonResponse

SESSION_KEY = "pki_must_change_password"
CHANGE_PATH = "/account/password/"
# What a user with a one-time password may still reach: the change page itself, logging out, static files.
OPEN_PATHS = (CHANGE_PATH, "/logout/", "/static/")
MESSAGE = f"Change your one-time password first (at {CHANGE_PATH})."


def must_change(user) -> bool:
    """Whether ``user`` holds a one-time password (set by an administrator) that it has not yet replaced."""
    from ..models import LocalAccount

    return LocalAccount.objects.filter(user_id=user.pk, must_change_password=True).exists()


def mark_session(request, user) -> None:
    """At login: remember in the session whether ``user`` must change their password first."""
    if request is None or not hasattr(request, "session"):
        return
    if must_change(user):
        request.session[SESSION_KEY] = True
    else:
        request.session.pop(SESSION_KEY, None)


def clear_session(request) -> None:
    """After the password was changed."""
    request.session.pop(SESSION_KEY, None)


class PasswordChangeRequiredMiddleware:
    """Send a session that logged in with a one-time password to the password change page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and session.get(SESSION_KEY) and not request.path.startswith(OPEN_PATHS):
            if request.path.startswith("/api/"):
                return JsonResponse({"error_code": 403, "error_message": MESSAGE}, status=403)
            return HttpResponseRedirect(CHANGE_PATH)
        return self.get_response(request)
