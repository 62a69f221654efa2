"""Certificate revocation lists, full and delta, numbered per CA."""

from django.db import models


class CRL(models.Model):
    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.CASCADE, related_name="crls")
    crl_number = models.PositiveBigIntegerField()
    is_delta = models.BooleanField(default=False)
    base_crl_number = models.PositiveBigIntegerField(null=True, blank=True)
    this_update = models.DateTimeField()
    next_update = models.DateTimeField()
    entries = models.PositiveIntegerField(default=0)
    der = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ca", "-crl_number"]
        verbose_name = "CRL"
        constraints = [models.UniqueConstraint(fields=["ca", "crl_number"], name="unique_crl_number_per_ca")]

    def __str__(self) -> str:
        kind = "delta CRL" if self.is_delta else "CRL"
        return f"{self.ca.name} {kind} #{self.crl_number}"
