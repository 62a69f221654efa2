"""Login and logout for the admin UI (local accounts; OpenID Connect comes with the OAuth issue),
with every login and failed login in the audit log.

Failed logins are counted per account name and per client address (:mod:`pki.auth.throttle`); past the limit
the form answers 429 without checking the password, for known and unknown names alike."""

from __future__ import annotations

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from .. import audit
from ..auth import password_change, throttle
from ..auth.access import Actor, actor_for_request
from .context import NAVIGATION


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="pki-audit-login")
def _logged_in(sender, request, user, **kwargs) -> None:
    audit.record("LOGIN", user.get_username(), object_type="session", details={"ip": _client_ip(request)})
    password_change.mark_session(request, user)


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


# Rules that make a caller a CA-side administrator: they land on the dashboard even if they may use the RA portal.
CA_ADMIN_RULES = ("/ca_functionality/edit_ca", "/audit/view", "/system_functionality/edit_administrator_privileges")
# Rules that open the RA portal's start page (endentities.views.ra.PORTAL_RULES; that app sits above this one).
RA_PORTAL_RULES = ("/ra_functionality/view_end_entity", "/ra_functionality/create_end_entity",
                   "/ca_functionality/use_username", "/ca_functionality/view_certificate")
RA_STAFF_RULES = ("/ra_functionality/create_end_entity", "/ca_functionality/use_username")


def landing_url(who: Actor) -> str:
    """The first page a caller's roles allow: the dashboard for CA administrators and auditors, the RA portal for
    RA staff, else the first entry of the navigation they may see, else their own account page (never a page
    that answers 403)."""
    ca_admin = any(who.is_allowed(rule) for rule in CA_ADMIN_RULES)
    ra_staff = any(who.is_allowed(rule) for rule in RA_STAFF_RULES)
    if who.is_allowed("/administrator") and (ca_admin or not ra_staff):
        return reverse("dashboard")
    if any(who.is_allowed(rule) for rule in RA_PORTAL_RULES):
        return reverse("ra-home")
    for item in NAVIGATION:
        if who.is_allowed(item.resource):
            return reverse(item.url_name)
    return reverse("account")


@login_required
def landing(request: HttpRequest) -> HttpResponse:
    """``/start/``: where the brand link and "back to the start page" go; on to :func:`landing_url`."""
    return redirect(landing_url(actor_for_request(request)))


class LoginView(auth_views.LoginView):
    """The login page (``registration/login.html``); a logged-in visitor goes straight on, to the page their
    roles allow when no ``next`` was asked for."""

    redirect_authenticated_user = True
    form_class = ThrottledAuthenticationForm

    def get_default_redirect_url(self) -> str:
        return reverse("landing")

    def get_success_url(self) -> str:
        # ``next=/`` (the dashboard, asked for by whoever opened the bare address) means "the start page".
        asked = self.get_redirect_url()
        return asked if asked not in ("", "/") else self.get_default_redirect_url()

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", None) is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.throttled.retry_after)
        return response


class LogoutView(auth_views.LogoutView):
    """Log out (POST only, from the header's button), then back to the login page."""
