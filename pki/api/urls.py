"""REST API routes (EJBCA's paths), the OpenAPI schema and docs, and the public downloads."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import ca, certificates, public

V1 = "ejbca/ejbca-rest-api/v1"

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(f"{V1}/ca", ca.CaListView.as_view(), name="api-ca-list"),
    path(f"{V1}/ca/status", ca.StatusView.as_view(), name="api-ca-status"),
    path(f"{V1}/ca/<str:subject_dn>/certificate/download", ca.CaCertificateDownloadView.as_view(),
         name="api-ca-certificate"),
    path(f"{V1}/ca/<str:issuer_dn>/getLatestCrl", ca.LatestCrlView.as_view(), name="api-ca-latest-crl"),
    path(f"{V1}/ca/<str:issuer_dn>/createcrl", ca.CreateCrlView.as_view(), name="api-ca-create-crl"),
    path(f"{V1}/certificate/status", certificates.StatusView.as_view(), name="api-certificate-status"),
    path(f"{V1}/certificate/search", certificates.SearchView.as_view(), name="api-certificate-search"),
    path(f"{V1}/certificate/<str:issuer_dn>/<str:certificate_serial_number>/revocationstatus",
         certificates.RevocationStatusView.as_view(), name="api-certificate-revocation-status"),
    path(f"{V1}/certificate/<str:issuer_dn>/<str:certificate_serial_number>/revoke",
         certificates.RevokeView.as_view(), name="api-certificate-revoke"),
    path("api/v1/certificates/<str:fingerprint>/", certificates.CertificateDetailView.as_view(),
         name="api-certificate-detail"),
    # Public downloads: CRL distribution points and AIA caIssuers URLs, also at EJBCA's URL.
    path("crl/<str:ca_name>.crl", public.crl_download, name="crl-download"),
    path("ca/<str:ca_name>.crt", public.ca_certificate_download, name="ca-certificate-download"),
    path("ejbca/publicweb/webdist/certdist", public.certdist, name="ejbca-certdist"),
]
