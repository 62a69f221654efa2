"""Choices of the end entity app, with EJBCA's numeric codes (they appear in the REST API and the CLI)."""

from __future__ import annotations

from django.db import models

from pki.ids import parse_decimal


class EndEntityStatus(models.IntegerChoices):
    """EJBCA's end entity status codes (EndEntityConstants.STATUS_*)."""

    NEW = 10, "New"
    FAILED = 11, "Failed"
    INITIALIZED = 20, "Initialized"
    INPROCESS = 30, "In process"
    GENERATED = 40, "Generated"
    REVOKED = 50, "Revoked"
    HISTORICAL = 60, "Historical"
    KEYRECOVERY = 70, "Key recovery"

    @classmethod
    def parse(cls, value: str | int) -> EndEntityStatus:
        """Accept the code (``10``) or the name (``NEW``, any case)."""
        code = parse_decimal(value)
        if code is not None:
            return cls(code)
        name = str(value).strip().upper()
        if name in cls.names:
            return cls[name]
        raise ValueError(f"Unknown end entity status '{value}' (use one of {', '.join(cls.names)} or its code)")


# Statuses in which an enrollment code may be used (EJBCA's AuthenticationSession accepts these; FAILED and
# INPROCESS let a client retry after an interrupted enrollment, KEYRECOVERY is for key recovery only).
ENROLLABLE_STATUSES = frozenset({EndEntityStatus.NEW, EndEntityStatus.FAILED, EndEntityStatus.INPROCESS})


class TokenType(models.IntegerChoices):
    """EJBCA's token types (EndEntityConstants.TOKEN_*): who generates the key pair, and how it is delivered."""

    USERGENERATED = 1, "User generated"
    P12 = 2, "PKCS#12 (P12)"
    JKS = 3, "Java KeyStore (JKS)"
    PEM = 4, "PEM"
    BCFKS = 5, "BCFKS (Bouncy Castle FIPS keystore)"

    @classmethod
    def parse(cls, value: str | int) -> TokenType:
        """Accept the code or EJBCA's names (USERGENERATED, P12, PKCS12, JKS, PEM, BCFKS)."""
        code = parse_decimal(value)
        if code is not None:
            return cls(code)
        name = str(value).strip().upper().replace("-", "").replace("_", "")
        name = {"PKCS12": "P12", "USERGEN": "USERGENERATED", "TOKENSOFTP12": "P12"}.get(name, name)
        if name in cls.names:
            return cls[name]
        raise ValueError(f"Unknown token type '{value}' (use one of {', '.join(cls.names)})")

    @property
    def server_generated(self) -> bool:
        """The key pair is generated here and delivered in a keystore."""
        return self != TokenType.USERGENERATED

    @property
    def response_format(self) -> str:
        """EJBCA's REST ``response_format`` name of a keystore of this type."""
        return {TokenType.P12: "PKCS12", TokenType.JKS: "JKS", TokenType.PEM: "PEM",
                TokenType.BCFKS: "BCFKS"}.get(self, "DER")


class EndEntityType(models.IntegerChoices):
    """EJBCA's end entity type bits (EndEntityTypes); the CLI's ``--type`` takes their sum. 1 = end user."""

    INVALID = 0, "Invalid"
    ENDUSER = 1, "End user"
    SENDNOTIFICATION = 256, "Send notification"
    KEYRECOVERABLE = 128, "Key recoverable"
    PRINT = 512, "Print user data"


class EnrollmentInterface(models.TextChoices):
    """Where an enrollment came from (recorded in the audit log and the end entity's history)."""

    REST = "rest", "REST API"
    RA_WEB = "ra", "RA portal"
    ADMIN_WEB = "admin", "Admin UI"
    CLI = "cli", "Command line"
    SCEP = "scep", "SCEP"
    OTHER = "other", "Other"
