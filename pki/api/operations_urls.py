"""Routes of EJBCA's v1 operations added for issue 14 (CA management, configdump, certificate expiry, CRL
import, system services, the SSH and ETSI resources), kept apart from ``pki.api.urls`` (included from ``pki.urls``).
Fixed path segments come before the ``{type}`` / ``{issuer_dn}`` patterns they would otherwise match."""

from django.urls import path, re_path

from . import ca_management, configdump, operations

V1 = "ejbca/ejbca-rest-api/v1"

urlpatterns = [
    path(f"{V1}/ca_management/status", ca_management.CaManagementStatusView.as_view(),
         name="api-ca-management-status"),
    path(f"{V1}/ca_management/<str:ca_name>/activate", ca_management.CaActivateView.as_view(),
         name="api-ca-management-activate"),
    path(f"{V1}/ca_management/<str:ca_name>/deactivate", ca_management.CaDeactivateView.as_view(),
         name="api-ca-management-deactivate"),
    path(f"{V1}/configdump/status", configdump.ConfigdumpStatusView.as_view(), name="api-configdump-status"),
    path(f"{V1}/configdump/configdump.zip", configdump.ConfigdumpZipView.as_view(), name="api-configdump-zip"),
    path(f"{V1}/configdump", configdump.ConfigdumpView.as_view(), name="api-configdump"),
    path(f"{V1}/configdump/<str:type>", configdump.ConfigdumpTypeView.as_view(), name="api-configdump-type"),
    path(f"{V1}/configdump/<str:type>/<str:setting>", configdump.ConfigdumpSettingView.as_view(),
         name="api-configdump-setting"),
    path(f"{V1}/certificate/expire", operations.ExpireView.as_view(), name="api-certificate-expire"),
    path(f"{V1}/ca/<path:issuer_dn>/importcrl", operations.ImportCrlView.as_view(), name="api-ca-import-crl"),
    path(f"{V1}/system/service/<str:service_name>/run", operations.ServiceRunView.as_view(),
         name="api-system-service-run"),
    re_path(r"^ejbca/ejbca-rest-api/v1/ssh(?:/(?P<rest>.*))?$", operations.ssh_not_available, name="api-ssh"),
    re_path(r"^ejbca/ejbca-rest-api/etsi(?:/(?P<rest>.*))?$", operations.etsi_not_available, name="api-etsi"),
]
