"""Request and response shapes of the REST API, with EJBCA's JSON names."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from rest_framework import serializers

from ..models import Certificate, CertificateAuthority
from ..x509.dn import format_dn


def iso(dt) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


class CaInfoSerializer(serializers.Serializer):
    """One CA in ``GET /v1/ca``."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    subject_dn = serializers.CharField()
    issuer_dn = serializers.CharField()
    expiration_date = serializers.CharField(allow_null=True)
    external = serializers.BooleanField()

    @staticmethod
    def from_ca(ca: CertificateAuthority) -> dict:
        cert = ca.certificate
        return {
            "id": ca.pk,
            "name": ca.name,
            "subject_dn": ca.subject_dn,
            "issuer_dn": format_dn(cert.issuer) if cert else "",
            "expiration_date": iso(cert.not_valid_after_utc) if cert else None,
            "external": ca.is_external,
        }


class CaListSerializer(serializers.Serializer):
    certificate_authorities = CaInfoSerializer(many=True)


class CrlSerializer(serializers.Serializer):
    crl = serializers.CharField(help_text="Base64 DER")
    response_format = serializers.CharField()


class CreateCrlSerializer(serializers.Serializer):
    issuer_dn = serializers.CharField()
    latest_crl_version = serializers.IntegerField()
    latest_delta_crl_version = serializers.IntegerField()
    latest_partition_crl_versions = serializers.DictField(child=serializers.IntegerField())
    latest_partition_delta_crl_versions = serializers.DictField(child=serializers.IntegerField())
    all_success = serializers.BooleanField()


class RevokeStatusSerializer(serializers.Serializer):
    issuer_dn = serializers.CharField()
    serial_number = serializers.CharField()
    revocation_reason = serializers.CharField(allow_null=True)
    revocation_date = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    revoked = serializers.BooleanField()

    @staticmethod
    def from_certificate(cert: Certificate, message: str) -> dict:
        from ..choices import RevocationReason

        reason = None
        if cert.revocation_reason is not None:
            reason = RevocationReason(cert.revocation_reason).name
            reason = "PRIVILEGES_WITHDRAWN" if reason == "PRIVILEGE_WITHDRAWN" else reason
        return {
            "issuer_dn": cert.issuer_dn,
            "serial_number": cert.serial.upper(),
            "revocation_reason": reason,
            "revocation_date": iso(cert.revoked_at),
            "message": message,
            "revoked": cert.is_revoked,
        }


class SearchCriterionSerializer(serializers.Serializer):
    PROPERTIES = ("QUERY", "SERIAL_NUMBER", "USERNAME", "CA", "CERTIFICATE_PROFILE", "STATUS", "ISSUED_DATE",
                  "EXPIRE_DATE", "REVOCATION_DATE", "SUBJECT_DN", "FINGERPRINT")
    property = serializers.ChoiceField(choices=PROPERTIES)
    value = serializers.CharField()
    operation = serializers.ChoiceField(choices=("EQUAL", "LIKE", "BEFORE", "AFTER"), default="EQUAL")


class SearchRequestSerializer(serializers.Serializer):
    max_number_of_results = serializers.IntegerField(min_value=1, max_value=1000, default=25)
    criteria = SearchCriterionSerializer(many=True, allow_empty=False)


class CertificateResultSerializer(serializers.Serializer):
    certificate_id = serializers.CharField(help_text="SHA-256 fingerprint")
    serial_number = serializers.CharField()
    response_format = serializers.CharField()
    certificate = serializers.CharField(help_text="Base64 DER")
    certificate_profile = serializers.CharField(allow_null=True)
    end_entity_profile = serializers.CharField(allow_null=True)

    @staticmethod
    def from_certificate(cert: Certificate) -> dict:
        return {
            "certificate_id": cert.fingerprint_sha256,
            "serial_number": cert.serial.upper(),
            "response_format": "DER",
            "certificate": base64.b64encode(bytes(cert.der)).decode(),
            "certificate_profile": cert.certificate_profile.name if cert.certificate_profile else None,
            "end_entity_profile": None,
        }


class SearchResponseSerializer(serializers.Serializer):
    certificates = CertificateResultSerializer(many=True)
    more_results = serializers.BooleanField()


class CertificateDetailSerializer(serializers.Serializer):
    """The native read of one certificate (``/api/v1/certificates/<fingerprint>/``)."""

    fingerprint_sha256 = serializers.CharField()
    fingerprint_sha1 = serializers.CharField()
    serial_number = serializers.CharField()
    issuer_dn = serializers.CharField()
    subject_dn = serializers.CharField()
    subject_alt_name = serializers.CharField()
    not_before = serializers.CharField()
    not_after = serializers.CharField()
    status = serializers.CharField()
    revocation_reason = serializers.CharField(allow_null=True)
    revocation_date = serializers.CharField(allow_null=True)
    username = serializers.CharField()
    certificate_profile = serializers.CharField(allow_null=True)
    ca = serializers.CharField()
    key_algorithm = serializers.CharField()
    pem = serializers.CharField()

    @staticmethod
    def from_certificate(cert: Certificate) -> dict:
        from ..choices import RevocationReason

        parsed: x509.Certificate = cert.certificate
        return {
            "fingerprint_sha256": cert.fingerprint_sha256,
            "fingerprint_sha1": parsed.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 (an identifier, not security)
            "serial_number": cert.serial.upper(),
            "issuer_dn": cert.issuer_dn,
            "subject_dn": cert.subject_dn,
            "subject_alt_name": cert.subject_alt_name,
            "not_before": iso(cert.not_before),
            "not_after": iso(cert.not_after),
            "status": cert.status,
            "revocation_reason": (RevocationReason(cert.revocation_reason).label
                                  if cert.revocation_reason is not None else None),
            "revocation_date": iso(cert.revoked_at),
            "username": cert.username,
            "certificate_profile": cert.certificate_profile.name if cert.certificate_profile else None,
            "ca": cert.ca.name,
            "key_algorithm": cert.key_algorithm,
            "pem": parsed.public_bytes(Encoding.PEM).decode(),
        }
