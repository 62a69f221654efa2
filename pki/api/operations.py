"""The rest of EJBCA's v1 operations the core serves: certificates about to expire, importing a CA's CRL,
running a periodic service, and the SSH resource (answered honestly: there is no SSH CA here)."""

from __future__ import annotations

from datetime import timedelta

from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..choices import CertificateStatus
from ..crl_import import MAX_CRL_BYTES, import_crl
from ..errors import ValidationError
from ..services.certificates import CertificateQuery, search_certificates
from ..services.system import RULE as SYSTEM_RULE
from ..services.system import run_service
from .lookups import authorized_ca, b64, end_entity_profile_names, parse_int
from .serializers import with_errors

MAX_EXPIRE_RESULTS = 1000


class ExpireCertificateSerializer(serializers.Serializer):
    """One certificate (EJBCA's CertificateRestResponse in the expire list)."""

    certificate = serializers.CharField(help_text="Base64 of the DER certificate")
    serial_number = serializers.CharField()
    response_format = serializers.CharField()
    certificate_profile = serializers.CharField(allow_null=True)
    end_entity_profile = serializers.CharField(allow_null=True)


class CertificatesListSerializer(serializers.Serializer):
    certificates = ExpireCertificateSerializer(many=True)


class PaginationComponentSerializer(serializers.Serializer):
    more_results = serializers.BooleanField()
    next_offset = serializers.IntegerField()
    number_of_results = serializers.IntegerField(help_text="How many remain after this page")


class ExpiringCertificatesSerializer(serializers.Serializer):
    """EJBCA's ExpiringCertificatesRestResponse."""

    pagination_rest_response_component = PaginationComponentSerializer()
    certificates_rest_response = CertificatesListSerializer()


def _expiring(cert, names: dict[int, str]) -> dict:
    eep = names.get(cert.end_entity_profile_id)
    return {"certificate": b64(bytes(cert.der)), "serial_number": cert.serial.upper(), "response_format": "DER",
            "certificate_profile": cert.certificate_profile.name if cert.certificate_profile else None,
            "end_entity_profile": eep or None}


