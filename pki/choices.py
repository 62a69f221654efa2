"""Choices of the CA core, with EJBCA's names and numeric codes where users see them."""

from django.db import models

from .ids import parse_decimal


class CAStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    EXTERNAL = "EXTERNAL", "External (trust only)"
    OFFLINE = "OFFLINE", "Offline"
    REVOKED = "REVOKED", "Revoked"
    EXPIRED = "EXPIRED", "Expired"


class CertificateStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    REVOKED = "REVOKED", "Revoked"
    ON_HOLD = "ON_HOLD", "On hold"


class ProfileType(models.TextChoices):
    ENDENTITY = "ENDENTITY", "End entity"
    SUBCA = "SUBCA", "Sub CA"
    ROOTCA = "ROOTCA", "Root CA"


class RevocationReason(models.IntegerChoices):
    """RFC 5280 CRLReason codes (7 is not used)."""

    UNSPECIFIED = 0, "unspecified"
    KEY_COMPROMISE = 1, "keyCompromise"
    CA_COMPROMISE = 2, "cACompromise"
    AFFILIATION_CHANGED = 3, "affiliationChanged"
    SUPERSEDED = 4, "superseded"
    CESSATION_OF_OPERATION = 5, "cessationOfOperation"
    CERTIFICATE_HOLD = 6, "certificateHold"
    REMOVE_FROM_CRL = 8, "removeFromCRL"
    PRIVILEGE_WITHDRAWN = 9, "privilegeWithdrawn"
    AA_COMPROMISE = 10, "aACompromise"

    @classmethod
    def parse(cls, value: str | int) -> "RevocationReason":
        """Accept the code, the RFC name (any case) or EJBCA's REST names such as KEY_COMPROMISE."""
        code = parse_decimal(value)
        if code is not None:
            return cls(code)
        norm = str(value).strip().replace("_", "").lower()
        norm = {"privilegeswithdrawn": "privilegewithdrawn"}.get(norm, norm)  # EJBCA's REST spelling
        for member in cls:
            if member.label.lower() == norm or member.name.replace("_", "").lower() == norm:
                return member
        raise ValueError(f"Unknown revocation reason '{value}'")


class AuditOutcome(models.TextChoices):
    SUCCESS = "SUCCESS", "Success"
    FAILURE = "FAILURE", "Failure"


class MemberMatch(models.TextChoices):
    LOCAL_USER = "LOCAL_USER", "Local user name"
    OAUTH_CLAIM = "OAUTH_CLAIM", "OAuth provider claim"
    CERTIFICATE_SERIAL = "CERTIFICATE_SERIAL", "Client certificate: issuing CA + serial"
    CERTIFICATE_CN = "CERTIFICATE_CN", "Client certificate: issuing CA + subject CN"
