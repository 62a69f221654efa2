"""Approvals over REST: EJBCA's ``POST v1/certificate/{request_id}/finalize`` (complete an approved enrollment)
and the approval requests themselves under ``/api/v1/approvals/`` (EJBCA's REST API has none: a pki path):
list, read one in full, approve or reject with a comment.

An action that needs approval answers ``202 {"error_code": 202, "error_message": ..., "request_id": N}``
wherever it was asked (EJBCA's WaitingForApprovalException), see :mod:`pki.api.errors`.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.serialization import Encoding
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..errors import ValidationError
from ..models.approvals import ApprovalRequest, ApprovalStatus
from ..services import approvals
from .serializers import with_errors

TAGS = ["v1/certificate"]
NATIVE_TAGS = ["approvals"]
MAX_LIST = 500
_ID = OpenApiParameter("request_id", int, OpenApiParameter.PATH, description="Approval request id")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FinalizeSerializer(serializers.Serializer):
    """EJBCA's FinalizeRestRequest."""

    response_format = serializers.ChoiceField(choices=["P12", "BCFKS", "JKS", "DER"], required=False, default="DER")
    password = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False,
                                     max_length=1024)
    key_alg = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=16)
    key_spec = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=32)


class CertificateResponse(serializers.Serializer):
    """EJBCA's CertificateRestResponse."""

    certificate = serializers.CharField(help_text="base64 DER certificate, or the base64 keystore")
    serial_number = serializers.CharField()
    response_format = serializers.CharField()
    certificate_chain = serializers.ListField(child=serializers.CharField())
    certificate_profile = serializers.CharField()
    end_entity_profile = serializers.CharField()


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ApprovalRequestSerializer(serializers.Serializer):
    """One approval request (secrets in its data left out)."""

    id = serializers.IntegerField()
    action = serializers.CharField()
    operation = serializers.CharField()
    status = serializers.CharField()
    approvals_required = serializers.IntegerField()
    approvals = serializers.ListField(child=serializers.DictField())
    ca = serializers.CharField(allow_null=True)
    certificate_profile = serializers.CharField(allow_null=True)
    username = serializers.CharField()
    subject_dn = serializers.CharField()
    data = serializers.DictField()
    certificate_request = serializers.CharField(allow_null=True)
    requested_by = serializers.CharField()
    interface = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    result = serializers.CharField()


def describe(req: ApprovalRequest) -> dict:
    """The JSON of one request: the full request, its decisions, never a sealed secret."""
    return {
        "id": req.pk, "action": req.action, "operation": req.operation,
        "status": ApprovalStatus.EXPIRED.value if req.is_expired else req.status,
        "approvals_required": req.approvals_required,
        "approvals": [{"admin": a.admin, "approved": a.approved, "comment": a.comment,
                       "time": a.created_at.isoformat()} for a in req.approvals.all()],
        "ca": req.ca.name if req.ca_id else None,
        "certificate_profile": req.certificate_profile.name if req.certificate_profile_id else None,
        "username": req.username, "subject_dn": req.subject_dn,
        "data": {k: v for k, v in (req.data or {}).items() if k != "password"},
        "certificate_request": _b64(bytes(req.request_der)) if req.request_der else None,
        "requested_by": req.requested_by, "interface": req.interface,
        "created_at": req.created_at.isoformat(), "expires_at": req.expires_at.isoformat(), "result": req.result,
    }


class FinalizeView(APIView):
    """``POST /v1/certificate/{request_id}/finalize``: the certificate (DER) or keystore of an approved
    enrollment, in EJBCA's CertificateRestResponse; 202 while it still waits."""

    @extend_schema(tags=TAGS, operation_id="certificate_finalize", parameters=[_ID],
                   summary="Finalize an enrollment after its approval", request=FinalizeSerializer,
                   responses=with_errors({201: CertificateResponse}, 202, 400, 401, 403, 404))
    def post(self, request: Request, request_id: str) -> Response:
        actor = actor_for_request(request)
        body = FinalizeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        opts = body.validated_data
        done = approvals.finalize(actor, request_id, response_format=opts["response_format"],
                                  password=opts.get("password"), key_alg=opts.get("key_alg"),
                                  key_spec=opts.get("key_spec"))
        row = done.row
        payload = {
            "certificate": _b64(done.keystore if done.keystore is not None else
                                done.certificate.public_bytes(Encoding.DER)),
            "serial_number": format(done.certificate.serial_number, "X"),
            "response_format": done.response_format,
            "certificate_chain": [_b64(c.public_bytes(Encoding.DER)) for c in done.chain],
            "certificate_profile": row.certificate_profile.name if row.certificate_profile_id else "",
            "end_entity_profile": done.end_entity_profile,
        }
        return Response(payload, status=http.HTTP_201_CREATED)


class ApprovalListView(APIView):
    """``GET /api/v1/approvals/?status=WAITING``: the requests the caller may see."""

    @extend_schema(tags=NATIVE_TAGS, operation_id="approvals_list", summary="Approval requests",
                   parameters=[OpenApiParameter("status", str, description="WAITING (default), APPROVED, "
                                                "REJECTED, EXPIRED, FAILED")],
                   responses=with_errors({200: ApprovalRequestSerializer(many=True)}, 400, 401, 403))
    def get(self, request: Request) -> Response:
        actor = actor_for_request(request)
        wanted = request.query_params.get("status", ApprovalStatus.WAITING)
        if wanted not in ApprovalStatus.values:
            raise ValidationError(f"status must be one of {', '.join(ApprovalStatus.values)}.", field="status")
        qs = approvals.with_status(approvals.visible(actor), wanted).prefetch_related("approvals")[:MAX_LIST]
        return Response([describe(r) for r in qs])


class ApprovalDetailView(APIView):
    """``GET /api/v1/approvals/{request_id}/``: one request in full."""

    @extend_schema(tags=NATIVE_TAGS, operation_id="approvals_read", parameters=[_ID], summary="One approval request",
                   responses=with_errors({200: ApprovalRequestSerializer}, 401, 404))
    def get(self, request: Request, request_id: str) -> Response:
        return Response(describe(approvals.get_request(actor_for_request(request), request_id)))


class _DecisionView(APIView):
    decision = "approve"

    def _decide(self, request: Request, request_id: str) -> Response:
        actor = actor_for_request(request)
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        req = approvals.get_request(actor, request_id)  # one the caller may not see is a missing one
        req = approvals.decide(actor, req.pk, approve=self.decision == "approve",
                               comment=body.validated_data["comment"])
        return Response(describe(ApprovalRequest.objects.get(pk=req.pk)))


class ApproveView(_DecisionView):
    """``POST /api/v1/approvals/{request_id}/approve`` with ``{"comment": ...}``."""

    @extend_schema(tags=NATIVE_TAGS, operation_id="approvals_approve", parameters=[_ID],
                   summary="Approve an approval request (the last approval carries it out)",
                   request=DecisionSerializer,
                   responses=with_errors({200: ApprovalRequestSerializer}, 400, 401, 403, 404, 409))
    def post(self, request: Request, request_id: str) -> Response:
        return self._decide(request, request_id)


class RejectView(_DecisionView):
    """``POST /api/v1/approvals/{request_id}/reject`` with ``{"comment": ...}``."""

    decision = "reject"

    @extend_schema(tags=NATIVE_TAGS, operation_id="approvals_reject", parameters=[_ID],
                   summary="Reject an approval request", request=DecisionSerializer,
                   responses=with_errors({200: ApprovalRequestSerializer}, 400, 401, 403, 404, 409))
    def post(self, request: Request, request_id: str) -> Response:
        return self._decide(request, request_id)
