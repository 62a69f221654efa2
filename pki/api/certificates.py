"""Certificate endpoints: EJBCA's ``/v1/certificate/...`` (status, revoke, revocation status) and the
native reads of one certificate under ``/api/v1/`` (EJBCA's v1 API has no such read)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import Actor, actor_for_request
from ..choices import RevocationReason
from ..errors import NotFoundError
from ..models import Certificate
from ..revocation import find_certificate, revoke
from .lookups import authorized_ca, parse_date, parse_fingerprint, parse_reason, parse_serial, status_payload
from .serializers import (
    CertificateDetailSerializer,
    RevokeStatusSerializer,
    StatusSerializer,
    build_certificate_detail,
    build_revoke_status,
    with_errors,
)

TAGS = ["v1/certificate"]
NATIVE_TAGS = ["certificates"]
VIEW_CERTIFICATE = "/ca_functionality/view_certificate"

_ISSUER = OpenApiParameter("issuer_dn", str, OpenApiParameter.PATH,
                           description="Subject DN of the issuing CA, URL-encoded (its name or id also work)")
_SERIAL = OpenApiParameter("certificate_serial_number", str, OpenApiParameter.PATH,
                           description="Hex serial number, optionally with a '0x' prefix")


def _certificate(actor: Actor, ca_ref: str, serial: str) -> Certificate:
    """The certificate by issuing CA and serial; the CA's rule is checked before anything is looked up."""
    ca = authorized_ca(actor, ca_ref)
    return find_certificate(ca.pk, parse_serial(serial))


class CertificateStatusView(APIView):
    """``GET /v1/certificate/status``: any logged-in caller."""

    @extend_schema(tags=TAGS, operation_id="certificate_status", summary="Status of the certificate resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(status_payload())


class RevocationStatusView(APIView):
    """``GET /v1/certificate/{issuer_dn}/{serial}/revocationstatus``: needs view_certificate and the CA's rule."""

    @extend_schema(tags=TAGS, operation_id="certificate_revocation_status",
                   summary="Whether a certificate is revoked", parameters=[_ISSUER, _SERIAL],
                   responses=with_errors({200: RevokeStatusSerializer}, 400, 401, 403, 404))
    def get(self, request: Request, issuer_dn: str, certificate_serial_number: str) -> Response:
        actor = actor_for_request(request)
        actor.require(VIEW_CERTIFICATE)
        cert = _certificate(actor, issuer_dn, certificate_serial_number)
        return Response(build_revoke_status(cert, issuer_dn, certificate_serial_number))


class RevokeView(APIView):
    """``PUT /v1/certificate/{issuer_dn}/{serial}/revoke``: the revocation service checks the rules and audits."""

    @extend_schema(
        tags=TAGS, operation_id="certificate_revoke", summary="Revoke a certificate", request=None,
        parameters=[
            _ISSUER, _SERIAL,
            OpenApiParameter("reason", str, description=(
                "UNSPECIFIED (default), KEY_COMPROMISE, CA_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED, "
                "CESSATION_OF_OPERATION, CERTIFICATE_HOLD, PRIVILEGES_WITHDRAWN, AA_COMPROMISE; "
                "REMOVE_FROM_CRL (or NOT_REVOKED) takes a certificate off hold")),
            OpenApiParameter("date", str, description="Revocation date, ISO 8601, not in the future"),
            OpenApiParameter("invalidity_date", str, description="ISO 8601, not in the future: when the key was "
                                                                 "compromised; returned by revocationstatus"),
        ],
        responses=with_errors({200: RevokeStatusSerializer}, 400, 401, 403, 404, 409),
    )
    def put(self, request: Request, issuer_dn: str, certificate_serial_number: str) -> Response:
        """Already revoked: 409. A certificate on hold can be revoked for good with another reason."""
        actor = actor_for_request(request)
        params = request.query_params
        reason = parse_reason(params.get("reason"))
        date = parse_date(params["date"], "date") if params.get("date") else None
        invalidity = parse_date(params["invalidity_date"], "invalidity_date") if params.get("invalidity_date") else None
        cert = revoke(actor, _certificate(actor, issuer_dn, certificate_serial_number), reason, date,
                      invalidity_date=invalidity)
        lifted = reason == RevocationReason.REMOVE_FROM_CRL
        message = "Successfully reactivated" if lifted else "Successfully revoked"
        return Response(build_revoke_status(cert, issuer_dn, certificate_serial_number, message))


class CertificateByFingerprintView(APIView):
    """``GET /api/v1/certificates/{fingerprint}/``."""

    @extend_schema(
        tags=NATIVE_TAGS, operation_id="certificate_read",
        summary="One certificate by its SHA-256 fingerprint",
        parameters=[OpenApiParameter("fingerprint", str, OpenApiParameter.PATH,
                                     description="SHA-256 fingerprint, hex (':' separators allowed)")],
        responses=with_errors({200: CertificateDetailSerializer}, 400, 401, 403, 404),
    )
    def get(self, request: Request, fingerprint: str) -> Response:
        actor = actor_for_request(request)
        actor.require(VIEW_CERTIFICATE)
        wanted = parse_fingerprint(fingerprint)
        cert = Certificate.objects.select_related("ca", "certificate_profile").filter(
            fingerprint_sha256=wanted).first()
        # A certificate of a CA the caller may not use answers as a missing one: no oracle for what exists.
        if cert is None or not actor.is_allowed(f"/ca/{cert.ca_id}"):
            raise NotFoundError(f"No certificate with SHA-256 fingerprint {wanted}.")
        return Response(build_certificate_detail(cert))


class CertificateBySerialView(APIView):
    """``GET /api/v1/cas/{ca}/certificates/{serial}/``."""

    @extend_schema(
        tags=NATIVE_TAGS, operation_id="certificate_read_by_serial",
        summary="One certificate by its issuing CA and serial number",
        parameters=[OpenApiParameter("ca", str, OpenApiParameter.PATH,
                                     description="The issuing CA's name, id or URL-encoded subject DN"),
                    OpenApiParameter("serial", str, OpenApiParameter.PATH, description="Hex serial number")],
        responses=with_errors({200: CertificateDetailSerializer}, 400, 401, 403, 404),
    )
    def get(self, request: Request, ca: str, serial: str) -> Response:
        actor = actor_for_request(request)
        actor.require(VIEW_CERTIFICATE)
        cert = _certificate(actor, ca, serial)
        return Response(build_certificate_detail(cert))
