"""REST: Trusted OAuth providers at ``/api/v1/oauth-providers/`` (EJBCA's REST API has no such resource).

Needs ``/system_functionality/edit_systemconfiguration`` (and, to change how a provider with role members is
trusted, the rights to edit those roles: see :mod:`pki.services.oauth`). The client secret is write-only: replies carry
``has_client_secret`` instead. Omitting ``client_secret`` on update keeps it; ``""`` removes it.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import actor_for_request
from ..models import TrustedOAuthProvider
from ..models.oauth import MAX_TOKEN_LIFETIME_LIMIT, SUPPORTED_ALGORITHMS, OAuthProviderType, UserClaim
from ..services import oauth as oauth_services
from .serializers import with_errors

TAGS = ["oauth-providers"]


class OAuthProviderSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    provider_type = serializers.ChoiceField(choices=OAuthProviderType.choices, required=False)
    label = serializers.CharField(max_length=128, required=False)
    issuer = serializers.CharField(max_length=512, required=False)
    discovery_url = serializers.CharField(max_length=512, required=False, allow_blank=True)
    authorization_endpoint = serializers.CharField(max_length=512, required=False, allow_blank=True)
    token_endpoint = serializers.CharField(max_length=512, required=False, allow_blank=True)
    userinfo_endpoint = serializers.CharField(max_length=512, required=False, allow_blank=True)
    jwks_uri = serializers.CharField(max_length=512, required=False, allow_blank=True)
    end_session_endpoint = serializers.CharField(max_length=512, required=False, allow_blank=True)
    client_id = serializers.CharField(max_length=255, required=False, allow_blank=True)
    client_secret = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False)
    has_client_secret = serializers.BooleanField(read_only=True)
    realm = serializers.CharField(max_length=255, required=False, allow_blank=True)
    audience = serializers.CharField(max_length=512, required=False, allow_blank=True)
    skip_audience_check = serializers.BooleanField(required=False)
    scopes = serializers.CharField(max_length=512, required=False)
    user_claim = serializers.ChoiceField(choices=UserClaim.choices, required=False)
    allowed_algorithms = serializers.ListField(child=serializers.ChoiceField(choices=SUPPORTED_ALGORITHMS),
                                               required=False, allow_empty=False)
    clock_skew = serializers.IntegerField(min_value=0, max_value=3600, required=False)
    max_token_lifetime = serializers.IntegerField(min_value=0, max_value=MAX_TOKEN_LIFETIME_LIMIT, required=False,
                                                  help_text="Seconds a token may be valid for at most (0: no limit)")


def _save(request: Request, provider: TrustedOAuthProvider | None) -> TrustedOAuthProvider:
    data = OAuthProviderSerializer(data=request.data, partial=provider is not None)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    secret = values.pop("client_secret", None)
    return oauth_services.save_provider(actor_for_request(request), values, provider, client_secret=secret)


class OAuthProviderListView(APIView):
    """``GET`` lists the providers, ``POST`` adds one (blank endpoints come from discovery)."""

    @extend_schema(tags=TAGS, operation_id="oauth_provider_list", summary="Trusted OAuth providers",
                   responses=with_errors({200: OAuthProviderSerializer(many=True)}, 401, 403))
    def get(self, request: Request) -> Response:
        rows = oauth_services.list_providers(actor_for_request(request))
        return Response(OAuthProviderSerializer(rows, many=True).data)

    @extend_schema(tags=TAGS, operation_id="oauth_provider_add", summary="Add a trusted OAuth provider",
                   request=OAuthProviderSerializer,
                   responses=with_errors({201: OAuthProviderSerializer}, 400, 401, 403, 409))
    def post(self, request: Request) -> Response:
        return Response(OAuthProviderSerializer(_save(request, None)).data, status=status.HTTP_201_CREATED)


class OAuthProviderDetailView(APIView):
    """One provider by id or label: ``GET``, ``PUT``/``PATCH`` (partial), ``DELETE``."""

    @extend_schema(tags=TAGS, operation_id="oauth_provider_get", summary="A trusted OAuth provider",
                   responses=with_errors({200: OAuthProviderSerializer}, 401, 403, 404))
    def get(self, request: Request, key: str) -> Response:
        return Response(OAuthProviderSerializer(oauth_services.get_provider(actor_for_request(request), key)).data)

    @extend_schema(tags=TAGS, operation_id="oauth_provider_edit", summary="Change a trusted OAuth provider",
                   request=OAuthProviderSerializer,
                   responses=with_errors({200: OAuthProviderSerializer}, 400, 401, 403, 404, 409))
    def put(self, request: Request, key: str) -> Response:
        provider = oauth_services.get_provider(actor_for_request(request), key)
        return Response(OAuthProviderSerializer(_save(request, provider)).data)

    patch = put

    @extend_schema(tags=TAGS, operation_id="oauth_provider_remove", summary="Remove a trusted OAuth provider",
                   responses=with_errors({204: None}, 401, 403, 404))
    def delete(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        oauth_services.delete_provider(who, oauth_services.get_provider(who, key))
        return Response(status=status.HTTP_204_NO_CONTENT)
