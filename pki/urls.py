from django.urls import include, path

urlpatterns = [
    path("", include("pki.views.urls")),
    path("", include("pki.api.urls")),
    path("", include("cryptotokens.urls")),
]
