"""The append-only audit log, chained with an HMAC under the master key."""

from django.db import models

from ..choices import AuditOutcome


class AuditEvent(models.Model):
    """One state change. ``mac`` = HMAC(key, previous mac || canonical form of this row)."""

    sequence = models.PositiveBigIntegerField(unique=True)
    timestamp = models.DateTimeField(db_index=True)
    event_type = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=255)
    object_type = models.CharField(max_length=64, blank=True, default="")
    object_id = models.CharField(max_length=255, blank=True, default="")
    outcome = models.CharField(max_length=16, choices=AuditOutcome.choices, default=AuditOutcome.SUCCESS)
    details = models.JSONField(default=dict, blank=True)
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ["-sequence"]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.event_type} by {self.actor}: {self.outcome}"


class AuditChainHead(models.Model):
    """A single row holding the end of the chain; appending locks it, so concurrent writers serialize.

    ``head_mac`` authenticates the row itself (HMAC under its own sub-key over sequence and last MAC), so the
    tail cannot be cut by pointing the head at an earlier event without the master key."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_sequence = models.PositiveBigIntegerField(default=0)
    last_mac = models.CharField(max_length=64, default="")
    head_mac = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_sequence}"
