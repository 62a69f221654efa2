"""REST routes of the end entity app, at EJBCA's paths (``/ejbca/ejbca-rest-api/v1/...``)."""

from django.urls import path

from . import api, api_certrequest, api_v2

V1 = "ejbca/ejbca-rest-api/v1"
V2 = "ejbca/ejbca-rest-api/v2"

urlpatterns = [
    path(f"{V1}/endentity", api.AddEndEntityView.as_view(), name="api-endentity-add"),
    path(f"{V1}/endentity/status", api.EndEntityStatusView.as_view(), name="api-endentity-status"),
    path(f"{V1}/endentity/search", api.SearchEndEntitiesView.as_view(), name="api-endentity-search"),
    path(f"{V1}/endentity/edit", api.EditEndEntityView.as_view(), name="api-endentity-edit"),
    path(f"{V1}/endentity/<str:endentity_name>/setstatus", api.SetStatusView.as_view(),
         name="api-endentity-setstatus"),
    path(f"{V1}/endentity/<str:endentity_name>/revoke", api.RevokeEndEntityView.as_view(),
         name="api-endentity-revoke"),
    path(f"{V1}/endentity/<str:endentity_name>", api.DeleteEndEntityView.as_view(), name="api-endentity-delete"),
    path(f"{V1}/certificate/pkcs10enroll", api.Pkcs10EnrollView.as_view(), name="api-certificate-pkcs10enroll"),
    path(f"{V1}/certificate/certificaterequest", api_certrequest.CertificateRequestView.as_view(),
         name="api-certificate-certificaterequest"),
    path(f"{V1}/certificate/enrollkeystore", api.EnrollKeystoreView.as_view(),
         name="api-certificate-enrollkeystore"),
    # EJBCA's v2 end entity resource
    path(f"{V2}/endentity/status", api_v2.EndEntityStatusV2View.as_view(), name="api-v2-endentity-status"),
    path(f"{V2}/endentity/profiles/authorized", api_v2.AuthorizedProfilesView.as_view(),
         name="api-v2-endentity-profiles-authorized"),
    path(f"{V2}/endentity/profile/<str:endentity_profile_name>", api_v2.EndEntityProfileView.as_view(),
         name="api-v2-endentity-profile"),
    path(f"{V2}/endentity/search", api_v2.SearchEndEntitiesV2View.as_view(), name="api-v2-endentity-search"),
]