class ExpireView(APIView):
    """``GET /v1/certificate/expire?days=&offset=&maxNumberOfResults=``: active certificates of the CAs the caller
    may see that expire within ``days`` days, soonest first, paged as EJBCA pages them."""

    @extend_schema(
        tags=["v1/certificate"], operation_id="certificate_expire", summary="Certificates about to expire",
        parameters=[OpenApiParameter("days", int, required=True, description="Expiring within this many days"),
                    OpenApiParameter("offset", int, description="First result to return (from 0)"),
                    OpenApiParameter("maxNumberOfResults", int, description=f"Page size (1 to {MAX_EXPIRE_RESULTS})")],
        responses=with_errors({200: ExpiringCertificatesSerializer}, 400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require("/ca_functionality/view_certificate")
        params = request.query_params
        if params.get("days") in (None, ""):
            raise ValidationError("days is required: certificates expiring within this many days.", field="days")
        days = parse_int(params, "days", minimum=0)
        if days > 36500:
            raise ValidationError("days must be 36500 or less.", field="days")
        offset = parse_int(params, "offset", minimum=0)
        limit = parse_int(params, "maxNumberOfResults", default=MAX_EXPIRE_RESULTS, minimum=1)
        if limit > MAX_EXPIRE_RESULTS:
            raise ValidationError(f"maxNumberOfResults must be {MAX_EXPIRE_RESULTS} or less.",
                                  field="maxNumberOfResults")
        now = timezone.now()
        qs = search_certificates(actor, CertificateQuery(status=CertificateStatus.ACTIVE, expires_after=now,
                                                         expires_before=now + timedelta(days=days)))
        qs = qs.order_by("not_after", "pk")
        total = qs.count()
        page = list(qs[offset:offset + limit])
        processed = offset + limit
        names = end_entity_profile_names({c.end_entity_profile_id for c in page})
        return Response({
            "pagination_rest_response_component": {"more_results": total > processed, "next_offset": processed,
                                                   "number_of_results": max(total - processed, 0)},
            "certificates_rest_response": {"certificates": [_expiring(c, names) for c in page]},
        })


class ImportCrlSerializer(serializers.Serializer):
    crlFile = serializers.FileField(help_text="The CRL, DER (PEM accepted)")  # noqa: N815 (EJBCA's form field)
    crlPartitionIndex = serializers.IntegerField(required=False, default=0)  # noqa: N815


class ImportCrlView(APIView):
    """``POST /v1/ca/{issuer_dn}/importcrl`` (multipart ``crlFile``): 200 with no body when imported."""

    parser_classes = [MultiPartParser]  # EJBCA takes the CRL as multipart/form-data: let through deliberately

    @extend_schema(
        tags=["v1/ca"], operation_id="ca_import_crl", summary="Import a CRL of a CA known here",
        parameters=[OpenApiParameter("issuer_dn", str, OpenApiParameter.PATH,
                                     description="The CA's subject DN, URL-encoded (its name or id also work)")],
        request={"multipart/form-data": ImportCrlSerializer},
        responses=with_errors({200: None}, 400, 401, 403, 404, 415),
    )
    def post(self, request: Request, issuer_dn: str) -> Response:
        actor = actor_for_request(request)
        actor.require("/ca_functionality/create_crl")  # the rule before the body
        ca = authorized_ca(actor, issuer_dn)
        upload = request.FILES.get("crlFile")
        if upload is None:
            raise ValidationError("No CRL file: send it as the multipart field 'crlFile'.", field="crlFile")
        partition = str(request.data.get("crlPartitionIndex") or "0").strip()
        if partition not in ("0", ""):
            raise ValidationError("CRL partitions are not used here: crlPartitionIndex must be 0.",
                                  field="crlPartitionIndex")
        if upload.size > MAX_CRL_BYTES:
            raise ValidationError(f"The CRL file is larger than {MAX_CRL_BYTES} bytes.", field="crlFile")
        import_crl(actor, ca, upload.read())
        return Response(status=http.HTTP_200_OK)


class ServiceRunView(APIView):
    """``PUT /v1/system/service/{service_name}/run`` (EJBCA's method; POST also accepted): 200, no body."""

    def _run(self, request: Request, service_name: str) -> Response:
        actor = actor_for_request(request)
        actor.require(SYSTEM_RULE)
        run_service(actor, service_name)
        return Response(status=http.HTTP_200_OK)

    @extend_schema(tags=["v1/system"], operation_id="system_service_run", summary="Run a periodic service now",
                   request=None,
                   parameters=[OpenApiParameter("service_name", str, OpenApiParameter.PATH,
                                                description="regenerate-crls (the CRL updater), "
                                                            "purge-scep-transactions, ...")],
                   responses=with_errors({200: None}, 401, 403, 404, 503))
    def put(self, request: Request, service_name: str) -> Response:
        return self._run(request, service_name)

    @extend_schema(tags=["v1/system"], operation_id="system_service_run_post", summary="Run a periodic service now",
                   request=None,
                   parameters=[OpenApiParameter("service_name", str, OpenApiParameter.PATH)],
                   responses=with_errors({200: None}, 401, 403, 404, 503))
    def post(self, request: Request, service_name: str) -> Response:
        return self._run(request, service_name)


SSH_MESSAGE = ("This installation has no SSH CA: EJBCA's v1/ssh resource (SSH CA public keys, SSH certificates) "
               "is not available here.")


@csrf_exempt  # nothing is changed; a POST gets the same honest 404 as a GET
def ssh_not_available(request, rest: str = "") -> JsonResponse:
    """Every ``/v1/ssh/...`` path: 404 with a message that says why (no SSH CA), not a generic 'no resource'."""
    return JsonResponse({"error_code": 404, "error_message": SSH_MESSAGE}, status=404)


ETSI_MESSAGE = ("This installation has no ETSI ITS (C-ITS) enrolment CA: EJBCA's etsi/v1 resource (validating "
                "authorization requests of ITS stations) is not available here.")


@csrf_exempt  # nothing is changed; a POST gets the same honest 404 as a GET
def etsi_not_available(request, rest: str = "") -> JsonResponse:
    """Every ``/etsi/...`` path of EJBCA's REST definition: 404 saying why (no ETSI ITS CA)."""
    return JsonResponse({"error_code": 404, "error_message": ETSI_MESSAGE}, status=404)
