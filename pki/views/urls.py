"""Admin UI routes, and the navigation entries each area adds."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import approvals, audit, auth, cas, certificates, crls, dashboard, profiles, search
from .context import NavItem, register_nav


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico where a page names no icon (JSON answers, downloads): the logo, as on pages.
    The static URL is looked up per request (a hashed name once collectstatic has run)."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("pki/logo.svg")


urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("cas/", cas.ca_list, name="ca-list"),
    path("cas/new/", cas.ca_create, name="ca-create"),
    path("cas/import/", cas.ca_import, name="ca-import"),
    path("cas/<int:pk>/", cas.ca_detail, name="ca-detail"),
    path("cas/<int:pk>/edit/", cas.ca_edit, name="ca-edit"),
    path("cas/<int:pk>/renew/", cas.ca_renew, name="ca-renew"),
    path("cas/<int:pk>/download/<str:what>/", cas.ca_download, name="ca-download"),
    path("profiles/", profiles.profile_list, name="profile-list"),
    path("profiles/new/", profiles.profile_create, name="profile-create"),
    path("profiles/<int:pk>/", profiles.profile_detail, name="profile-detail"),
    path("profiles/<int:pk>/edit/", profiles.profile_edit, name="profile-edit"),
    path("profiles/<int:pk>/clone/", profiles.profile_clone, name="profile-clone"),
    path("profiles/<int:pk>/delete/", profiles.profile_delete, name="profile-delete"),
    path("approvalprofiles/", approvals.profile_list, name="approval-profile-list"),
    path("approvalprofiles/new/", approvals.profile_create, name="approval-profile-create"),
    path("approvalprofiles/<int:pk>/edit/", approvals.profile_edit, name="approval-profile-edit"),
    path("approvalprofiles/<int:pk>/delete/", approvals.profile_delete, name="approval-profile-delete"),
    path("approvalprofiles/settings/", approvals.setting_save, name="approval-setting-save"),
    path("certificates/", certificates.certificate_list, name="certificate-list"),
    path("certificates/issue/", certificates.certificate_issue, name="certificate-issue"),
    path("certificates/revoke/", certificates.certificate_bulk_revoke, name="certificate-bulk-revoke"),
    path("certificates/<int:pk>/", certificates.certificate_detail, name="certificate-detail"),
    path("certificates/<int:pk>/download/<str:what>/", certificates.certificate_download,
         name="certificate-download"),
    path("certificates/<int:pk>/revoke/", certificates.certificate_revoke, name="certificate-revoke"),
    path("certificates/<int:pk>/unhold/", certificates.certificate_unhold, name="certificate-unhold"),
    path("crls/", crls.crl_list, name="crl-list"),
    path("crls/<int:pk>/create/", crls.crl_create, name="crl-create"),
    path("crls/<int:pk>/entries/", crls.crl_detail, name="crl-detail"),
    path("tasks/<str:task_id>/", crls.task_status, name="task-status"),
    path("audit/", audit.audit_log, name="audit-log"),
    path("search/", search.search, name="search"),
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
]

for item in (
    NavItem("Dashboard", "dashboard", "/administrator", "Overview"),
    NavItem("Certificate authorities", "ca-list", "/ca_functionality/view_ca"),
    NavItem("Certificate profiles", "profile-list", "/ca_functionality/view_certificate_profiles"),
    NavItem("Certificates", "certificate-list", "/ca_functionality/view_certificate"),
    NavItem("Issue for CSR", "certificate-issue", "/ca_functionality/create_certificate"),
    NavItem("CRLs", "crl-list", "/ca_functionality/view_ca"),
    NavItem("Audit log", "audit-log", "/audit/view", "System"),
    NavItem("Approval profiles", "approval-profile-list", approvals.EDIT_RULE, "System"),
):
    register_nav(item)
