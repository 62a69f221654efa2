"""Browser pages of the end entity app: the admin UI's end entity profiles and end entities, and the RA
portal under ``/ra/``. (``urls.py`` is the REST API's.) Loading this module registers the navigation
entries and the rule names templates ask about."""

from django.urls import path

from pki.views.context import UI_RULES, NavItem, register_nav

from .views import approvals, entities, profiles, ra, ra_forms, ra_search

urlpatterns = [
    path("endentityprofiles/", profiles.profile_list, name="ee-profile-list"),
    path("endentityprofiles/new/", profiles.profile_create, name="ee-profile-create"),
    path("endentityprofiles/<int:pk>/", profiles.profile_detail, name="ee-profile-detail"),
    path("endentityprofiles/<int:pk>/edit/", profiles.profile_edit, name="ee-profile-edit"),
    path("endentityprofiles/<int:pk>/clone/", profiles.profile_clone, name="ee-profile-clone"),
    path("endentityprofiles/<int:pk>/delete/", profiles.profile_delete, name="ee-profile-delete"),
    path("endentities/", entities.entity_search, name="ee-search"),
    path("endentities/new/", entities.entity_add, name="ee-add"),
    path("endentities/revoke/", entities.entity_bulk_revoke, name="ee-bulk-revoke"),
    path("endentities/by-username/", entities.entity_by_username, name="ee-by-username"),
    path("endentities/<int:pk>/", entities.entity_detail, name="ee-detail"),
    path("endentities/<int:pk>/edit/", entities.entity_edit, name="ee-edit"),
    path("endentities/<int:pk>/status/", entities.entity_set_status, name="ee-set-status"),
    path("endentities/<int:pk>/revoke/", entities.entity_revoke, name="ee-revoke"),
    path("endentities/<int:pk>/delete/", entities.entity_delete, name="ee-delete"),
    path("ra/", ra.home, name="ra-home"),
    path("ra/enroll/", ra.make_request, name="ra-enroll"),
    path("ra/enroll/username/", ra.use_username, name="ra-use-username"),
    path("ra/endentities/", ra_search.entity_search, name="ra-ee-search"),
    path("ra/endentities/revoke/", ra_search.entity_bulk_revoke, name="ra-ee-bulk-revoke"),
    path("ra/endentities/<int:pk>/", ra_search.entity_detail, name="ra-ee-detail"),
    path("ra/endentities/<int:pk>/revoke/", ra_search.entity_revoke, name="ra-ee-revoke"),
    path("ra/certificates/", ra_search.certificate_search, name="ra-cert-search"),
    path("ra/certificates/revoke/", ra_search.certificate_bulk_revoke, name="ra-cert-bulk-revoke"),
    path("ra/certificates/<int:pk>/", ra_search.certificate_detail, name="ra-cert-detail"),
    path("ra/certificates/<int:pk>/revoke/", ra_search.certificate_revoke, name="ra-cert-revoke"),
    path("ra/certificates/<int:pk>/download/<str:what>/", ra_search.certificate_download, name="ra-cert-download"),
    path("ra/approvals/", approvals.request_list, name="ra-approval-list"),
    path("ra/approvals/<int:pk>/", approvals.request_detail, name="ra-approval-detail"),
    path("ra/approvals/<int:pk>/decide/", approvals.request_decide, name="ra-approval-decide"),
]

UI_RULES.update({
    "view_ee_profiles": profiles.VIEW_RULE,
    "edit_ee_profiles": profiles.EDIT_RULE,
    "view_end_entity": "/ra_functionality/view_end_entity",
    "create_end_entity": "/ra_functionality/create_end_entity",
    "edit_end_entity": "/ra_functionality/edit_end_entity",
    "delete_end_entity": "/ra_functionality/delete_end_entity",
    "revoke_end_entity": "/ra_functionality/revoke_end_entity",
    "use_username": ra.USE_USERNAME,
    "approve_end_entity": approvals.RULES[0],
    "approve_ca": approvals.RULES[1],
    "view_approvals": approvals.RULES[2],
})

for item in (
    NavItem("End entity profiles", "ee-profile-list", profiles.VIEW_RULE, "RA functions"),
    NavItem("End entities", "ee-search", "/ra_functionality/view_end_entity", "RA functions"),
    NavItem("Add end entity", "ee-add", "/ra_functionality/create_end_entity", "RA functions"),
    NavItem("RA portal", "ra-home", "/ra_functionality/view_end_entity", "RA functions"),
    NavItem("Approve requests", "ra-approval-list", approvals.RULES[0], "RA functions"),
):
    register_nav(item)

# RA portal: the subject of a pasted CSR (pre-fills the request form), editing and re-enrolling an end entity.
urlpatterns += [
    path("ra/enroll/csr-subject/", ra_forms.csr_subject, name="ra-csr-subject"),
    path("ra/endentities/<int:pk>/edit/", ra_forms.entity_edit, name="ra-ee-edit"),
    path("ra/endentities/<int:pk>/reenroll/", ra_forms.entity_reenroll, name="ra-ee-reenroll"),
]
