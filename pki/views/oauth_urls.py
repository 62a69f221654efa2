"""Routes of OAuth/OIDC login and the Trusted OAuth Providers pages (included before the core UI routes,
so ``/logout/`` is the logout that also ends the provider's session)."""

from django.urls import path

from ..auth import oidc
from ..services.oauth import RULE
from . import oauth
from . import urls as _core_urls  # noqa: F401  (its navigation entries first: this module is included first)
from .context import NavItem, register_nav

urlpatterns = [
    path("logout/", oauth.ProviderLogoutView.as_view(), name="logout"),
    path("oidc/<int:provider_id>/login/", oidc.ProviderLoginView.as_view(), name="oidc-login"),
    # One redirect URI for every provider (the state says which provider the attempt belongs to).
    path("oidc/callback/", oidc.ProviderCallbackView.as_view(), name="oidc_authentication_callback"),
    path("system/oauth-providers/", oauth.provider_list, name="oauth-provider-list"),
    path("system/oauth-providers/new/", oauth.provider_create, name="oauth-provider-create"),
    path("system/oauth-providers/<int:pk>/", oauth.provider_edit, name="oauth-provider-edit"),
    path("system/oauth-providers/<int:pk>/delete/", oauth.provider_delete, name="oauth-provider-delete"),
]

register_nav(NavItem("Trusted OAuth providers", "oauth-provider-list", RULE, "System"))
