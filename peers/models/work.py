"""RA side: requests waiting for the CA (leased by its connectors), the peers that connected in, and the protocol
data the CA pushed so that the RA answers read-only requests while the CA is unreachable."""

from __future__ import annotations

from django.db import models

from ..choices import WorkStatus


class PeerWorkItem(models.Model):
    """A request that entered this RA and needs the CA. Leased with ``SELECT ... FOR UPDATE SKIP LOCKED``; a lease
    that runs out puts the item back (the connector died); the answer is accepted once, for its idempotency key."""

    kind = models.CharField(max_length=64)
    idempotency_key = models.CharField(max_length=64, unique=True)
    payload = models.JSONField(default=dict)
    # Who made the request here (an alias, an operator), carried to the CA for its access rules and audit log.
    requester = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=WorkStatus.choices, default=WorkStatus.WAITING)
    created_at = models.DateTimeField(auto_now_add=True)
    # The requester stops waiting then: an item not leased by that time is never handed out.
    deadline = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=255, blank=True, default="")
    attempts = models.IntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    answered_by = models.CharField(max_length=255, blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "id"], name="peers_work_status_id")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class IncomingPeer(models.Model):
    """A CA connector that connected in (by its client certificate): EJBCA's "Incoming Peer Connections"."""

    fingerprint = models.CharField(max_length=64, unique=True)  # SHA-256 of the certificate, hex
    subject = models.CharField(max_length=1024)
    issuer = models.CharField(max_length=1024)
    serial = models.CharField(max_length=64)
    identity = models.CharField(max_length=255)  # the role-member actor name
    first_seen = models.DateTimeField(auto_now_add=True)
    last_contact = models.DateTimeField()
    requests_leased = models.BigIntegerField(default=0)
    answers = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-last_contact"]

    def __str__(self) -> str:
        return self.identity


class PushedScepAlias(models.Model):
    """A SCEP alias of the CA as the RA serves it: enabled, size limit, and the CA's answers to the read-only
    operations (``responses``: ``"GetCACert|"`` -> {status, content_type, body (base64)})."""

    name = models.CharField(max_length=255, unique=True)
    enabled = models.BooleanField(default=True)
    max_body_size = models.IntegerField(default=65536)
    responses = models.JSONField(default=dict)
    pushed_at = models.DateTimeField(auto_now=True)
    pushed_by = models.CharField(max_length=255, blank=True, default="")

    def __str__(self) -> str:
        return self.name
