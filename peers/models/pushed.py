"""Certificate status the CA pushes to its RA and VA nodes, and how far each connector has pushed.

On a VA the CA's certificates and statuses go into the tables the OCSP responder reads (the CA as an external CA,
its certificates as :class:`pki.models.Certificate` rows): see :mod:`peers.pushed`. On an RA, which holds no
certificates, only what it needs to refuse a revoked client certificate is kept (:class:`PushedRevocation`). Both
keep the CA's CRLs (:class:`PushedCrl`) and serve them.
"""

from __future__ import annotations

from django.db import models


class PushedRevocation(models.Model):
    """RA: a certificate of a known CA that the CA says is revoked or on hold (taken off hold: its row stays, with
    status ACTIVE). ``changed_at`` is the CA's time of the change: an older push never undoes a newer one."""

    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.CASCADE, related_name="+")
    serial = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    revocation_reason = models.SmallIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField()
    pushed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ca", "serial"], name="peers_pushed_revocation_once")]

    def __str__(self) -> str:
        return f"{self.ca_id}:{self.serial} {self.status}"


class PushedCrl(models.Model):
    """RA/VA: a CRL of a known CA as the CA signed it, served here at the CA's /crl/<name>.crl."""

    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.CASCADE, related_name="+")
    crl_number = models.PositiveBigIntegerField()
    is_delta = models.BooleanField(default=False)
    this_update = models.DateTimeField()
    next_update = models.DateTimeField()
    der = models.BinaryField()
    pushed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ca", "crl_number", "is_delta"], name="peers_pushed_crl_once")]

    def __str__(self) -> str:
        return f"{self.ca_id} CRL {self.crl_number}{' delta' if self.is_delta else ''}"


class PushState(models.Model):
    """CA: a connector's status push to its RA/VA (shown beside the connector's state)."""

    connector = models.OneToOneField("peers.PeerConnector", on_delete=models.CASCADE, related_name="push_state")
    resynced_at = models.DateTimeField(null=True, blank=True)
    last_push_at = models.DateTimeField(null=True, blank=True)
    certificates_pushed = models.BigIntegerField(default=0)
    crls_pushed = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"push state of connector {self.connector_id}"
