"""Internal key bindings: a key pair on a crypto token, its (non-CA) certificate, and a purpose.

This is the minimal model the crypto token layer needs (client-certificate login to Azure Key Vault);
the remote-authenticator issue adds next keys, trusted certificates, protocols and peers.
"""

from __future__ import annotations

from django.db import models


class InternalKeyBinding(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "ACTIVE", "Active"
        DISABLED = "DISABLED", "Disabled"

    name = models.CharField(max_length=255, unique=True)
    binding_type = models.CharField(max_length=64, default="AuthenticationKeyBinding")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    crypto_token = models.ForeignKey("cryptotokens.CryptoToken", on_delete=models.PROTECT, related_name="+")
    key_pair_alias = models.CharField(max_length=255)
    certificate = models.ForeignKey("pki.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
