"""REST: internal key bindings at ``/api/v1/keybindings/`` (EJBCA has no REST resource for them).

JSON only; refusals are ``{"error_code", "error_message"}`` like the rest of the API. A binding is named in
paths by its name or id. Rules: ``/internalkeybinding/view|modify|delete`` (checked by the services), plus
the CA rules for issuing and the token rules for using or generating keys.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pki.api.serializers import with_errors
from pki.auth.access import actor_for_request
from pki.errors import NotFoundError
from pki.models import CertificateProfile
from pki.services.cas import get_ca

from . import services
from .choices import BindingStatus, BindingType, CertificateState
from .models import InternalKeyBinding

TAGS = ["keybindings"]


class KeyBindingTrustEntrySerializer(serializers.Serializer):
    ca = serializers.CharField(max_length=255, help_text="CA name or id")
    serial = serializers.CharField(max_length=64, required=False, allow_blank=True, default="",
                                   help_text="Certificate serial number (hex); empty: any certificate of the CA")


class KeyBindingTrustedOutSerializer(serializers.Serializer):
    ca_id = serializers.IntegerField()
    serial = serializers.CharField(allow_blank=True)


class KeyBindingCertificateInfoSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=CertificateState.choices)
    days_to_expiry = serializers.IntegerField(allow_null=True)
    serial = serializers.CharField(allow_blank=True)
    issuer_dn = serializers.CharField(allow_blank=True)
    subject_dn = serializers.CharField(allow_blank=True)
    not_after = serializers.DateTimeField(allow_null=True)


class KeyBindingSerializer(serializers.Serializer):
    """A binding as the API shows it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.ChoiceField(source="binding_type", choices=BindingType.choices)
    status = serializers.ChoiceField(choices=BindingStatus.choices)
    crypto_token = serializers.CharField(source="crypto_token.name")
    key_pair_alias = serializers.CharField()
    next_key_pair_alias = serializers.CharField(allow_blank=True)
    signature_algorithm = serializers.CharField(allow_blank=True)
    trusted_certificates = KeyBindingTrustedOutSerializer(many=True)
    protocol_and_cipher_suites = serializers.ListField(child=serializers.CharField())
    certificate = serializers.SerializerMethodField()

    @extend_schema(responses=KeyBindingCertificateInfoSerializer)
    def get_certificate(self, obj: InternalKeyBinding) -> dict:
        return KeyBindingCertificateInfoSerializer(services.certificate_status(obj)).data


class KeyBindingCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    type = serializers.ChoiceField(choices=BindingType.choices)
    crypto_token = serializers.CharField(max_length=255, help_text="Crypto token name or id")
    key_pair_alias = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    key_spec = serializers.CharField(max_length=32, required=False, allow_blank=True, default="",
                                     help_text="Generate a new key of this specification (P-256, RSA2048, ...)")
    signature_algorithm = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    trusted_certificates = KeyBindingTrustEntrySerializer(many=True, required=False)
    protocol_and_cipher_suites = serializers.ListField(child=serializers.CharField(max_length=128), required=False,
                                                       max_length=64)


class KeyBindingEditSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False)
    signature_algorithm = serializers.CharField(max_length=64, required=False, allow_blank=True)
    next_key_pair_alias = serializers.CharField(max_length=255, required=False, allow_blank=True)
    trusted_certificates = KeyBindingTrustEntrySerializer(many=True, required=False)
    protocol_and_cipher_suites = serializers.ListField(child=serializers.CharField(max_length=128), required=False,
                                                       max_length=64)


class KeyBindingStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=BindingStatus.choices)


class KeyBindingCsrSerializer(serializers.Serializer):
    next_key = serializers.BooleanField(required=False, default=False)
    subject_dn = serializers.CharField(max_length=2048, required=False, allow_blank=True, default="")


class KeyBindingCsrOutSerializer(serializers.Serializer):
    csr = serializers.CharField(help_text="PEM PKCS#10 request")


class KeyBindingIssueSerializer(serializers.Serializer):
    ca = serializers.CharField(max_length=1024, help_text="CA name, id or subject DN")
    certificate_profile = serializers.CharField(max_length=255)
    subject_dn = serializers.CharField(max_length=2048, required=False, allow_blank=True, default="")
    validity = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    next_key = serializers.BooleanField(required=False, default=False)


class KeyBindingRenewSerializer(serializers.Serializer):
    ca = serializers.CharField(max_length=1024, required=False, allow_blank=True, default="")
    certificate_profile = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    key_spec = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class KeyBindingImportSerializer(serializers.Serializer):
    certificate = serializers.CharField(max_length=65536, help_text="PEM certificate")


class KeyBindingCertificateOutSerializer(serializers.Serializer):
    certificate = serializers.CharField(help_text="PEM certificate")


def _data(request: Request, serializer_class) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def _profile(name: str) -> CertificateProfile:
    found = CertificateProfile.objects.filter(name=name).first()
    if found is None:
        raise NotFoundError(f"Certificate profile '{name}' does not exist.", field="certificate_profile")
    return found


def _out(binding: InternalKeyBinding) -> dict:
    binding = InternalKeyBinding.objects.select_related("crypto_token", "certificate").get(pk=binding.pk)
    return KeyBindingSerializer(binding).data


