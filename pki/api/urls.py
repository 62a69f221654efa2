"""REST API routes (EJBCA's paths), the native reads, the OpenAPI schema and docs, and the public downloads.

CA DNs in paths use the ``path`` converter: a DN may contain ``/``, which arrives decoded from ``%2F``.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import approvals, ca, certificates, oauth, public, roles, search
from .v2 import certificates as certificates_v2

V1 = "ejbca/ejbca-rest-api/v1"
V2 = "ejbca/ejbca-rest-api/v2"

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # EJBCA's v1 CA resource
    path(f"{V1}/ca", ca.CaListView.as_view(), name="api-ca-list"),
    path(f"{V1}/ca/status", ca.CaStatusView.as_view(), name="api-ca-status"),
    path(f"{V1}/ca/<path:subject_dn>/certificate/download", ca.CaChainDownloadView.as_view(),
         name="api-ca-certificate-download"),
    path(f"{V1}/ca/<path:issuer_dn>/getLatestCrl", ca.LatestCrlView.as_view(), name="api-ca-latest-crl"),
    path(f"{V1}/ca/<path:issuer_dn>/createcrl", ca.CreateCrlView.as_view(), name="api-ca-create-crl"),
    # EJBCA's v1 certificate resource
    path(f"{V1}/certificate/status", certificates.CertificateStatusView.as_view(), name="api-certificate-status"),
    path(f"{V1}/certificate/search", search.SearchView.as_view(), name="api-certificate-search"),
    path(f"{V1}/certificate/<path:issuer_dn>/<str:certificate_serial_number>/revocationstatus",
         certificates.RevocationStatusView.as_view(), name="api-certificate-revocation-status"),
    path(f"{V1}/certificate/<path:issuer_dn>/<str:certificate_serial_number>/revoke",
         certificates.RevokeView.as_view(), name="api-certificate-revoke"),
    # EJBCA's v2 certificate resource
    path(f"{V2}/certificate/status", certificates_v2.CertificateStatusV2View.as_view(),
         name="api-v2-certificate-status"),
    path(f"{V2}/certificate/count", certificates_v2.CertificateCountView.as_view(), name="api-v2-certificate-count"),
    path(f"{V2}/certificate/search", certificates_v2.SearchV2View.as_view(), name="api-v2-certificate-search"),
    path(f"{V2}/certificate/profile/<str:profile_name>", certificates_v2.CertificateProfileInfoView.as_view(),
         name="api-v2-certificate-profile"),
    path(f"{V2}/certificate/<path:issuer_dn>/<str:certificate_serial_number>/keyrecover",
         certificates_v2.KeyRecoverView.as_view(), name="api-v2-certificate-keyrecover"),
    # Roles, their members and access rules (EJBCA's REST API has none; paths of this project)
    path(f"{V1}/roles", roles.RoleListView.as_view(), name="api-role-list"),
    path(f"{V1}/roles/<str:role_name>", roles.RoleDetailView.as_view(), name="api-role-detail"),
    path(f"{V1}/roles/<str:role_name>/members", roles.RoleMembersView.as_view(), name="api-role-members"),
    path(f"{V1}/roles/<str:role_name>/members/<int:member_id>", roles.RoleMemberView.as_view(),
         name="api-role-member"),
    path(f"{V1}/roles/<str:role_name>/rules", roles.RoleRulesView.as_view(), name="api-role-rules"),
    path(f"{V1}/certificate/<str:request_id>/finalize", approvals.FinalizeView.as_view(),
         name="api-certificate-finalize"),
    # Approval requests (EJBCA's REST API has none: a pki path)
    path("api/v1/approvals/", approvals.ApprovalListView.as_view(), name="api-approval-list"),
    path("api/v1/approvals/<str:request_id>/", approvals.ApprovalDetailView.as_view(), name="api-approval-detail"),
    path("api/v1/approvals/<str:request_id>/approve", approvals.ApproveView.as_view(), name="api-approval-approve"),
    path("api/v1/approvals/<str:request_id>/reject", approvals.RejectView.as_view(), name="api-approval-reject"),
    # Native reads of one certificate (EJBCA's v1 API has none)
    path("api/v1/certificates/<str:fingerprint>/", certificates.CertificateByFingerprintView.as_view(),
         name="api-certificate-detail"),
    path("api/v1/cas/<path:ca>/certificates/<str:serial>/", certificates.CertificateBySerialView.as_view(),
         name="api-ca-certificate-detail"),
    # Trusted OAuth providers (EJBCA's REST API has none; a pki path): by id or label
    path("api/v1/oauth-providers/", oauth.OAuthProviderListView.as_view(), name="api-oauth-provider-list"),
    path("api/v1/oauth-providers/<str:key>/", oauth.OAuthProviderDetailView.as_view(),
         name="api-oauth-provider-detail"),
    # Public downloads: CRL distribution points and AIA caIssuers URLs, also at EJBCA's certdist URL.
    path("crl/<str:ca_name>.crl", public.crl_download, name="crl-download"),
    path("ca/<str:ca_name>.crt", public.ca_certificate_download, name="ca-certificate-download"),
    path("ejbca/publicweb/webdist/certdist", public.certdist, name="ejbca-certdist"),
]
