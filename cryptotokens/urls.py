from django.urls import path

from . import api

PREFIX = "ejbca/ejbca-rest-api/v1/cryptotoken"

urlpatterns = [
    path(f"{PREFIX}/status", api.StatusView.as_view(), name="cryptotoken-status"),
    path(f"{PREFIX}/<str:cryptotoken_name>/activate", api.ActivateView.as_view(), name="cryptotoken-activate"),
    path(f"{PREFIX}/<str:cryptotoken_name>/deactivate", api.DeactivateView.as_view(), name="cryptotoken-deactivate"),
    path(f"{PREFIX}/<str:cryptotoken_name>/generatekeys", api.GenerateKeysView.as_view(),
         name="cryptotoken-generatekeys"),
    path(f"{PREFIX}/<str:cryptotoken_name>/keys", api.ListKeysView.as_view(), name="cryptotoken-listkeys"),
    path(f"{PREFIX}/<str:cryptotoken_name>/<str:key_pair_alias>/adopt", api.AdoptKeyView.as_view(),
         name="cryptotoken-adoptkey"),
    path(f"{PREFIX}/<str:cryptotoken_name>/<str:key_pair_alias>/removekeys", api.RemoveKeysView.as_view(),
         name="cryptotoken-removekeys"),
]

# Admin UI pages.
from pki.views.context import NavItem, register_nav  # noqa: E402

from . import views  # noqa: E402

urlpatterns += [
    path("cryptotokens/", views.token_list, name="cryptotoken-list"),
    path("cryptotokens/new/", views.token_create, name="cryptotoken-create"),
    path("cryptotokens/<int:pk>/", views.token_detail, name="cryptotoken-detail"),
    path("cryptotokens/<int:pk>/edit/", views.token_edit, name="cryptotoken-edit"),
    path("cryptotokens/<int:pk>/activate/", views.token_activate, name="cryptotoken-activate-ui"),
    path("cryptotokens/<int:pk>/deactivate/", views.token_deactivate, name="cryptotoken-deactivate-ui"),
    path("cryptotokens/<int:pk>/generate/", views.key_generate, name="cryptotoken-generate"),
    path("cryptotokens/<int:pk>/test/", views.key_test, name="cryptotoken-test"),
    path("cryptotokens/<int:pk>/adopt/", views.key_adopt, name="cryptotoken-adopt"),
    path("cryptotokens/<int:pk>/remove/", views.key_remove, name="cryptotoken-remove"),
    path("cryptotokens/<int:pk>/export/", views.key_export, name="cryptotoken-export"),
    path("cryptotokens/<int:pk>/delete/", views.token_delete, name="cryptotoken-delete"),
]
register_nav(NavItem("Crypto tokens", "cryptotoken-list", "/cryptotoken/view"))