class KeyBindingListView(APIView):
    """``GET`` lists bindings (``?type=``), ``POST`` creates one on a token key or a new key."""

    @extend_schema(tags=TAGS, operation_id="keybinding_list", summary="Internal key bindings",
                   responses=with_errors({200: KeyBindingSerializer(many=True)}, 400, 401, 403))
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("type") or None
        if kind is not None and kind not in BindingType.values:
            kind = "-"  # an unknown type lists nothing
        rows = services.list_bindings(actor_for_request(request), kind)
        return Response(KeyBindingSerializer(rows, many=True).data)

    @extend_schema(tags=TAGS, operation_id="keybinding_create", summary="Create an internal key binding",
                   request=KeyBindingCreateSerializer,
                   responses=with_errors({201: KeyBindingSerializer}, 400, 401, 403, 404, 409, 503))
    def post(self, request: Request) -> Response:
        who = actor_for_request(request)
        who.require(services.MODIFY)  # before reading the body: a caller without the rule learns nothing from it
        d = _data(request, KeyBindingCreateSerializer)
        binding = services.create_binding(
            who, name=d["name"], binding_type=d["type"], crypto_token=d["crypto_token"],
            key_pair_alias=d["key_pair_alias"], key_spec=d["key_spec"], signature_algorithm=d["signature_algorithm"],
            trusted_certificates=d.get("trusted_certificates"),
            protocol_and_cipher_suites=d.get("protocol_and_cipher_suites"))
        return Response(_out(binding), status=status.HTTP_201_CREATED)


class KeyBindingDetailView(APIView):
    """One binding by name or id: ``GET``, ``PATCH`` (partial), ``DELETE``."""

    @extend_schema(tags=TAGS, operation_id="keybinding_get", summary="An internal key binding",
                   responses=with_errors({200: KeyBindingSerializer}, 401, 403, 404))
    def get(self, request: Request, key: str) -> Response:
        return Response(_out(services.get_binding(actor_for_request(request), key)))

    @extend_schema(tags=TAGS, operation_id="keybinding_edit", summary="Change an internal key binding",
                   request=KeyBindingEditSerializer,
                   responses=with_errors({200: KeyBindingSerializer}, 400, 401, 403, 404, 409))
    def patch(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        d = _data(request, KeyBindingEditSerializer)
        services.edit_binding(who, binding, **d)
        return Response(_out(binding))

    @extend_schema(tags=TAGS, operation_id="keybinding_delete", summary="Delete an internal key binding",
                   responses=with_errors({204: None}, 401, 403, 404, 409))
    def delete(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        services.delete_binding(who, services.get_binding(who, key))
        return Response(status=status.HTTP_204_NO_CONTENT)


class StatusView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_set_status", summary="Activate or disable a key binding",
                   request=KeyBindingStatusSerializer,
                   responses=with_errors({200: KeyBindingSerializer}, 400, 401, 403, 404))
    def put(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        services.set_status(who, binding, _data(request, KeyBindingStatusSerializer)["status"])
        return Response(_out(binding))


class CsrView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_csr", summary="A PKCS#10 request for the current or next key",
                   request=KeyBindingCsrSerializer,
                   responses=with_errors({200: KeyBindingCsrOutSerializer}, 400, 401, 403, 404, 503))
    def post(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        d = _data(request, KeyBindingCsrSerializer)
        pem = services.generate_csr(who, binding, next_key=d["next_key"], subject_dn=d["subject_dn"] or None)
        return Response({"csr": pem.decode()})


class NextKeyView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_next_key", summary="Generate the next key pair",
                   request=KeyBindingRenewSerializer,
                   responses=with_errors({200: KeyBindingSerializer}, 400, 401, 403, 404, 503))
    def post(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        services.generate_next_key(who, binding, _data(request, KeyBindingRenewSerializer)["key_spec"])
        return Response(_out(binding))


class IssueView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_issue",
                   summary="Issue the binding's certificate from a local CA with a certificate profile",
                   request=KeyBindingIssueSerializer,
                   responses=with_errors({200: KeyBindingSerializer}, 400, 401, 403, 404, 409, 503))
    def post(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        d = _data(request, KeyBindingIssueSerializer)
        services.issue_certificate(who, binding, ca=get_ca(d["ca"]), profile=_profile(d["certificate_profile"]),
                                   subject_dn=d["subject_dn"] or None, validity=d["validity"] or None,
                                   next_key=d["next_key"])
        return Response(_out(binding))


class ImportView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_import", summary="Import a certificate issued elsewhere",
                   request=KeyBindingImportSerializer,
                   responses=with_errors({200: KeyBindingSerializer}, 400, 401, 403, 404))
    def post(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        services.import_certificate(who, binding, _data(request, KeyBindingImportSerializer)["certificate"])
        return Response(_out(binding))


class RenewView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_renew",
                   summary="Generate the next key, certify it and switch to it",
                   request=KeyBindingRenewSerializer,
                   responses=with_errors({200: KeyBindingSerializer}, 400, 401, 403, 404, 409, 503))
    def post(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        binding = services.get_binding(who, key)
        d = _data(request, KeyBindingRenewSerializer)
        services.renew(who, binding, ca=get_ca(d["ca"]) if d["ca"] else None,
                       profile=_profile(d["certificate_profile"]) if d["certificate_profile"] else None,
                       key_spec=d["key_spec"])
        return Response(_out(binding))


class CertificateView(APIView):
    @extend_schema(tags=TAGS, operation_id="keybinding_certificate", summary="The binding's certificate (PEM)",
                   responses=with_errors({200: KeyBindingCertificateOutSerializer}, 401, 403, 404))
    def get(self, request: Request, key: str) -> Response:
        who = actor_for_request(request)
        return Response({"certificate": services.export_certificate(who, services.get_binding(who, key)).decode()})
