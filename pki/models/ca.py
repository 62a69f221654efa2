"""Certificate authorities and the history of their CA certificates."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from django.db import models
from django.utils import timezone

from ..choices import CAStatus


class CAQuerySet(models.QuerySet):
    def active(self) -> CAQuerySet:
        return self.filter(status=CAStatus.ACTIVE)

    def local(self) -> CAQuerySet:
        """CAs that hold a key here (not external trust-only CAs)."""
        return self.exclude(status=CAStatus.EXTERNAL)

    def signer_of(self, cert: x509.Certificate) -> CertificateAuthority | None:
        """The CA of this queryset whose current certificate signed ``cert`` (name and signature), else None."""
        from cryptography.exceptions import InvalidSignature

        for ca in self.exclude(certificate_der=None):
            ca_cert = ca.certificate
            if ca_cert is None or ca_cert.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None


class CertificateAuthority(models.Model):
    """A CA: its key on a crypto token, its current certificate and the policy it issues under.

    A pending rollover certificate (a renewal that becomes active later, needed by SCEP
    GetNextCACert) is kept in ``rollover_*`` until ``rollover_at``.
    """

    name = models.CharField(max_length=255, unique=True)
    subject_dn = models.CharField(max_length=1024)
    status = models.CharField(max_length=16, choices=CAStatus.choices, default=CAStatus.ACTIVE)
    description = models.TextField(blank=True, default="")
    crypto_token = models.ForeignKey(
        "cryptotokens.CryptoToken", on_delete=models.PROTECT, null=True, blank=True, related_name="cas"
    )
    key_alias = models.CharField(max_length=255, blank=True, default="")
    signed_by = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="sub_cas",
        help_text="Local CA that signed this one; empty for a root or an external CA",
    )
    certificate_der = models.BinaryField(null=True, blank=True)
    # DER certificates above this CA's (parent first) for external or externally signed CAs.
    external_chain = models.JSONField(default=list, blank=True)
    certificate_profile = models.ForeignKey(
        "pki.CertificateProfile", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    signature_algorithm = models.CharField(max_length=64, default="SHA256WithRSA")
    validity = models.CharField(max_length=64, default="10y")
    crl_period = models.DurationField(default=timedelta(days=1))
    crl_overlap = models.DurationField(default=timedelta(minutes=10))
    delta_crl_period = models.DurationField(default=timedelta(0), help_text="0 disables delta CRLs")
    crl_distribution_point = models.URLField(max_length=512, blank=True, default="")
    ocsp_url = models.URLField(max_length=512, blank=True, default="")
    ca_issuers_url = models.URLField(max_length=512, blank=True, default="")
    is_default = models.BooleanField(default=False, help_text="Used by SCEP and REST when no CA is named")
    # EJBCA's "Enforce unique public keys" / "Enforce unique DN" / "Enforce unique Subject DN SerialNumber":
    # checked by pki.uniqueness at issuance. On for new CAs (EJBCA's default); the migration that added them
    # left existing CAs off so an upgrade does not start refusing requests that worked before.
    enforce_unique_public_keys = models.BooleanField(
        default=True, help_text="Refuse a public key already certified by this CA for another end entity")
    enforce_unique_dn = models.BooleanField(
        default=True, help_text="Refuse a subject DN already certified by this CA for another end entity")
    enforce_unique_dn_serial_number = models.BooleanField(
        default=False, help_text="Refuse a subject DN serialNumber already certified by this CA for another "
                                 "end entity")
    rollover_certificate_der = models.BinaryField(null=True, blank=True)
    rollover_key_alias = models.CharField(max_length=255, blank=True, default="")
    rollover_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CAQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True), name="one_default_ca"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def certificate(self) -> x509.Certificate | None:
        if not self.certificate_der:
            return None
        cached = getattr(self, "_cert_cache", None)
        der = bytes(self.certificate_der)
        if cached is None or cached[0] != der:
            cached = (der, x509.load_der_x509_certificate(der))
            self._cert_cache = cached
        return cached[1]

    @property
    def is_external(self) -> bool:
        return self.status == CAStatus.EXTERNAL

    @property
    def is_root(self) -> bool:
        cert = self.certificate
        return self.signed_by_id is None and not self.external_chain and (
            cert is None or cert.issuer == cert.subject
        )

    @property
    def rollover_certificate(self) -> x509.Certificate | None:
        if not self.rollover_certificate_der:
            return None
        return x509.load_der_x509_certificate(bytes(self.rollover_certificate_der))

    def rollover_due(self) -> bool:
        return bool(self.rollover_certificate_der and self.rollover_at and self.rollover_at <= timezone.now())

    def chain(self) -> list[x509.Certificate]:
        """This CA's certificate followed by its issuers up to the root."""
        result: list[x509.Certificate] = []
        ca: CertificateAuthority | None = self
        while ca is not None:
            if ca.certificate is not None:
                result.append(ca.certificate)
            if ca.external_chain:
                result.extend(x509.load_der_x509_certificate(bytes.fromhex(h)) for h in ca.external_chain)
                break
            ca = ca.signed_by
        return result


class CACertificate(models.Model):
    """Every certificate a CA has had (initial, renewals, rollovers), so old CRLs and chains resolve."""

    ca = models.ForeignKey(CertificateAuthority, on_delete=models.CASCADE, related_name="certificates_history")
    certificate_der = models.BinaryField()
    key_alias = models.CharField(max_length=255, blank=True, default="")
    fingerprint_sha256 = models.CharField(max_length=64, unique=True)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    activate_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ca", "-activate_at"]

    def __str__(self) -> str:
        return f"{self.ca.name} certificate from {self.activate_at:%Y-%m-%d}"
