"""REST: peer connectors at ``/api/v1/peers/`` (CA node) and incoming peers at ``/api/v1/peers/incoming/``.

JSON only; refusals are ``{"error_code", "error_message"}`` like the rest of the API. Rules: ``/peer/view`` and
``/peer/modify`` (checked by the services; a change is refused before its body is read).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pki.api.serializers import with_errors
from pki.auth.access import actor_for_request
from pki.errors import ValidationError

from . import connector as runner
from . import services
from .choices import MODIFY_RULE, ConnectorState
from .transport import PeerError

TAGS = ["peers"]


class PeerConnectorSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.CharField()
    binding = serializers.CharField(help_text="Authentication key binding (remote authenticator)")
    enabled = serializers.BooleanField()
    state = serializers.ChoiceField(choices=ConnectorState.choices)
    remote_role = serializers.CharField(allow_blank=True)
    last_contact = serializers.DateTimeField(allow_null=True)
    requests_carried = serializers.IntegerField()
    failures = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    last_tls_error = serializers.CharField(allow_blank=True)
    last_tls_error_at = serializers.DateTimeField(allow_null=True)


class PeerConnectorCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    url = serializers.CharField(max_length=1024)
    binding = serializers.CharField(max_length=255)
    enabled = serializers.BooleanField(required=False, default=True)


class PeerConnectorEditSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False)
    url = serializers.CharField(max_length=1024, required=False)
    binding = serializers.CharField(max_length=255, required=False)
    enabled = serializers.BooleanField(required=False)


class IncomingPeerSerializer(serializers.Serializer):
    identity = serializers.CharField()
    subject = serializers.CharField()
    issuer = serializers.CharField()
    serial = serializers.CharField()
    fingerprint = serializers.CharField()
    first_seen = serializers.DateTimeField()
    last_contact = serializers.DateTimeField()
    requests_leased = serializers.IntegerField()
    answers = serializers.IntegerField()


class PeerTestSerializer(serializers.Serializer):
    node = serializers.CharField()
    peer = serializers.CharField()


def _data(request: Request, serializer_class) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class ConnectorListView(APIView):
    """``GET`` lists the outgoing connectors, ``POST`` adds one."""

    @extend_schema(tags=TAGS, operation_id="peer_list", summary="Outgoing peer connectors",
                   responses=with_errors({200: PeerConnectorSerializer(many=True)}, 401, 403))
    def get(self, request: Request) -> Response:
        rows = [services.connector_summary(c) for c in services.list_connectors(actor_for_request(request))]
        return Response(PeerConnectorSerializer(rows, many=True).data)

    @extend_schema(tags=TAGS, operation_id="peer_create", summary="Add an outgoing peer connector",
                   request=PeerConnectorCreateSerializer,
                   responses=with_errors({201: PeerConnectorSerializer}, 400, 401, 403, 409))
    def post(self, request: Request) -> Response:
        who = actor_for_request(request)
        who.require(MODIFY_RULE)
        d = _data(request, PeerConnectorCreateSerializer)
        c = services.add_connector(who, name=d["name"], url=d["url"], binding=d["binding"], enabled=d["enabled"])
        return Response(PeerConnectorSerializer(services.connector_summary(c)).data, status=status.HTTP_201_CREATED)


class ConnectorDetailView(APIView):
    """One connector by name or id: ``GET``, ``PATCH``, ``DELETE``."""

    @extend_schema(tags=TAGS, operation_id="peer_get", summary="A peer connector and its state",
                   responses=with_errors({200: PeerConnectorSerializer}, 401, 403, 404))
    def get(self, request: Request, key: str) -> Response:
        c = services.get_connector(actor_for_request(request), key)
        return Response(PeerConnectorSerializer(services.connector_summary(c)).data)

    @extend_schema(tags=TAGS, operation_id="peer_edit", summary="Change a peer connector",
                   request=PeerConnectorEditSerializer,
                   responses=with_errors({200: PeerConnectorSerializer}, 400, 401, 403, 404, 409))
    def patch(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        who.require(MODIFY_RULE)
        c = services.get_connector(who, key)
        d = _data(request, PeerConnectorEditSerializer)
        if not d:
            raise ValidationError("Nothing to change.")
        c = services.edit_connector(who, c, **d)
        return Response(PeerConnectorSerializer(services.connector_summary(c)).data)

    @extend_schema(tags=TAGS, operation_id="peer_delete", summary="Remove a peer connector",
                   responses=with_errors({204: None}, 401, 403, 404))
    def delete(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        services.remove_connector(who, services.get_connector(who, key))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TestView(APIView):
    """``POST``: connect once with mTLS and say hello (502 with the reason when it fails)."""

    @extend_schema(tags=TAGS, operation_id="peer_test", summary="Test a peer connector's connection",
                   request=None, responses=with_errors({200: PeerTestSerializer}, 401, 403, 404, 502))
    def post(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        who.require(MODIFY_RULE)
        c = services.get_connector(who, key)
        try:
            hello = runner.test_connection(c)
        except PeerError as exc:
            return Response({"error_code": 502, "error_message": exc.text}, status=502)
        return Response(PeerTestSerializer({"node": hello.get("node", ""), "peer": hello.get("peer", "")}).data)


class IncomingListView(APIView):
    """``GET``: the CA connectors that connected in to this RA/VA."""

    @extend_schema(tags=TAGS, operation_id="peer_incoming", summary="Incoming peer connections",
                   responses=with_errors({200: IncomingPeerSerializer(many=True)}, 401, 403))
    def get(self, request: Request) -> Response:
        rows = [services.incoming_summary(i) for i in services.list_incoming(actor_for_request(request))]
        return Response(IncomingPeerSerializer(rows, many=True).data)
