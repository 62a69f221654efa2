"""Login and logout for the admin UI (local accounts; OpenID Connect comes with the OAuth issue),
with every login and failed login in the audit log."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .. import audit


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="pki-audit-login")
def _logged_in(sender, request, user, **kwargs) -> None:
    audit.record("LOGIN", user.get_username(), object_type="session", details={"ip": _client_ip(request)})


@receiver(user_login_failed, dispatch_uid="pki-audit-login-failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django already strips the password from ``credentials``; only the user name is kept.
    audit.record_failure("LOGIN", str(credentials.get("username", ""))[:150], "wrong user name or password",
                         object_type="session", details={"ip": _client_ip(request)})


@receiver(user_logged_out, dispatch_uid="pki-audit-logout")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit.record("LOGOUT", user.get_username(), object_type="session", details={"ip": _client_ip(request)})


class LoginView(auth_views.LoginView):
    """The login page (``registration/login.html``); a logged-in visitor goes straight on."""

    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """Log out (POST only, from the header's button), then back to the login page."""
