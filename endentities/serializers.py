"""Request and response shapes of the end entity REST endpoints, with EJBCA's JSON names.

Request serializers read and check bodies (a wrong type or a missing field is a 400 naming the field);
the ``build_*`` functions make the response bodies, which carry exactly EJBCA's fields.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from pki.api.lookups import b64
from pki.models import Certificate
from pki.x509.altnames import ejbca_spelling

from .choices import EndEntityStatus, TokenType
from .models import EndEntity

TOKEN_NAMES = [t.name for t in TokenType]
STATUS_NAMES = [s.name for s in EndEntityStatus]
SEARCH_PROPERTIES = ["QUERY", "STATUS", "END_ENTITY_PROFILE", "CERTIFICATE_PROFILE", "CA", "MODIFIED_BEFORE",
                     "MODIFIED_AFTER"]
RESPONSE_FORMATS = ["DER", "PEM", "PKCS7"]


class ExtensionDataSerializer(serializers.Serializer):
    """One extended-information entry (EJBCA's ExtendedInformationRestRequestComponent)."""

    name = serializers.CharField(help_text="e.g. 1.3.6.1.5.5.7.1.24 (custom extension OID) or an option name")
    value = serializers.CharField(allow_blank=True)


class AddEndEntitySerializer(serializers.Serializer):
    """``POST /v1/endentity`` (EJBCA's AddEndEntityRestRequest)."""

    username = serializers.CharField(max_length=255, required=False, allow_blank=True)
    password = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    subject_dn = serializers.CharField(required=False, allow_blank=True, max_length=2048)
    subject_alt_name = serializers.CharField(required=False, allow_blank=True)
    email = serializers.CharField(required=False, allow_blank=True, max_length=255)
    extension_data = ExtensionDataSerializer(many=True, required=False)
    ca_name = serializers.CharField(required=False, allow_blank=True)
    certificate_profile_name = serializers.CharField(required=False, allow_blank=True)
    end_entity_profile_name = serializers.CharField(required=False, allow_blank=True)
    token = serializers.ChoiceField(choices=TOKEN_NAMES, required=False, allow_null=True,
                                    help_text="USERGENERATED, P12, JKS, PEM or BCFKS; omitted: the profile's default")
    account_binding_id = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                               help_text="Refused when set: there is no ACME account binding here")
    key_recoverable = serializers.BooleanField(required=False, default=False)
    status = serializers.ChoiceField(choices=STATUS_NAMES, required=False, allow_null=True)
    start_time = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                       help_text="Certificate validity start: ISO 8601, 'yyyy-MM-dd HH:mm' or "
                                                 "'days:hours:minutes' (the profile must use it)")
    end_time = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                     help_text="Certificate validity end, as start_time")
    send_notification = serializers.BooleanField(required=False, allow_null=True, default=None)
    custom_data = ExtensionDataSerializer(many=True, required=False,
                                          help_text="Refused when set: EJBCA's custom data has no use here")
    card_number = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                        help_text="Refused when set: smart card numbers are not kept here")
    certificate_serial_number = serializers.CharField(
        required=False, allow_blank=True, allow_null=True,
        help_text="Refused when set: certificate serial numbers are always random here")


class SetStatusSerializer(serializers.Serializer):
    """``POST /v1/endentity/{name}/setstatus`` (EJBCA's SetEndEntityStatusRestRequest)."""

    password = serializers.CharField(required=False, allow_null=True, trim_whitespace=False)
    token = serializers.ChoiceField(choices=TOKEN_NAMES, required=False, allow_null=True)
    status = serializers.ChoiceField(choices=STATUS_NAMES)


class RevokeEndEntitySerializer(serializers.Serializer):
    """``PUT /v1/endentity/{name}/revoke`` (EJBCA's EndEntityRevocationRestRequest)."""

    reason_code = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10)
    delete = serializers.BooleanField(required=False, default=False)


@extend_schema_serializer(component_name="SearchEndEntityCriterion")
class SearchCriterionSerializer(serializers.Serializer):
    property = serializers.ChoiceField(choices=SEARCH_PROPERTIES)
    value = serializers.CharField(allow_blank=True)
    operation = serializers.ChoiceField(choices=["EQUAL", "LIKE", "BEFORE", "AFTER"])


class SearchEndEntitiesSerializer(serializers.Serializer):
    """``POST /v1/endentity/search`` (EJBCA's SearchEndEntitiesRestRequest)."""

    max_number_of_results = serializers.IntegerField(min_value=1, max_value=500)
    current_page = serializers.IntegerField(required=False, min_value=0, default=1,
                                            help_text="1-based, as EJBCA's (0 is read as the first page)")
    criteria = SearchCriterionSerializer(many=True, allow_empty=False)


