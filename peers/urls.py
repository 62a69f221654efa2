"""Peers routes: the protocol endpoints a CA connector calls on an RA/VA (/peers/v1/), the REST API under
/api/v1/peers/ and the admin page "Peer Systems"."""

from django.urls import path

from pki.views.context import NavItem, register_nav

from . import api, portal_ra, ra_views, views
from .choices import VIEW_RULE

API = "api/v1/peers"

urlpatterns = [
    path("peers/v1/hello", ra_views.hello, name="peers-hello"),
    path("peers/v1/lease", ra_views.lease, name="peers-lease"),
    path("peers/v1/answer", ra_views.answer, name="peers-answer"),
    path("peers/v1/push/scep", ra_views.push_scep, name="peers-push-scep"),
    path(f"{API}/", api.ConnectorListView.as_view(), name="api-peer-list"),
    path(f"{API}/incoming/", api.IncomingListView.as_view(), name="api-peer-incoming"),
    path(f"{API}/<str:key>/", api.ConnectorDetailView.as_view(), name="api-peer-detail"),
    path(f"{API}/<str:key>/test", api.TestView.as_view(), name="api-peer-test"),
    path("ra/login/", portal_ra.portal_login, name="ra-portal-login"),  # RA node: log in with the CA's password
    path("ra/login/password/", portal_ra.portal_password_change, name="ra-portal-password"),  # a one-time password
    path("ra/cas/", portal_ra.ca_downloads, name="ra-ca-downloads"),  # CA certificates and CRLs (public)
    path("system/peers/", views.peer_list, name="peer-list"),
    path("system/peers/new/", views.peer_create, name="peer-create"),
    path("system/peers/<int:pk>/edit/", views.peer_edit, name="peer-edit"),
    path("system/peers/<int:pk>/delete/", views.peer_delete, name="peer-delete"),
    path("system/peers/<int:pk>/test/", views.peer_test, name="peer-test"),
]

register_nav(NavItem("Peer Systems", "peer-list", VIEW_RULE, "System"))
