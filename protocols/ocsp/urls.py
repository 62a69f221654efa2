"""OCSP at EJBCA's URL and at a short one; GET carries the request in the path, POST in the body."""

from django.urls import path

from . import views

urlpatterns = [
    path("ejbca/publicweb/status/ocsp", views.ocsp, name="ocsp-ejbca"),
    path("ejbca/publicweb/status/ocsp/<path:encoded>", views.ocsp, name="ocsp-ejbca-get"),
    path("ocsp", views.ocsp, name="ocsp"),
    path("ocsp/<path:encoded>", views.ocsp, name="ocsp-get"),
]
