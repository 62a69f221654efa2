"""SCEP aliases (each URL ``.../scep/<alias>/pkiclient.exe`` has its own configuration) and the transaction
state of PKCSReqs (the approval requests of SCEP enrollments are the core's, :mod:`pki.models.approvals`).

The alias keeps EJBCA's settings as columns; :mod:`protocols.scep.config` maps them to and from EJBCA's
``<alias>.<key>`` properties. Secrets (the RA shared secret, the Intune application key) are encrypted at
rest with :func:`cryptotokens.secrets.encrypt_secret`, bound to the alias row.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

ALIAS_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DEFAULT_ALIAS = "scep"
DEFAULT_MAX_BODY_SIZE = 64 * 1024


def validate_alias_name(value: str) -> None:
    """Letters, digits, dash and underscore, 1 to 32 characters (EJBCA refuses longer aliases)."""
    if not ALIAS_NAME_RE.match(value or ""):
        raise DjangoValidationError(
            "An alias is 1 to 32 letters, digits, dashes or underscores.", code="invalid_alias"
        )


class OperationMode(models.TextChoices):
    CA = "ca", "CA mode (pre-registered end entities)"
    RA = "ra", "RA mode (the request creates the end entity)"


class NameGenerationScheme(models.TextChoices):
    DN = "DN", "DN part of the request (e.g. CN)"
    RANDOM = "RANDOM", "Random"
    FIXED = "FIXED", "Fixed name (the parameter)"
    USERNAME = "USERNAME", "Username of the request (its CN, else serialNumber)"


# What allowLegacyDigestAlgorithm does, in one place for the model, the form and the docs.
LEGACY_DIGEST_HELP = ("Accept MD5-signed requests (refused with badAlg otherwise) and sign replies with SHA-1 or "
                      "MD5 when the request is; SHA-1 requests are accepted on every alias, answered with SHA-256 "
                      "unless this is on")


class ScepAlias(models.Model):
    """One SCEP configuration alias, with EJBCA's settings."""

    name = models.CharField(max_length=32, unique=True, validators=[validate_alias_name])
    enabled = models.BooleanField(default=True, help_text="Off: the alias's URL answers 404")
    operation_mode = models.CharField(max_length=2, choices=OperationMode.choices, default=OperationMode.CA)
    include_ca = models.BooleanField(default=True, help_text="Include the CA certificate in enrollment responses")
    return_ca_chain = models.BooleanField(
        default=True, help_text="GetCACert for an intermediate CA returns the chain (RFC 8894 certs-only CMS)"
    )
    allow_legacy_digest = models.BooleanField(default=False, help_text=LEGACY_DIGEST_HELP)
    allow_des = models.BooleanField(default=False, help_text="Accept single-DES content encryption (legacy)")
    max_body_size = models.PositiveIntegerField(default=DEFAULT_MAX_BODY_SIZE, help_text="Bytes")
    default_ca = models.ForeignKey(
        "pki.CertificateAuthority", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="CA used when a request names none (else PKI_SCEP_DEFAULT_CA, else the default CA)",
    )
    # RA mode
    ra_auth_password = models.TextField(blank=True, default="", help_text="Encrypted shared secret; empty: none")
    ra_default_ca = models.ForeignKey(
        "pki.CertificateAuthority", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ra_certificate_profile = models.ForeignKey(
        "pki.CertificateProfile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ra_end_entity_profile = models.ForeignKey(
        "endentities.EndEntityProfile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ra_name_generation_scheme = models.CharField(
        max_length=16, choices=NameGenerationScheme.choices, default=NameGenerationScheme.DN
    )
    ra_name_generation_parameters = models.CharField(max_length=255, blank=True, default="CN")
    ra_name_generation_prefix = models.CharField(max_length=255, blank=True, default="")
    ra_name_generation_postfix = models.CharField(max_length=255, blank=True, default="")
    # Client certificate renewal (RFC 8894 Appendix D)
    client_certificate_renewal = models.BooleanField(default=False)
    allow_client_certificate_renewal_with_old_key = models.BooleanField(default=False)
    # Optional RA key pair that decrypts requests and signs replies (for CAs whose key is not RSA).
    ra_crypto_token = models.ForeignKey(
        "cryptotokens.CryptoToken", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ra_key_alias = models.CharField(max_length=255, blank=True, default="")
    ra_certificate_der = models.BinaryField(null=True, blank=True)
    # Challenge validation (Intune or any pluggable class, RA mode)
    challenge_validator = models.CharField(
        max_length=255, blank=True, default="",
        help_text="Dotted path of a ChallengeValidator class; empty: the RA shared secret",
    )
    use_intune = models.BooleanField(default=False)
    intune_settings = models.JSONField(default=dict, blank=True)
    intune_app_key = models.TextField(blank=True, default="", help_text="Encrypted Azure AD application key")
    intune_proxy_pass = models.TextField(blank=True, default="", help_text="Encrypted proxy password")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SCEP alias"
        verbose_name_plural = "SCEP aliases"

    def __str__(self) -> str:
        return self.name

    @property
    def ra_mode(self) -> bool:
        return self.operation_mode == OperationMode.RA

    def secret_context(self, field: str) -> str:
        """AES-GCM associated data binding an encrypted value to this alias and field."""
        return f"scep-alias:{self.name}:{field}"


class ScepTransaction(models.Model):
    """One PKCSReq transaction of an alias (RFC 8894 section 3.3.1): the request key it belongs to and, once
    issued, its certificate. A re-sent PKCSReq or a CertPoll with the same transactionID gets this answer
    again instead of a new certificate; the unique constraint makes concurrent re-sends wait for the first.

    ``request_key`` is the SHA-256 (hex) of the CSR's SubjectPublicKeyInfo: a transactionID is bound to one
    key, and only a message signed by that key may fetch the certificate. ``request_digest`` tells a copy of the
    same request (answered from here) from a new request of the same key under the same transactionID (clients
    derive it from the key: a renewal with the old key, a re-enrollment with a new code), which is processed.
    No certificate yet: the request waits for an approval (PENDING)."""

    alias = models.ForeignKey(ScepAlias, on_delete=models.CASCADE, related_name="+")
    transaction_id = models.CharField(max_length=255)
    request_key = models.CharField(max_length=64)
    request_digest = models.CharField(max_length=64)
    certificate = models.ForeignKey("pki.Certificate", on_delete=models.CASCADE, null=True, blank=True,
                                    related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alias", "transaction_id"], name="unique_scep_transaction"),
        ]
        indexes = [models.Index(fields=["created_at"], name="scep_transaction_created")]

    def __str__(self) -> str:
        return f"{self.alias_id}:{self.transaction_id}"


class ScepNonce(models.Model):
    """A senderNonce of a PKCSReq seen recently: the same nonce again within the replay window is a replay
    (refused), enforced by the unique column. ``digest`` is the nonce's SHA-256 (a client chooses the nonce's
    length; the index takes a fixed 32 bytes). Rows older than the window are purged."""

    digest = models.BinaryField(max_length=32, unique=True)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return bytes(self.digest).hex()
