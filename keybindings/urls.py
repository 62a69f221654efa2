"""Key binding routes: the REST API under /api/v1/keybindings/ and the admin pages under /keybindings/."""

from django.urls import path

from pki.views.context import NavItem, register_nav

from . import api, views

API = "api/v1/keybindings"

urlpatterns = [
    path(f"{API}/", api.KeyBindingListView.as_view(), name="api-keybinding-list"),
    path(f"{API}/<str:key>/", api.KeyBindingDetailView.as_view(), name="api-keybinding-detail"),
    path(f"{API}/<str:key>/status", api.StatusView.as_view(), name="api-keybinding-status"),
    path(f"{API}/<str:key>/csr", api.CsrView.as_view(), name="api-keybinding-csr"),
    path(f"{API}/<str:key>/nextkey", api.NextKeyView.as_view(), name="api-keybinding-nextkey"),
    path(f"{API}/<str:key>/issue", api.IssueView.as_view(), name="api-keybinding-issue"),
    path(f"{API}/<str:key>/import", api.ImportView.as_view(), name="api-keybinding-import"),
    path(f"{API}/<str:key>/renew", api.RenewView.as_view(), name="api-keybinding-renew"),
    path(f"{API}/<str:key>/certificate", api.CertificateView.as_view(), name="api-keybinding-certificate"),
    # Admin pages
    path("keybindings/<int:pk>/", views.binding_detail, name="keybinding-detail"),
    path("keybindings/<int:pk>/edit/", views.binding_edit, name="keybinding-edit"),
    path("keybindings/<int:pk>/status/", views.binding_status, name="keybinding-status"),
    path("keybindings/<int:pk>/csr/", views.binding_csr, name="keybinding-csr"),
    path("keybindings/<int:pk>/issue/", views.binding_issue, name="keybinding-issue"),
    path("keybindings/<int:pk>/import/", views.binding_import, name="keybinding-import"),
    path("keybindings/<int:pk>/renew/", views.binding_renew, name="keybinding-renew"),
    path("keybindings/<int:pk>/nextkey/", views.binding_next_key, name="keybinding-nextkey"),
    path("keybindings/<int:pk>/certificate/", views.binding_certificate, name="keybinding-certificate"),
    path("keybindings/<int:pk>/delete/", views.binding_delete, name="keybinding-delete"),
    # The navigation links by URL name without arguments: one name per page.
    path("keybindings/authentication/", views.binding_list, {"kind": "authentication"},
         name="keybinding-list-authentication"),
    path("keybindings/ocsp/", views.binding_list, {"kind": "ocsp"}, name="keybinding-list-ocsp"),
    path("keybindings/<str:kind>/", views.binding_list, name="keybinding-list"),
    path("keybindings/<str:kind>/new/", views.binding_create, name="keybinding-create"),
]


register_nav(NavItem("Remote Authenticators", "keybinding-list-authentication", views.VIEW))
register_nav(NavItem("OCSP Responders", "keybinding-list-ocsp", views.VIEW))
