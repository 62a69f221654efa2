"""Certificate endpoints of the REST API: EJBCA's ``/v1/certificate/...`` and a native read."""

from __future__ import annotations

from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..errors import NotFoundError, ValidationError
from ..models import Certificate
from ..revocation import find_certificate, revoke
from ..services.certificates import CertificateQuery, restrict, search_certificates
from ..services.profiles import get_profile
from .ca import visible_ca
from .serializers import (
    CertificateDetailSerializer,
    CertificateResultSerializer,
    RevokeStatusSerializer,
    SearchRequestSerializer,
    SearchResponseSerializer,
)

TAG = ["Certificate"]


def _date(value: str, field: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"'{value}' is not an ISO 8601 date.", field=field) from None
    if dt.tzinfo is None:
        raise ValidationError(f"'{value}' needs a time zone (e.g. Z).", field=field)
    return dt


def _visible_certificate(request: Request, issuer_dn: str, serial: str) -> Certificate:
    actor = actor_for_request(request)
    actor.require("/ca_functionality/view_certificate")
    ca = visible_ca(request, issuer_dn)
    return find_certificate(ca.pk, serial)


class StatusView(APIView):
    @extend_schema(tags=TAG, operation_id="certificate_status", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response({"status": "OK", "version": "1.0", "revision": "pki"})


class RevocationStatusView(APIView):
    @extend_schema(tags=TAG, operation_id="certificate_revocation_status", responses={200: RevokeStatusSerializer})
    def get(self, request: Request, issuer_dn: str, certificate_serial_number: str) -> Response:
        cert = _visible_certificate(request, issuer_dn, certificate_serial_number)
        message = "Certificate is revoked" if cert.is_revoked else "Certificate is not revoked"
        return Response(RevokeStatusSerializer.from_certificate(cert, message))


class RevokeView(APIView):
    @extend_schema(tags=TAG, operation_id="certificate_revoke", request=None, responses={200: RevokeStatusSerializer},
                   parameters=[OpenApiParameter("reason", str, description="e.g. KEY_COMPROMISE, CERTIFICATE_HOLD"),
                               OpenApiParameter("date", str, description="ISO 8601 revocation date (past)")])
    def put(self, request: Request, issuer_dn: str, certificate_serial_number: str) -> Response:
        cert = _visible_certificate(request, issuer_dn, certificate_serial_number)
        reason = request.query_params.get("reason", "UNSPECIFIED")
        date = _date(request.query_params["date"], "date") if request.query_params.get("date") else None
        cert = revoke(actor_for_request(request), cert, reason, date)
        message = "Successfully revoked" if cert.is_revoked else "Successfully reactivated"
        return Response(RevokeStatusSerializer.from_certificate(cert, message))


def _query_from_criteria(request: Request, criteria: list[dict]) -> CertificateQuery:
    query = CertificateQuery()
    for c in criteria:
        prop, value, op = c["property"], c["value"], c["operation"]
        if prop == "QUERY":
            query.text = value
        elif prop == "SERIAL_NUMBER":
            query.serial = value
        elif prop == "USERNAME":
            query.username = value
        elif prop == "SUBJECT_DN":
            query.subject = value
        elif prop == "FINGERPRINT":
            query.fingerprint = value
        elif prop == "CA":
            query.ca = visible_ca(request, value)
        elif prop == "CERTIFICATE_PROFILE":
            query.profile = get_profile(value)
        elif prop == "STATUS":
            mapping = {"CERT_ACTIVE": "ACTIVE", "CERT_REVOKED": "REVOKED", "CERT_ON_HOLD": "ON_HOLD"}
            query.status = mapping.get(value.upper(), value.upper())
        elif prop in {"ISSUED_DATE", "EXPIRE_DATE", "REVOCATION_DATE"}:
            if op not in {"BEFORE", "AFTER"}:
                raise ValidationError(f"{prop} takes the operation BEFORE or AFTER.", field="criteria")
            when = _date(value, "criteria")
            attr = {"ISSUED_DATE": "issued", "EXPIRE_DATE": "expires", "REVOCATION_DATE": "revoked"}[prop]
            setattr(query, f"{attr}_{op.lower()}", when)
    return query


class SearchView(APIView):
    @extend_schema(tags=TAG, operation_id="certificate_search", request=SearchRequestSerializer,
                   responses={200: SearchResponseSerializer})
    def post(self, request: Request) -> Response:
        """Search certificates; every criterion must match (several QUERY values: the last wins)."""
        data = SearchRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        limit = data.validated_data["max_number_of_results"]
        query = _query_from_criteria(request, data.validated_data["criteria"])
        rows = list(search_certificates(actor_for_request(request), query)[: limit + 1])
        return Response({
            "certificates": [CertificateResultSerializer.from_certificate(c) for c in rows[:limit]],
            "more_results": len(rows) > limit,
        })


class CertificateDetailView(APIView):
    @extend_schema(tags=["Certificate (native)"], operation_id="certificate_read",
                   responses={200: CertificateDetailSerializer})
    def get(self, request: Request, fingerprint: str) -> Response:
        """One certificate by its SHA-256 fingerprint, decoded, with its PEM."""
        actor = actor_for_request(request)
        actor.require("/ca_functionality/view_certificate")
        qs = restrict(Certificate.objects.select_related("ca", "certificate_profile"), actor)
        cert = qs.filter(fingerprint_sha256=fingerprint.replace(":", "").lower()).first()
        if cert is None:
            raise NotFoundError("No such certificate.")
        return Response(CertificateDetailSerializer.from_certificate(cert))
