"""CA endpoints of the REST API (EJBCA's ``/ejbca/ejbca-rest-api/v1/ca``)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.serialization import Encoding
from django.db.models import Max
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..crl import create_crl, latest_crl
from ..errors import NotFoundError
from ..models import CRL, CertificateAuthority
from ..services.cas import get_ca
from .serializers import CaInfoSerializer, CaListSerializer, CreateCrlSerializer, CrlSerializer

TAG = ["CA"]


def _bool(request: Request, *names: str) -> bool:
    for name in names:
        if name in request.query_params:
            return request.query_params[name].lower() in {"true", "1", "yes"}
    return False


def visible_ca(request: Request, ref: str) -> CertificateAuthority:
    """The CA named by id, name or DN, when the caller may see it (else 403 naming the rule)."""
    actor = actor_for_request(request)
    ca = get_ca(ref)
    actor.require(f"/ca/{ca.pk}")
    return ca


class StatusView(APIView):
    @extend_schema(tags=TAG, operation_id="ca_status", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response({"status": "OK", "version": "1.0", "revision": "pki"})


class CaListView(APIView):
    @extend_schema(tags=TAG, operation_id="ca_list", responses={200: CaListSerializer},
                   parameters=[OpenApiParameter("includeExternal", bool, description="List external CAs too")])
    def get(self, request: Request) -> Response:
        """The CAs the caller may see."""
        actor = actor_for_request(request)
        actor.require("/ca_functionality/view_ca")
        include_external = _bool(request, "includeExternal")
        cas = [ca for ca in CertificateAuthority.objects.all()
               if actor.is_allowed(f"/ca/{ca.pk}") and (include_external or not ca.is_external)]
        return Response({"certificate_authorities": [CaInfoSerializer.from_ca(ca) for ca in cas]})


class CaCertificateDownloadView(APIView):
    @extend_schema(tags=TAG, operation_id="ca_certificate_download",
                   responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, subject_dn: str) -> HttpResponse:
        """The CA's certificate chain in PEM, CA first."""
        ca = visible_ca(request, subject_dn)
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in ca.chain())
        response = HttpResponse(pem, content_type="text/plain")
        response["Content-Disposition"] = f'attachment; filename="{ca.name}.cacert.pem"'
        return response


class LatestCrlView(APIView):
    @extend_schema(tags=TAG, operation_id="ca_latest_crl", responses={200: CrlSerializer},
                   parameters=[OpenApiParameter("deltaCrl", bool), OpenApiParameter("crlPartitionIndex", int)])
    def get(self, request: Request, issuer_dn: str) -> Response:
        """The latest full (or delta) CRL of a CA, base64 DER."""
        ca = visible_ca(request, issuer_dn)
        crl = latest_crl(ca, delta=_bool(request, "deltaCrl", "deltacrl"))
        if crl is None:
            raise NotFoundError(f"CA '{ca.name}' has no CRL of that kind yet.")
        return Response({"crl": base64.b64encode(bytes(crl.der)).decode(), "response_format": "DER"})


class CreateCrlView(APIView):
    @extend_schema(tags=TAG, operation_id="ca_create_crl", request=None, responses={200: CreateCrlSerializer},
                   parameters=[OpenApiParameter("deltacrl", bool)])
    def post(self, request: Request, issuer_dn: str) -> Response:
        """Create a new CRL (or delta CRL) now."""
        ca = visible_ca(request, issuer_dn)
        create_crl(actor_for_request(request), ca, delta=_bool(request, "deltacrl", "deltaCrl"))
        numbers = CRL.objects.filter(ca=ca).values("is_delta").annotate(n=Max("crl_number"))
        latest = {row["is_delta"]: row["n"] for row in numbers}
        return Response({
            "issuer_dn": ca.subject_dn,
            "latest_crl_version": latest.get(False, 0),
            "latest_delta_crl_version": latest.get(True, 0),
            "latest_partition_crl_versions": {},
            "latest_partition_delta_crl_versions": {},
            "all_success": True,
        })
