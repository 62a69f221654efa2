"""Request and response shapes of the REST API, with EJBCA's JSON names.

The EJBCA-shaped responses carry exactly EJBCA's fields: clients generated from EJBCA's OpenAPI
document (Keyfactor's SDKs among them) reject a response with a field their model does not know.
The ``build_*`` functions make the response bodies; the serializer classes describe them for the
OpenAPI schema and read request bodies.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from rest_framework import serializers

from ..choices import RevocationReason
from ..models import Certificate, CertificateAuthority
from ..x509.altnames import ejbca_spelling
from ..x509.dn import format_dn
from .lookups import EJBCA_REASON_NAMES, NOT_REVOKED, b64, iso

# --- errors and status -----------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every refusal: the HTTP status again and a message (EJBCA's ExceptionErrorRestResponse)."""

    error_code = serializers.IntegerField()
    error_message = serializers.CharField()


class StatusSerializer(serializers.Serializer):
    """``GET .../status`` of a resource (EJBCA's RestResourceStatusRestResponse)."""

    status = serializers.CharField()
    version = serializers.CharField()
    revision = serializers.CharField()


# --- CAs and CRLs ----------------------------------------------------------------------------------


class CaInfoSerializer(serializers.Serializer):
    """One CA in ``GET /v1/ca`` (EJBCA's CaInfoRestResponse)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    subject_dn = serializers.CharField()
    issuer_dn = serializers.CharField()
    expiration_date = serializers.DateTimeField(allow_null=True)
    external = serializers.BooleanField(help_text="An imported CA (certificate only, no key here)")


def build_ca_info(ca: CertificateAuthority) -> dict:
    """EJBCA's CaInfoRestResponse of a CA; ``issuer_dn`` is the DN of the CA certificate's issuer."""
    cert = ca.certificate
    return {
        "id": ca.pk,
        "name": ca.name,
        "subject_dn": ca.subject_dn,
        "issuer_dn": format_dn(cert.issuer) if cert else ca.subject_dn,
        "expiration_date": iso(cert.not_valid_after_utc) if cert else None,
        "external": ca.is_external,
    }


class CaListSerializer(serializers.Serializer):
    certificate_authorities = CaInfoSerializer(many=True)


class CrlSerializer(serializers.Serializer):
    """``getLatestCrl`` (EJBCA's CrlRestResponse): ``crl`` is null when the CA has no such CRL yet."""

    crl = serializers.CharField(allow_null=True, help_text="The CRL, base64 of its DER encoding")
    response_format = serializers.CharField(help_text="Always DER")


class CreateCrlSerializer(serializers.Serializer):
    """``createcrl`` (EJBCA's CreateCrlRestResponse); CRL partitions are not used here, so their maps are empty."""

    issuer_dn = serializers.CharField()
    latest_crl_version = serializers.IntegerField()
    latest_delta_crl_version = serializers.IntegerField()
    latest_partition_crl_versions = serializers.DictField(child=serializers.IntegerField())
    latest_partition_delta_crl_versions = serializers.DictField(child=serializers.IntegerField())
    all_success = serializers.BooleanField()


# --- revocation ------------------------------------------------------------------------------------


class RevokeStatusSerializer(serializers.Serializer):
    """``revoke`` and ``revocationstatus`` (EJBCA's RevokeStatusRestResponse).

    ``issuer_dn`` and ``serial_number`` repeat the request's path values, as EJBCA does; the date and the
    message are left out when there are none.
    """

    issuer_dn = serializers.CharField()
    serial_number = serializers.CharField()
    revocation_reason = serializers.CharField(help_text="KEY_COMPROMISE, ...; NOT_REVOKED when not revoked")
    revocation_date = serializers.DateTimeField(required=False)
    invalidity_date = serializers.DateTimeField(required=False, help_text="When the revoker said the key was "
                                                                          "compromised, if it said so")
    message = serializers.CharField(required=False)
    revoked = serializers.BooleanField()


def reason_name(cert: Certificate) -> str:
    """EJBCA's name of a certificate's revocation reason, ``NOT_REVOKED`` for a valid one."""
    if not cert.is_revoked or cert.revocation_reason is None:
        return NOT_REVOKED
    return EJBCA_REASON_NAMES[RevocationReason(cert.revocation_reason)]


def build_revoke_status(cert: Certificate, issuer_dn: str, serial_number: str, message: str | None = None) -> dict:
    """EJBCA's RevokeStatusRestResponse of a certificate, repeating the caller's ``issuer_dn`` and serial."""
    body = {
        "issuer_dn": issuer_dn,
        "serial_number": serial_number,
        "revocation_reason": reason_name(cert),
        "revoked": cert.is_revoked,
    }
    if cert.is_revoked and cert.revoked_at:
        body["revocation_date"] = iso(cert.revoked_at)
    if cert.is_revoked and cert.invalidity_date:
        body["invalidity_date"] = iso(cert.invalidity_date)
    if message:
        body["message"] = message
    return body


# --- search ----------------------------------------------------------------------------------------


class SearchCriterionSerializer(serializers.Serializer):
    """One criterion; property and operation are matched without regard to case, as EJBCA does."""

    property = serializers.CharField(
        help_text="QUERY, SERIAL_NUMBER, USERNAME, SUBJECT_DN, SUBJECT_ALT_NAME, FINGERPRINT, CA, "
                  "CERTIFICATE_PROFILE, END_ENTITY_PROFILE, STATUS, ISSUED_DATE, EXPIRE_DATE, REVOCATION_DATE, "
                  "UPDATE_TIME")
    value = serializers.CharField(help_text="A string, an ISO 8601 date, or the name of a CA or profile")
    operation = serializers.CharField(
        default="EQUAL", help_text="EQUAL or LIKE for strings, BEFORE or AFTER for dates")


class SearchRequestSerializer(serializers.Serializer):
    """EJBCA's SearchCertificatesRestRequest: every criterion must match (values of one list property: any)."""

    max_number_of_results = serializers.IntegerField(min_value=1, default=25)
    criteria = SearchCriterionSerializer(many=True, allow_empty=False)


class CertificateResultSerializer(serializers.Serializer):
    """One certificate in the search result (EJBCA's CertificateRestResponse)."""

    certificate = serializers.CharField(
        help_text="Base64 of the base64 DER, exactly as EJBCA's v1 search encodes it: decode twice")
    serial_number = serializers.CharField(help_text="Hex, upper case")
    response_format = serializers.CharField(help_text="Always DER")
    certificate_profile = serializers.CharField(allow_null=True)
    end_entity_profile = serializers.CharField(allow_null=True)


def build_search_result(cert: Certificate, profile_names: dict[int, str] | None = None) -> dict:
    """EJBCA's CertificateRestResponse of one search hit (``profile_names``: end entity profile names by id)."""
    # EJBCA's v1 search puts base64 text into a byte field that its JSON layer encodes once more.
    return {
        "certificate": b64(b64(bytes(cert.der)).encode("ascii")),
        "serial_number": cert.serial.upper(),
        "response_format": "DER",
        "certificate_profile": cert.certificate_profile.name if cert.certificate_profile else None,
        "end_entity_profile": (profile_names or {}).get(cert.end_entity_profile_id),
    }


class SearchResponseSerializer(serializers.Serializer):
    certificates = CertificateResultSerializer(many=True)
    more_results = serializers.BooleanField()


# --- native read -----------------------------------------------------------------------------------


class CertificateDetailSerializer(serializers.Serializer):
    """One certificate, decoded, with its PEM (``/api/v1/certificates/<fingerprint>/``)."""

    fingerprint_sha256 = serializers.CharField()
    fingerprint_sha1 = serializers.CharField()
    serial_number = serializers.CharField(help_text="Hex, upper case")
    issuer_dn = serializers.CharField()
    subject_dn = serializers.CharField()
    subject_alt_name = serializers.CharField()
    not_before = serializers.DateTimeField()
    not_after = serializers.DateTimeField()
    status = serializers.CharField(help_text="ACTIVE, REVOKED or ON_HOLD")
    revoked = serializers.BooleanField()
    revocation_reason = serializers.CharField(help_text="EJBCA's name; NOT_REVOKED when not revoked")
    revocation_date = serializers.DateTimeField(allow_null=True)
    expired = serializers.BooleanField()
    username = serializers.CharField()
    certificate_profile = serializers.CharField(allow_null=True)
    ca = serializers.CharField(help_text="Name of the issuing CA")
    ca_id = serializers.IntegerField()
    key_algorithm = serializers.CharField()
    is_ca = serializers.BooleanField()
    pem = serializers.CharField()


def build_certificate_detail(cert: Certificate) -> dict:
    """The native read of one certificate: its stored fields, decoded values and PEM."""
    parsed: x509.Certificate = cert.certificate
    return {
        "fingerprint_sha256": cert.fingerprint_sha256,
        "fingerprint_sha1": parsed.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 (an identifier, not security)
        "serial_number": cert.serial.upper(),
        "issuer_dn": cert.issuer_dn,
        "subject_dn": cert.subject_dn,
        "subject_alt_name": ejbca_spelling(cert.subject_alt_name),
        "not_before": iso(cert.not_before),
        "not_after": iso(cert.not_after),
        "status": cert.status,
        "revoked": cert.is_revoked,
        "revocation_reason": reason_name(cert),
        "revocation_date": iso(cert.revoked_at) if cert.is_revoked else None,
        "expired": cert.is_expired,
        "username": cert.username,
        "certificate_profile": cert.certificate_profile.name if cert.certificate_profile else None,
        "ca": cert.ca.name,
        "ca_id": cert.ca_id,
        "key_algorithm": cert.key_algorithm,
        "is_ca": cert.is_ca,
        "pem": parsed.public_bytes(Encoding.PEM).decode("ascii"),
    }


def with_errors(ok: dict, *codes: int) -> dict:
    """An ``extend_schema`` responses map: ``ok`` plus the JSON error body for each status in ``codes``."""
    return {**ok, **{code: ErrorSerializer for code in codes}}
