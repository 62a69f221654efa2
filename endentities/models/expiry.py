"""Which certificates were told about their coming expiry (the periodic check sends each notice once)."""

from django.db import models


class ExpiryNotice(models.Model):
    """One row per certificate whose expiry notice went out: the unique certificate makes a notice once-only
    across every process that runs the check at the same time."""

    certificate = models.OneToOneField("pki.Certificate", on_delete=models.CASCADE, related_name="expiry_notice")
    sent_at = models.DateTimeField(auto_now_add=True)
    recipients = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"expiry notice for certificate {self.certificate_id}"
