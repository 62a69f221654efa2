"""Internal key bindings: a key pair on a crypto token, its (non-CA) certificate, and a purpose.

Two purposes, as EJBCA: an **Authentication** binding (remote authenticator) is the TLS client key of
outgoing mTLS connections; an **OCSP** binding is a delegated OCSP responder key of the CA that issued
its certificate. The OCSP responder reads ``binding_type``, ``status``, ``crypto_token_id``,
``key_pair_alias``, ``signature_algorithm`` and ``certificate`` directly.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .choices import BindingStatus, BindingType, CertificateState


class InternalKeyBindingQuerySet(models.QuerySet):
    def authentication(self) -> InternalKeyBindingQuerySet:
        return self.filter(binding_type=BindingType.AUTHENTICATION)

    def ocsp(self) -> InternalKeyBindingQuerySet:
        return self.filter(binding_type=BindingType.OCSP)

    def active(self) -> InternalKeyBindingQuerySet:
        return self.filter(status=BindingStatus.ACTIVE)


class InternalKeyBinding(models.Model):
    """A key pair reference, a non-CA certificate, trusted server certificates and TLS settings."""

    Status = BindingStatus  # the OCSP responder and older code say InternalKeyBinding.Status.ACTIVE

    name = models.CharField(max_length=255, unique=True)
    binding_type = models.CharField(max_length=64, choices=BindingType.choices, default=BindingType.AUTHENTICATION)
    status = models.CharField(max_length=16, choices=BindingStatus.choices, default=BindingStatus.ACTIVE)
    crypto_token = models.ForeignKey("cryptotokens.CryptoToken", on_delete=models.PROTECT, related_name="+")
    key_pair_alias = models.CharField(max_length=255)
    # EJBCA's name, e.g. SHA256WithRSA; empty: the default for the key (responses, CSRs).
    signature_algorithm = models.CharField(max_length=64, blank=True, default="")
    # The key the next renewal certifies; empty when none is prepared.
    next_key_pair_alias = models.CharField(max_length=255, blank=True, default="")
    certificate = models.ForeignKey("pki.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    # Trusted server certificates: [] = any CA known locally; [{"ca_id": 3, "serial": ""}] = that CA;
    # [{"ca_id": 3, "serial": "1a2b"}] = that exact certificate (serial in lower-case hex).
    trusted_certificates = models.JSONField(default=list, blank=True)
    # "TLSv1.3;TLS_AES_256_GCM_SHA384" entries; [] = every pair PKI_TLS_CIPHER_SUITES allows.
    protocol_and_cipher_suites = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InternalKeyBindingQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_ocsp(self) -> bool:
        return self.binding_type == BindingType.OCSP

    def certificate_state(self, now=None) -> str:
        """VALID, EXPIRED, NOT_YET_VALID, REVOKED or NONE (a CertificateState value)."""
        cert = self.certificate
        if cert is None:
            return CertificateState.NONE
        now = now or timezone.now()
        if cert.is_revoked:
            return CertificateState.REVOKED
        if cert.not_after <= now:
            return CertificateState.EXPIRED
        if cert.not_before > now:
            return CertificateState.NOT_YET_VALID
        return CertificateState.VALID

    def days_to_expiry(self, now=None) -> int | None:
        """Whole days until the certificate expires (negative once expired); None without a certificate."""
        if self.certificate is None:
            return None
        return (self.certificate.not_after - (now or timezone.now())).days


class KeyBindingCertificate(models.Model):
    """A certificate a binding used before a renewal or a new import replaced it (its history)."""

    binding = models.ForeignKey(InternalKeyBinding, on_delete=models.CASCADE, related_name="history")
    certificate = models.ForeignKey("pki.Certificate", on_delete=models.PROTECT, related_name="+")
    key_pair_alias = models.CharField(max_length=255)
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-replaced_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.binding_id}: {self.certificate_id} ({self.key_pair_alias})"
