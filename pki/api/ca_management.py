"""EJBCA's CA management resource, ``/v1/ca_management``: the resource status and switching a CA's service on
and off (``PUT {ca_name}/activate|deactivate``, 200 with no body). The CA is named by its name (EJBCA's
``ca_name``); its id or subject DN work too. The service (``pki.services.cas.set_ca_active``) checks
``/ca_functionality/activate_ca`` and the CA's rule and writes the audit event."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..services.cas import set_ca_active
from .lookups import authorized_ca, status_payload
from .serializers import StatusSerializer, with_errors

TAGS = ["v1/ca_management"]
_CA_NAME = OpenApiParameter("ca_name", str, OpenApiParameter.PATH, description="Name of the CA")


class CaManagementStatusView(APIView):
    """``GET /v1/ca_management/status``: any logged-in caller."""

    @extend_schema(tags=TAGS, operation_id="ca_management_status", summary="Status of the CA management resource",
                   responses=with_errors({200: StatusSerializer}, 401))
    def get(self, request: Request) -> Response:
        return Response(status_payload())


class _Switch(APIView):
    active: bool = True

    def put(self, request: Request, ca_name: str) -> Response:
        actor = actor_for_request(request)
        actor.require("/ca_functionality/activate_ca")  # the function before the name: no oracle for CA names
        set_ca_active(actor, authorized_ca(actor, ca_name), self.active)
        return Response(status=http.HTTP_200_OK)


class CaActivateView(_Switch):
    """``PUT /v1/ca_management/{ca_name}/activate``."""

    active = True

    @extend_schema(tags=TAGS, operation_id="ca_management_activate", summary="Activate a CA (status ACTIVE)",
                   request=None, parameters=[_CA_NAME], responses=with_errors({200: None}, 400, 401, 403, 404))
    def put(self, request: Request, ca_name: str) -> Response:
        return super().put(request, ca_name)


class CaDeactivateView(_Switch):
    """``PUT /v1/ca_management/{ca_name}/deactivate``."""

    active = False

    @extend_schema(tags=TAGS, operation_id="ca_management_deactivate", summary="Deactivate a CA (status OFFLINE)",
                   request=None, parameters=[_CA_NAME], responses=with_errors({200: None}, 400, 401, 403, 404))
    def put(self, request: Request, ca_name: str) -> Response:
        return super().put(request, ca_name)
