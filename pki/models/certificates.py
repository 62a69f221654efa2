"""Issued certificates."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from django.db import models
from django.utils import timezone

from ..choices import CertificateStatus, RevocationReason


class CertificateQuerySet(models.QuerySet):
    def valid(self) -> CertificateQuerySet:
        now = timezone.now()
        return self.filter(status=CertificateStatus.ACTIVE, not_before__lte=now, not_after__gt=now)

    def expired(self) -> CertificateQuerySet:
        return self.filter(not_after__lte=timezone.now())

    def expiring(self, days: int = 30) -> CertificateQuerySet:
        now = timezone.now()
        return self.filter(
            status=CertificateStatus.ACTIVE, not_after__gt=now, not_after__lte=now + timedelta(days=days)
        )

    def revoked(self) -> CertificateQuerySet:
        """Certificates that belong on a CRL (revoked or on hold)."""
        return self.exclude(status=CertificateStatus.ACTIVE)


class Certificate(models.Model):
    """A certificate issued (or imported) by a CA. The serial is unique per CA, enforced by the database."""

    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.PROTECT, related_name="issued")
    serial = models.CharField(max_length=64, help_text="Lower-case hex, no leading zeros")
    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    subject_dn = models.CharField(max_length=2048, db_index=True)
    issuer_dn = models.CharField(max_length=2048)
    subject_alt_name = models.TextField(blank=True, default="")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    der = models.BinaryField()
    status = models.CharField(max_length=16, choices=CertificateStatus.choices, default=CertificateStatus.ACTIVE)
    revocation_reason = models.SmallIntegerField(choices=RevocationReason.choices, null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # When the revocation (or hold) was written here, whatever date it states: a delta CRL lists what was
    # recorded since its base, so a backdated revocation is not missed.
    revocation_recorded_at = models.DateTimeField(null=True, blank=True)
    # When a hold was lifted (delta CRLs list such entries with removeFromCRL).
    unrevoked_at = models.DateTimeField(null=True, blank=True)
    # When the key is known or suspected to have been compromised (RFC 5280 invalidity date), as the revoker said.
    invalidity_date = models.DateTimeField(null=True, blank=True)
    # The end entity profile the certificate was issued under (EJBCA's CertificateData.endEntityProfileId). An
    # id, not a foreign key: profiles live in the end entity app above the core, and the record must outlive them.
    end_entity_profile_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    username = models.CharField(max_length=255, blank=True, default="", db_index=True)
    certificate_profile = models.ForeignKey(
        "pki.CertificateProfile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    key_algorithm = models.CharField(max_length=32, blank=True, default="")
    # SHA-256 of the certified key's SubjectPublicKeyInfo (hex): the unique-key check and key searches. One
    # index on the hash alone: it is selective enough for the per-CA check and also serves searches by key.
    public_key_sha256 = models.CharField(max_length=64, blank=True, default="")
    is_ca = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CertificateQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["ca", "serial"], name="unique_serial_per_ca")]
        indexes = [
            models.Index(fields=["serial"], name="cert_serial_idx"),
            models.Index(fields=["ca", "status", "revoked_at"], name="cert_ca_revoked_idx"),
            models.Index(fields=["ca", "unrevoked_at"], name="cert_ca_unrevoked_idx"),
            models.Index(fields=["ca", "revocation_recorded_at"], name="cert_ca_revrecorded_idx"),
            models.Index(fields=["public_key_sha256"], name="cert_pubkey_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_dn} ({self.serial})"

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(bytes(self.der))

    @property
    def serial_int(self) -> int:
        return int(self.serial, 16)

    @property
    def is_revoked(self) -> bool:
        return self.status != CertificateStatus.ACTIVE

    @property
    def is_expired(self) -> bool:
        return self.not_after <= timezone.now()
