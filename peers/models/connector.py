"""CA side: an outgoing peer connector (remote URL + authentication key binding) and what it carried."""

from __future__ import annotations

from django.db import models

from ..choices import ConnectorState


class PeerConnectorQuerySet(models.QuerySet):
    def enabled(self) -> PeerConnectorQuerySet:
        return self.filter(enabled=True)


class PeerConnector(models.Model):
    """An outgoing connection from this CA to an RA or VA node (EJBCA's "Outgoing Peer Connector")."""

    name = models.CharField(max_length=255, unique=True)
    # https://ra.example.org:8443 (the RA's /peers/v1/ endpoints are below it)
    url = models.URLField(max_length=1024)
    binding = models.ForeignKey("keybindings.InternalKeyBinding", on_delete=models.PROTECT, related_name="+")
    enabled = models.BooleanField(default=True)
    # State written by the connector process; read by the UI, REST and `peer status`.
    state = models.CharField(max_length=16, choices=ConnectorState.choices, default=ConnectorState.DISCONNECTED)
    remote_role = models.CharField(max_length=8, blank=True, default="")
    last_contact = models.DateTimeField(null=True, blank=True)
    requests_carried = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    last_error = models.CharField(max_length=1024, blank=True, default="")
    last_tls_error = models.CharField(max_length=1024, blank=True, default="")
    last_tls_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PeerConnectorQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CarriedRequest(models.Model):
    """One RA work item this CA processed, by its idempotency key: a work item delivered again (its lease ran out
    because a connector died before it posted the answer) gets the stored answer instead of a second run."""

    connector = models.ForeignKey(PeerConnector, on_delete=models.CASCADE, related_name="carried")
    idempotency_key = models.CharField(max_length=64)
    kind = models.CharField(max_length=64)
    requester = models.CharField(max_length=255, blank=True, default="")
    # Set when the run started; a row still without result long after it was claimed is a run that died.
    claimed_at = models.DateTimeField()
    result = models.JSONField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint("connector", "idempotency_key", name="peers_carried_once")]

    def __str__(self) -> str:
        return f"{self.connector_id}:{self.idempotency_key}"
