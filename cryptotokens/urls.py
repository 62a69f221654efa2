from django.urls import path

from . import api

PREFIX = "ejbca/ejbca-rest-api/v1/cryptotoken"

urlpatterns = [
    path(f"{PREFIX}/status", api.StatusView.as_view(), name="cryptotoken-status"),
    path(f"{PREFIX}/<str:cryptotoken_name>/activate", api.ActivateView.as_view(), name="cryptotoken-activate"),
    path(f"{PREFIX}/<str:cryptotoken_name>/deactivate", api.DeactivateView.as_view(), name="cryptotoken-deactivate"),
    path(f"{PREFIX}/<str:cryptotoken_name>/generatekeys", api.GenerateKeysView.as_view(),
         name="cryptotoken-generatekeys"),
    path(f"{PREFIX}/<str:cryptotoken_name>/<str:key_pair_alias>/removekeys", api.RemoveKeysView.as_view(),
         name="cryptotoken-removekeys"),
]
