"""Request and response shapes of the v2 certificate resource, with the JSON names of EJBCA's OpenAPI document
(``CertificateRestResponseV2`` spells its fields in camelCase there, ``udpateTime`` included)."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from rest_framework import serializers

from ...choices import CertificateStatus
from ...models import Certificate
from ..serializers import SearchCriterionSerializer

# EJBCA's certificate states (CertificateConstants): active, revoked (on hold is revoked with reason 6).
EJBCA_CERT_STATUS = {CertificateStatus.ACTIVE: 20, CertificateStatus.REVOKED: 40, CertificateStatus.ON_HOLD: 40}
# EJBCA's certificate types: end entity 1, sub CA 2, root CA 8.
CERTTYPE_ENDENTITY, CERTTYPE_SUBCA, CERTTYPE_ROOTCA = 1, 2, 8


class PaginationSerializer(serializers.Serializer):
    page_size = serializers.IntegerField(help_text="Results per page, 1 to 500")
    current_page = serializers.IntegerField(help_text="1-based; -1 for the number of matches only")


class SortSerializer(serializers.Serializer):
    property = serializers.CharField(help_text="USERNAME, ISSUER_DN, SUBJECT_DN, END_ENTITY_PROFILE, "
                                               "CERTIFICATE_PROFILE, STATUS, TYPE, UPDATE_TIME, ISSUED_DATE, "
                                               "EXPIRE_DATE, REVOCATION_DATE (TAG, EXTERNAL_ACCOUNT_BINDING_ID)")
    operation = serializers.CharField(default="ASC", help_text="ASC or DESC")


class SearchRequestV2Serializer(serializers.Serializer):
    """EJBCA's SearchCertificatesRestRequestV2; criteria also take END_ENTITY_PROFILE (by name)."""

    pagination = PaginationSerializer()
    sort = SortSerializer(required=False, allow_null=True)
    criteria = SearchCriterionSerializer(many=True, allow_empty=False, max_length=100)


class CertificateV2Serializer(serializers.Serializer):
    """One certificate (EJBCA's CertificateRestResponseV2); dates are milliseconds since 1970, -1 for none."""

    fingerprint = serializers.CharField(help_text="SHA-1, hex")
    cAFingerprint = serializers.CharField(allow_null=True, help_text="SHA-1 of the issuing CA's certificate")
    certificateProfileId = serializers.IntegerField(allow_null=True)
    endEntityProfileId = serializers.IntegerField(allow_null=True)
    expireDate = serializers.IntegerField()
    issuerDN = serializers.CharField()
    notBefore = serializers.IntegerField()
    revocationDate = serializers.IntegerField()
    revocationReason = serializers.IntegerField(help_text="RFC 5280 code, -1 when not revoked")
    serialNumber = serializers.CharField(help_text="Hex, upper case")
    status = serializers.IntegerField(help_text="20 active, 40 revoked (on hold: 40 with reason 6)")
    subjectAltName = serializers.CharField(allow_null=True)
    subjectDN = serializers.CharField()
    subjectKeyId = serializers.CharField(allow_null=True, help_text="Base64")
    tag = serializers.CharField(allow_null=True)
    type = serializers.IntegerField(help_text="1 end entity, 2 sub CA, 8 root CA")
    udpateTime = serializers.IntegerField(help_text="EJBCA's spelling")
    username = serializers.CharField()
    base64Cert = serializers.CharField(help_text="Base64 of the DER")
    certificateRequest = serializers.CharField(allow_null=True)
    crlPartitionIndex = serializers.IntegerField()


class PaginationSummarySerializer(serializers.Serializer):
    page_size = serializers.IntegerField()
    current_page = serializers.IntegerField()
    total_certs = serializers.IntegerField(required=False, help_text="Only when current_page is -1")


class SearchResponseV2Serializer(serializers.Serializer):
    certificates = CertificateV2Serializer(many=True)
    pagination_summary = PaginationSummarySerializer()


class CertificateCountSerializer(serializers.Serializer):
    count = serializers.IntegerField()


class CertificateProfileInfoSerializer(serializers.Serializer):
    """EJBCA's CertificateProfileInfoRestResponseV2 (``available_bit_lenghts`` is EJBCA's spelling)."""

    available_key_algs = serializers.ListField(child=serializers.CharField())
    available_bit_lenghts = serializers.ListField(child=serializers.IntegerField())
    available_ecdsa_curves = serializers.ListField(child=serializers.CharField())
    available_cas = serializers.ListField(child=serializers.CharField())


def _millis(dt) -> int:
    return int(dt.timestamp() * 1000) if dt else -1


def _subject_key_id(cert: x509.Certificate) -> str | None:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return base64.b64encode(ski.digest).decode("ascii")


def _cert_type(row: Certificate, parsed: x509.Certificate) -> int:
    if not row.is_ca:
        return CERTTYPE_ENDENTITY
    return CERTTYPE_ROOTCA if parsed.issuer == parsed.subject else CERTTYPE_SUBCA


def build_certificate_v2(row: Certificate, ca_fingerprints: dict[int, str | None]) -> dict:
    """EJBCA's CertificateRestResponseV2 of one stored certificate; ``ca_fingerprints`` maps CA id to the SHA-1
    of its certificate (computed once per page)."""
    der = bytes(row.der)
    parsed = row.certificate
    return {
        "fingerprint": hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        "cAFingerprint": ca_fingerprints.get(row.ca_id),
        "certificateProfileId": row.certificate_profile_id,
        "endEntityProfileId": getattr(row, "ee_profile_id", None),
        "expireDate": _millis(row.not_after),
        "issuerDN": row.issuer_dn,
        "notBefore": _millis(row.not_before),
        "revocationDate": _millis(row.revoked_at) if row.is_revoked else -1,
        "revocationReason": row.revocation_reason if row.is_revoked and row.revocation_reason is not None else -1,
        "serialNumber": row.serial.upper(),
        "status": EJBCA_CERT_STATUS.get(row.status, 20),
        "subjectAltName": row.subject_alt_name or None,
        "subjectDN": row.subject_dn,
        "subjectKeyId": _subject_key_id(parsed),
        "tag": None,
        "type": _cert_type(row, parsed),
        "udpateTime": _millis(row.updated_at),
        "username": row.username,
        "base64Cert": base64.b64encode(der).decode("ascii"),
        "certificateRequest": None,
        "crlPartitionIndex": 0,
    }


def ca_fingerprint(ca) -> str | None:
    """SHA-1 (hex) of a CA's current certificate."""
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = ca.certificate
    return hashlib.sha1(cert.public_bytes(Encoding.DER), usedforsecurity=False).hexdigest() if cert else None
