"""EJBCA-shaped REST endpoints for crypto tokens (``/ejbca/ejbca-rest-api/v1/cryptotoken/...``).

JSON names follow EJBCA: ``activation_code``; ``key_pair_alias``, ``key_alg``, ``key_spec``.
Interface code: it reads the caller's identity from the core's auth module and calls this app's services.
"""

from __future__ import annotations

import logging

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from pki.auth.access import actor_for_request
from pki.errors import AuthorizationDenied, PkiError, as_pki_error

from . import services
from .backends import KeySpec
from .errors import AuthenticationCodeError, CryptoTokenError, KeyPairExistsError, UnsupportedKeySpecError
from .models import CryptoToken

logger = logging.getLogger("cryptotokens.api")

_message = inline_serializer("CryptoTokenMessage", {"message": serializers.CharField()})



class Unprocessable(PkiError):
    """EJBCA's 422 of the crypto token resource: unknown token, wrong activation code, a key it cannot make."""

    http_status = 422
    error_code = "UNPROCESSABLE_ENTITY"


# Crypto token refusals EJBCA answers with 422 (CryptoTokenRestResource); others keep the core's mapping.
_UNPROCESSABLE = (AuthenticationCodeError, KeyPairExistsError, UnsupportedKeySpecError)


class ActivationSerializer(serializers.Serializer):
    activation_code = serializers.CharField(trim_whitespace=False, write_only=True)


class KeyGenerationSerializer(serializers.Serializer):
    key_pair_alias = serializers.CharField(max_length=255)
    key_alg = serializers.CharField(help_text="RSA, EC (ECDSA), Ed25519 or Ed448")
    key_spec = serializers.CharField(required=False, allow_blank=True, default="",
                                     help_text="RSA: 1024..8192; EC: P-256, secp384r1, brainpoolP256r1, ...")


def _allowed_token(request, name: str, action: str) -> CryptoToken:
    """The token, once the caller holds ``/cryptotoken/<action>/<id>``: the rule is checked before the body is
    read, so a caller without it learns nothing from validation errors (the service checks it again).

    A token the caller may neither view nor act on answers exactly as a missing one would, so the reply is
    no oracle for which tokens exist: a caller holding ``/cryptotoken/view`` or ``/cryptotoken/<action>``
    for every token gets 404 for both, any other caller a 403 that names no token. One it may view but not
    act on is a 403 naming the rule."""
    token = CryptoToken.objects.filter(name=name).first()
    actor = actor_for_request(request)
    if token is None or not (actor.is_allowed(f"/cryptotoken/view/{token.pk}")
                             or actor.is_allowed(f"/cryptotoken/{action}/{token.pk}")):
        if token is not None:
            logger.info("%s asked to %s crypto token %s it may not see: answered as for a missing token",
                        actor.name, action, token.pk)
        if actor.is_allowed("/cryptotoken/view") or actor.is_allowed(f"/cryptotoken/{action}"):
            raise Unprocessable(f"Unknown crypto token '{name}'.")
        raise AuthorizationDenied(f"/cryptotoken/{action}", actor.name)
    actor.require(f"/cryptotoken/{action}/{token.pk}")
    return token


def _spec(alg: str, spec: str) -> str:
    """EJBCA sends the algorithm and the size or curve apart ("RSA" + "2048", "ECDSA" + "P-256")."""
    alg = alg.strip().upper()
    if alg == "RSA":
        return f"RSA{spec.strip()}"
    if alg in {"EC", "ECDSA"}:
        return spec.strip()
    if alg in {"ED25519", "ED448"}:
        return alg.title().replace("ed", "Ed")
    raise Unprocessable(f"Unknown key algorithm '{alg}'.", field="key_alg")


class _TokenView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, _UNPROCESSABLE):
            exc = Unprocessable(str(exc))
        elif isinstance(exc, CryptoTokenError):
            exc = as_pki_error(exc)
        return super().handle_exception(exc)


