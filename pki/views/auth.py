"""Login and logout for the admin UI (local accounts; OpenID Connect comes with the OAuth issue),
with every login and failed login in the audit log.

Failed logins are counted per account name and per client address (:mod:`pki.auth.throttle`); past the limit
the form answers 429 without checking the password, for known and unknown names alike."""

from __future__ import annotations

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .. import audit
from ..auth import throttle


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


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's login form, refused unchecked while the account name or the address is locked out."""

    throttled: throttle.Throttled | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()
        ip = throttle.client_address(self.request) if self.request is not None else ""
        try:
            throttle.check((throttle.ADDRESS, ip), (throttle.ACCOUNT, username))
        except throttle.Throttled as exc:
            self.throttled = exc
            raise forms.ValidationError(exc.message, code="throttled") from None
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            throttle.record_failure(throttle.ADDRESS, ip, ip=ip)
            throttle.record_failure(throttle.ACCOUNT, username, ip=ip)
            raise
        throttle.reset(throttle.ACCOUNT, username)
        return cleaned


class LoginView(auth_views.LoginView):
    """The login page (``registration/login.html``); a logged-in visitor goes straight on."""

    redirect_authenticated_user = True
    form_class = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", None) is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.throttled.retry_after)
        return response


class LogoutView(auth_views.LogoutView):
    """Log out (POST only, from the header's button), then back to the login page."""