class EndEntityResponseSerializer(serializers.Serializer):
    """One end entity found (EJBCA's EndEntityRestResponse)."""

    username = serializers.CharField()
    dn = serializers.CharField()
    subject_alt_name = serializers.CharField()
    email = serializers.CharField()
    status = serializers.ChoiceField(choices=STATUS_NAMES)
    token = serializers.ChoiceField(choices=TOKEN_NAMES)
    extension_data = ExtensionDataSerializer(many=True)


class SearchEndEntitiesResponseSerializer(serializers.Serializer):
    end_entities = EndEntityResponseSerializer(many=True)
    more_results = serializers.BooleanField()


def build_end_entity(ee: EndEntity) -> dict:
    """EJBCA's EndEntityRestResponse; extension data lists the stored extended information as name/value."""
    info = ee.extended_information or {}
    data = [{"name": k, "value": str(v)} for k, v in sorted(info.items())
            if k not in {"extensions_der", "extension_data"} and not isinstance(v, (dict, list))]
    data += [{"name": f"{oid}.value", "value": str(v)} for oid, v in sorted((info.get("extension_data") or {}).items())]
    return {
        "username": ee.username,
        "dn": ee.subject_dn,
        "subject_alt_name": ejbca_spelling(ee.subject_alt_name),
        "email": ee.email,
        "status": EndEntityStatus(ee.status).name,
        "token": TokenType(ee.token_type).name,
        "extension_data": data,
    }


class Pkcs10EnrollSerializer(serializers.Serializer):
    """``POST /v1/certificate/pkcs10enroll`` (EJBCA's EnrollCertificateRestRequest)."""

    certificate_request = serializers.CharField(help_text="PKCS#10, PEM or base64 DER")
    certificate_profile_name = serializers.CharField(required=False, allow_blank=True)
    end_entity_profile_name = serializers.CharField(required=False, allow_blank=True)
    certificate_authority_name = serializers.CharField(required=False, allow_blank=True)
    username = serializers.CharField(max_length=255)
    password = serializers.CharField(trim_whitespace=False)
    account_binding_id = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    include_chain = serializers.BooleanField(required=False, default=False)
    email = serializers.CharField(required=False, allow_blank=True)
    response_format = serializers.ChoiceField(choices=RESPONSE_FORMATS, required=False, default="DER")


class EnrollKeystoreSerializer(serializers.Serializer):
    """``POST /v1/certificate/enrollkeystore`` (EJBCA's KeyStoreRestRequest)."""

    username = serializers.CharField(max_length=255)
    password = serializers.CharField(trim_whitespace=False)
    key_alg = serializers.CharField(required=False, default="RSA")
    key_spec = serializers.CharField(required=False, allow_blank=True, default="")


class CertificateResponseSerializer(serializers.Serializer):
    """An enrolled certificate or keystore (EJBCA's CertificateRestResponse)."""

    certificate = serializers.CharField(help_text="base64 DER certificate, PEM text, base64 PKCS#7, or the "
                                                  "base64 keystore (enrollkeystore)")
    serial_number = serializers.CharField(help_text="Hex serial number, upper case")
    response_format = serializers.CharField(help_text="DER, PEM, PKCS7; PKCS12, JKS, PEM or BCFKS for keystores")
    certificate_chain = serializers.ListField(child=serializers.CharField(), required=False)
    certificate_profile = serializers.CharField()
    end_entity_profile = serializers.CharField()


def _encode(cert: x509.Certificate, fmt: str) -> str:
    if fmt == "PEM":
        return cert.public_bytes(Encoding.PEM).decode()
    return b64(cert.public_bytes(Encoding.DER))


def build_certificate_response(row: Certificate, cert: x509.Certificate, chain: list[x509.Certificate],
                               include_chain: bool, fmt: str, end_entity_profile: str) -> dict:
    """EJBCA's CertificateRestResponse of a pkcs10enroll (chain after the certificate, issuer first)."""
    if fmt == "PKCS7":
        body = b64(pkcs7.serialize_certificates([cert, *(chain if include_chain else [])], Encoding.DER))
    else:
        body = _encode(cert, fmt)
    out = {
        "certificate": body,
        "serial_number": format(cert.serial_number, "X"),
        "response_format": fmt,
        "certificate_profile": row.certificate_profile.name if row.certificate_profile_id else "",
        "end_entity_profile": end_entity_profile,
    }
    if include_chain:
        out["certificate_chain"] = [_encode(c, "PEM" if fmt == "PEM" else "DER") for c in chain]
    return out


def build_keystore_response(keystore: bytes, response_format: str, row: Certificate, chain: list[x509.Certificate],
                            end_entity_profile: str) -> dict:
    """EJBCA's CertificateRestResponse of an enrollkeystore: the keystore, base64, in ``certificate``."""
    return {
        "certificate": b64(keystore),
        "serial_number": format(int(row.serial, 16), "X"),
        "response_format": response_format,
        "certificate_chain": [b64(c.public_bytes(Encoding.DER)) for c in chain],
        "certificate_profile": row.certificate_profile.name if row.certificate_profile_id else "",
        "end_entity_profile": end_entity_profile,
    }