class ActivateView(_TokenView):
    @extend_schema(request=ActivationSerializer, responses={200: None}, operation_id="cryptotoken_activate")
    def put(self, request, cryptotoken_name: str):
        """200 with no body, as EJBCA; a wrong activation code or an unknown token is 422."""
        token = _allowed_token(request, cryptotoken_name, "activate")
        data = ActivationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.activate(actor_for_request(request), token, data.validated_data["activation_code"])
        return Response(status=status.HTTP_200_OK)


class DeactivateView(_TokenView):
    @extend_schema(request=None, responses={200: _message}, operation_id="cryptotoken_deactivate")
    def put(self, request, cryptotoken_name: str):
        token = _allowed_token(request, cryptotoken_name, "deactivate")
        services.deactivate(actor_for_request(request), token)
        return Response({"message": f"Crypto token '{token.name}' is deactivated."})


class GenerateKeysView(_TokenView):
    @extend_schema(request=KeyGenerationSerializer, responses={200: None}, operation_id="cryptotoken_generatekeys")
    def post(self, request, cryptotoken_name: str):
        """200 with no body, as EJBCA; an alias in use or a key the token cannot make is 422."""
        token = _allowed_token(request, cryptotoken_name, "generate_keys")
        data = KeyGenerationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        spec = _spec(data.validated_data["key_alg"], data.validated_data["key_spec"])
        try:
            KeySpec.parse(spec)
        except CryptoTokenError as exc:
            raise Unprocessable(str(exc), field="key_spec") from None
        services.generate_key_pair(actor_for_request(request), token, data.validated_data["key_pair_alias"], spec)
        return Response(status=status.HTTP_200_OK)


_device_keys = inline_serializer("CryptoTokenDeviceKey", {
    "key_pair_alias": serializers.CharField(), "key_alg": serializers.CharField(), "key_spec": serializers.CharField(),
    "subject_key_id": serializers.CharField(), "registered": serializers.BooleanField(),
    "usable": serializers.BooleanField(), "problem": serializers.CharField(required=False)}, many=True)


class ListKeysView(_TokenView):
    """The keys on the token's device (EJBCA's ``listkeys``), registered here or not."""

    @extend_schema(request=None, responses={200: inline_serializer("CryptoTokenKeys", {
        "crypto_token": serializers.CharField(), "keys": _device_keys})}, operation_id="cryptotoken_listkeys")
    def get(self, request, cryptotoken_name: str):
        token = _allowed_token(request, cryptotoken_name, "view")
        keys = services.list_device_keys(actor_for_request(request), token)
        return Response({"crypto_token": token.name, "keys": [k.as_dict() for k in keys]})


class AdoptKeyView(_TokenView):
    """Register a key already on the device under its alias; the private key stays on the device."""

    @extend_schema(request=None, responses={201: _message}, operation_id="cryptotoken_adoptkey")
    def post(self, request, cryptotoken_name: str, key_pair_alias: str):
        token = _allowed_token(request, cryptotoken_name, "generate_keys")
        entry = services.adopt_key_pair(actor_for_request(request), token, key_pair_alias)
        return Response({"message": f"Registered key pair '{entry.alias}' ({entry.key_algorithm} {entry.key_spec}) "
                                    "from the device."}, status=status.HTTP_201_CREATED)


class RemoveKeysView(_TokenView):
    @extend_schema(request=None, responses={200: _message}, operation_id="cryptotoken_removekeys")
    def post(self, request, cryptotoken_name: str, key_pair_alias: str):
        token = _allowed_token(request, cryptotoken_name, "remove_keys")
        services.remove_key_pair(actor_for_request(request), token, key_pair_alias)
        return Response({"message": f"Removed key pair '{key_pair_alias}'."})


class StatusView(APIView):
    @extend_schema(responses={200: inline_serializer("CryptoTokenStatus", {
        "status": serializers.CharField(), "version": serializers.CharField(), "revision": serializers.CharField()})},
        operation_id="cryptotoken_status")
    def get(self, request):
        return Response({"status": "OK", "version": "1.0", "revision": "pki"})
