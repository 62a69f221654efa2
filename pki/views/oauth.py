"""Admin UI "Trusted OAuth Providers" (list, add, edit, delete), the login page's provider buttons and the
logout that also ends the provider's session (RP-initiated logout)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_POST

from ..auth.oauth import SESSION_KEY
from ..auth.oidc import end_session_url
from ..forms.oauth import OAuthProviderForm
from ..models import TrustedOAuthProvider
from ..services import oauth as oauth_services
from ..services.oauth import RULE, SKIP_AUDIENCE_WARNING
from .auth import LogoutView
from .base import SERVICE_ERRORS, actor, form_error, form_status, refusal_message, requires


@requires(RULE)
def provider_list(request: HttpRequest) -> HttpResponse:
    """Every trusted provider, the ones without an audience check flagged."""
    return render(request, "pki/oauth_list.html", {
        "providers": oauth_services.list_providers(actor(request)), "skip_warning": SKIP_AUDIENCE_WARNING,
    })


def _edit(request: HttpRequest, provider: TrustedOAuthProvider | None) -> HttpResponse:
    form = OAuthProviderForm(request.POST if request.method == "POST" else None, provider=provider)
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            saved = oauth_services.save_provider(actor(request), form.values(), provider,
                                                 client_secret=form.client_secret_value())
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Trusted OAuth provider '{saved.label}' saved.")
            if saved.skip_audience_check:
                messages.warning(request, SKIP_AUDIENCE_WARNING)
            return redirect("oauth-provider-list")
    title = f"Edit trusted OAuth provider {provider.label}" if provider else "Add trusted OAuth provider"
    return render(request, "pki/oauth_form.html", {
        "form": form, "title": title, "provider": provider, "skip_warning": SKIP_AUDIENCE_WARNING,
    }, status=form_status(form, refused))


@requires(RULE)
def provider_create(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@requires(RULE)
def provider_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _edit(request, get_object_or_404(TrustedOAuthProvider, pk=pk))


@require_POST
@requires(RULE)
def provider_delete(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(TrustedOAuthProvider, pk=pk)
    try:
        removed = oauth_services.delete_provider(actor(request), provider)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"Trusted OAuth provider '{provider.label}' removed"
                         + (f" with its {removed} role member(s)." if removed else "."))
    return redirect("oauth-provider-list")


def login_providers(request: HttpRequest) -> dict:
    """Context processor: ``oauth_login_providers`` for the login page's buttons (queried only if used)."""
    return {"oauth_login_providers": SimpleLazyObject(
        lambda: [p for p in TrustedOAuthProvider.objects.all() if p.supports_browser_login])}


class ProviderLogoutView(LogoutView):
    """Log out locally; an OIDC session then goes on to the provider's end_session_endpoint."""

    def post(self, request, *args, **kwargs):
        data = request.session.get(SESSION_KEY)
        row = None
        if isinstance(data, dict):
            row = TrustedOAuthProvider.objects.filter(pk=data.get("provider_id")).first()
        response = super().post(request, *args, **kwargs)
        target = end_session_url(request, row)
        return HttpResponseRedirect(target) if target else response
