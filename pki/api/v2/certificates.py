"""EJBCA's ``/v2/certificate`` resource: status, count, certificate profile info, search and key recovery.

Thin views: the rules are the v1 resource's (``/ca_functionality/view_certificate`` and the CA's ``/ca/<id>``;
profile info needs ``/ca_functionality/view_certificate_profiles``), checked before the body is read.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ...auth.access import actor_for_request
from ...errors import NotFoundError, ValidationError
from ...models import Certificate, CertificateAuthority
from ...services.certificates import restrict
from ..lookups import authorized_ca, parse_flag, parse_serial, resolve_profile, service_revision
from ..serializers import StatusSerializer, with_errors
from .search import search_v2
from .serializers import (
    CertificateCountSerializer,
    CertificateProfileInfoSerializer,
    SearchRequestV2Serializer,
    SearchResponseV2Serializer,
    build_certificate_v2,
    ca_fingerprint,
)

TAGS = ["v2/certificate"]
VIEW_CERTIFICATE = "/ca_functionality/view_certificate"
VIEW_PROFILES = "/ca_functionality/view_certificate_profiles"
KEY_RECOVERY = "/ra_functionality/keyrecovery"
KEY_RECOVERY_UNAVAILABLE = (
    "Key recovery is not available: this installation keeps no copies of private keys to recover "
    "(EJBCA answers the same when key recovery is disabled in its system configuration).")


def v2_status() -> dict[str, str]:
    """EJBCA's resource status of a v2 resource (version 2.0)."""
    return {"status": "OK", "version": "2.0", "revision": service_revision()}


class CertificateStatusV2View(APIView):
    """``GET /v2/certificate/status``: any logged-in caller."""

    @extend_schema(tags=TAGS, operation_id="certificate_v2_status", summary="Status of the v2 certificate resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(v2_status())


class CertificateCountView(APIView):
    """``GET /v2/certificate/count?isActive=true``: certificates of the CAs the caller may use."""

    @extend_schema(
        tags=TAGS, operation_id="certificate_v2_count", summary="Number of issued (or only active) certificates",
        parameters=[OpenApiParameter("isActive", bool, description="true: count only valid, unrevoked certificates")],
        responses=with_errors({200: CertificateCountSerializer}, 401, 403))
    def get(self, request: Request) -> Response:
        actor = actor_for_request(request)
        actor.require(VIEW_CERTIFICATE)
        qs = restrict(Certificate.objects.all(), actor)
        if parse_flag(request.query_params, "isActive"):
            qs = qs.valid()
        return Response({"count": qs.count()})


class CertificateProfileInfoView(APIView):
    """``GET /v2/certificate/profile/{profile_name}``: the key types, sizes, curves and CAs a profile allows."""

    @extend_schema(
        tags=TAGS, operation_id="certificate_v2_profile_info", summary="What a certificate profile allows",
        parameters=[OpenApiParameter("profile_name", str, OpenApiParameter.PATH)],
        responses=with_errors({200: CertificateProfileInfoSerializer}, 400, 401, 403))
    def get(self, request: Request, profile_name: str) -> Response:
        """An unknown profile is 400, as EJBCA answers. Any CA of this installation issues with any profile, so
        ``available_cas`` lists the CAs the caller may use."""
        actor = actor_for_request(request)
        actor.require(VIEW_PROFILES)
        try:
            profile = resolve_profile(profile_name)
        except NotFoundError:
            raise ValidationError("Invalid search criteria, unknown certificate profile.",
                                  field="profile_name") from None
        cas = [name for pk, name in CertificateAuthority.objects.local().order_by("name").values_list("pk", "name")
               if actor.is_allowed(f"/ca/{pk}")]
        algs = list(profile.allowed_key_algorithms or [])
        return Response({
            "available_key_algs": ["ECDSA" if a == "EC" else a for a in algs],
            "available_bit_lenghts": sorted(int(s) for s in (profile.allowed_rsa_sizes or [])) if "RSA" in algs else [],
            "available_ecdsa_curves": list(profile.allowed_curves or []) if "EC" in algs else [],
            "available_cas": cas,
        })


class SearchV2View(APIView):
    """``POST /v2/certificate/search``."""

    @extend_schema(tags=TAGS, operation_id="certificate_v2_search",
                   summary="Search certificates, sorted and page by page",
                   request=SearchRequestV2Serializer,
                   responses=with_errors({200: SearchResponseV2Serializer}, 400, 401, 403))
    def post(self, request: Request) -> Response:
        """``pagination.current_page`` is 1-based; -1 answers only ``pagination_summary.total_certs``."""
        actor = actor_for_request(request)
        actor.require(VIEW_CERTIFICATE)  # the rule before the body
        data = SearchRequestV2Serializer(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        page = search_v2(actor, body["criteria"], body["pagination"]["page_size"],
                         body["pagination"]["current_page"], body.get("sort"))
        cas = {row.ca_id: row.ca for row in page.rows}
        fingerprints = {pk: ca_fingerprint(ca) for pk, ca in cas.items()}
        summary = {"page_size": page.page_size, "current_page": page.current_page}
        if page.total is not None:
            summary["total_certs"] = page.total
        return Response({"certificates": [build_certificate_v2(row, fingerprints) for row in page.rows],
                         "pagination_summary": summary})


class KeyRecoverView(APIView):
    """``PUT /v2/certificate/{issuer_dn}/{certificate_serial_number}/keyrecover``: not available here."""

    @extend_schema(
        tags=TAGS, operation_id="certificate_v2_keyrecover", summary="Mark a certificate for key recovery",
        request=None,
        parameters=[OpenApiParameter("issuer_dn", str, OpenApiParameter.PATH),
                    OpenApiParameter("certificate_serial_number", str, OpenApiParameter.PATH)],
        responses=with_errors({}, 400, 401, 403, 404))
    def put(self, request: Request, issuer_dn: str, certificate_serial_number: str) -> Response:
        """The caller's rights and the certificate are checked as for a real recovery, then the answer is EJBCA's
        for a disabled key recovery: 400, nothing changed."""
        actor = actor_for_request(request)
        actor.require(KEY_RECOVERY)
        serial = parse_serial(certificate_serial_number)
        ca = authorized_ca(actor, issuer_dn)
        if not Certificate.objects.filter(ca=ca, serial=serial).exists():
            raise ValidationError("No username found for the combination of the issuer DN and certificate serial "
                                  "number.", field="certificate_serial_number")
        raise ValidationError(KEY_RECOVERY_UNAVAILABLE, field="keyrecover")
