"""Certificate profiles: what a certificate of a kind looks like and which keys it may carry."""

from __future__ import annotations

from django.db import models

from ..choices import ProfileType


def _default_key_algorithms() -> list[str]:
    return ["RSA", "EC", "Ed25519"]


def _default_rsa_sizes() -> list[int]:
    return [2048, 3072, 4096, 6144, 8192]


def _default_curves() -> list[str]:
    return ["secp256r1", "secp384r1", "secp521r1"]


class CertificateProfile(models.Model):
    """EJBCA-style certificate profile. ``builtin`` profiles (ENDUSER, SERVER, ...) are fixed: clone them."""

    name = models.CharField(max_length=255, unique=True)
    profile_type = models.CharField(max_length=16, choices=ProfileType.choices, default=ProfileType.ENDENTITY)
    builtin = models.BooleanField(default=False)
    description = models.TextField(blank=True, default="")
    validity = models.CharField(max_length=64, default="2y", help_text="Days, or an expression like 1y 6mo 2d")
    allow_validity_override = models.BooleanField(default=False)
    allow_extension_override = models.BooleanField(default=False)
    allow_dn_override = models.BooleanField(default=False, help_text="Use the subject DN of the CSR as is")
    key_usage = models.JSONField(default=list, blank=True)
    key_usage_critical = models.BooleanField(default=True)
    extended_key_usage = models.JSONField(default=list, blank=True, help_text="OIDs (dotted)")
    extended_key_usage_critical = models.BooleanField(default=False)
    allowed_key_algorithms = models.JSONField(default=_default_key_algorithms)
    allowed_rsa_sizes = models.JSONField(default=_default_rsa_sizes)
    allowed_curves = models.JSONField(default=_default_curves)
    allowed_signature_algorithms = models.JSONField(
        default=list, blank=True, help_text="Empty: the CA's signature algorithm"
    )
    basic_constraints = models.BooleanField(default=True, help_text="Include the basic constraints extension")
    basic_constraints_critical = models.BooleanField(default=True)
    path_length = models.PositiveSmallIntegerField(null=True, blank=True)
    use_subject_key_id = models.BooleanField(default=True)
    use_authority_key_id = models.BooleanField(default=True)
    use_crl_distribution_point = models.BooleanField(default=True)
    use_authority_info_access = models.BooleanField(default=True)
    use_ocsp_no_check = models.BooleanField(default=False)
    # EJBCA's "CA/B Forum Organization Identifier": the extension an end entity profile's field of that name
    # computes goes into certificates only when this profile enables it too (seed 004).
    use_cabf_organization_identifier = models.BooleanField(default=False)
    custom_extensions = models.JSONField(
        default=list,
        blank=True,
        help_text="List of {oid, critical, encoding, value, dynamic}",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ca(self) -> bool:
        return self.profile_type in (ProfileType.SUBCA, ProfileType.ROOTCA)
