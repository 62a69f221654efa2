"""CA endpoints of the REST API, at EJBCA's ``/ejbca/ejbca-rest-api/v1/ca`` paths.

A CA in a path is its subject DN, URL-encoded as EJBCA clients send it (``CN%3DManagementCA%2CO%3D...``);
its name or id work too.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..crl import create_crl, latest_crl
from ..errors import NotFoundError, ValidationError
from ..models import CertificateAuthority
from .lookups import authorized_ca, b64, parse_flag, parse_int, status_payload
from .serializers import (
    CaListSerializer,
    CreateCrlSerializer,
    CrlSerializer,
    StatusSerializer,
    build_ca_info,
    with_errors,
)

TAGS = ["v1/ca"]


def _dn_param(name: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.PATH,
                            description="The CA's subject DN, URL-encoded (its name or id also work)")


class CaStatusView(APIView):
    """``GET /v1/ca/status``: any logged-in caller."""

    @extend_schema(tags=TAGS, operation_id="ca_status", summary="Status of the CA resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(status_payload())


class CaListView(APIView):
    """``GET /v1/ca``."""

    @extend_schema(
        tags=TAGS, operation_id="ca_list", summary="The CAs the caller may use",
        parameters=[OpenApiParameter("includeExternal", bool, description="Also list external (imported) CAs")],
        responses=with_errors({200: CaListSerializer}, 401, 403),
    )
    def get(self, request: Request) -> Response:
        """Needs ``/ca_functionality/view_ca``; lists only the CAs the caller has ``/ca/<id>`` for."""
        actor = actor_for_request(request)
        actor.require("/ca_functionality/view_ca")
        include_external = parse_flag(request.query_params, "includeExternal")
        cas = [
            ca for ca in CertificateAuthority.objects.order_by("name")
            if actor.is_allowed(f"/ca/{ca.pk}") and (include_external or not ca.is_external)
        ]
        return Response({"certificate_authorities": [build_ca_info(ca) for ca in cas]})


class CaChainDownloadView(APIView):
    """``GET /v1/ca/{subject_dn}/certificate/download``: a PEM file, as EJBCA sends it."""

    def perform_content_negotiation(self, request, force=False):
        # A PEM file whatever the client says it accepts; refusals still come back as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(tags=TAGS, operation_id="ca_certificate_download", summary="The CA's certificate chain in PEM",
                   parameters=[_dn_param("subject_dn")],
                   responses=with_errors({(200, "text/plain"): OpenApiTypes.STR}, 401, 403, 404))
    def get(self, request: Request, subject_dn: str) -> HttpResponse:
        """The CA's certificate first, then its issuers up to the root."""
        ca = authorized_ca(actor_for_request(request), subject_dn)
        pem = b"".join(cert.public_bytes(Encoding.PEM) for cert in ca.chain())
        response = HttpResponse(pem, content_type="text/plain; charset=us-ascii")
        response["Content-Disposition"] = f'attachment; filename="{ca.name}.cacert.pem"'
        return response


class LatestCrlView(APIView):
    """``GET /v1/ca/{issuer_dn}/getLatestCrl``."""

    @extend_schema(
        tags=TAGS, operation_id="ca_latest_crl", summary="The CA's latest CRL",
        parameters=[_dn_param("issuer_dn"),
                    OpenApiParameter("deltaCrl", bool, description="true: the latest delta CRL"),
                    OpenApiParameter("crlPartitionIndex", int, description="0 (CRL partitions are not used)")],
        responses=with_errors({200: CrlSerializer}, 400, 401, 403, 404),
    )
    def get(self, request: Request, issuer_dn: str) -> Response:
        """``crl`` is null when the CA has issued no such CRL yet, as in EJBCA."""
        ca = authorized_ca(actor_for_request(request), issuer_dn)
        delta = parse_flag(request.query_params, "deltaCrl", "deltacrl")
        partition = parse_int(request.query_params, "crlPartitionIndex")
        crl = latest_crl(ca, delta=delta) if partition == 0 else None
        return Response({"crl": b64(bytes(crl.der)) if crl else None, "response_format": "DER"})


class CreateCrlView(APIView):
    """``POST /v1/ca/{issuer_dn}/createcrl``: the CRL service checks ``/ca_functionality/create_crl``."""

    @extend_schema(
        tags=TAGS, operation_id="ca_create_crl", summary="Issue a CRL now", request=None,
        parameters=[_dn_param("issuer_dn"),
                    OpenApiParameter("deltacrl", bool, description="true: a full CRL and a delta CRL on it")],
        responses=with_errors({200: CreateCrlSerializer}, 400, 401, 403, 404, 503),
    )
    def post(self, request: Request, issuer_dn: str) -> Response:
        """A full CRL; with ``deltacrl=true`` a full CRL and then a delta CRL on it, as EJBCA's createcrl does.
        An unknown CA is a 400 (EJBCA's answer here), for callers allowed to know which CAs exist."""
        actor = actor_for_request(request)
        try:
            ca = authorized_ca(actor, issuer_dn)
        except NotFoundError as exc:
            raise ValidationError(exc.message, field="issuer_dn") from None
        delta = parse_flag(request.query_params, "deltacrl", "deltaCrl")
        with transaction.atomic():  # both or neither
            create_crl(actor, ca)
            if delta:
                create_crl(actor, ca, delta=True)
        full, last_delta = latest_crl(ca, delta=False), latest_crl(ca, delta=True)
        return Response({
            "issuer_dn": issuer_dn.strip(),  # EJBCA repeats the DN it was given
            "latest_crl_version": full.crl_number if full else 0,
            "latest_delta_crl_version": last_delta.crl_number if last_delta else 0,
            "latest_partition_crl_versions": {},
            "latest_partition_delta_crl_versions": {},
            "all_success": True,
        })
