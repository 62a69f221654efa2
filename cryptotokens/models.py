"""Crypto tokens and the key pairs they hold."""

from __future__ import annotations

import uuid

from django.db import models

from .choices import KeyAlgorithm


class CryptoToken(models.Model):
    """A place keys live: a soft keystore in the database, an HSM slot, or a cloud key service.

    Activation is shared state: an auto-activated token keeps its authentication code encrypted under
    the master key; a manually activated one keeps the code (encrypted) in ``activation_secret`` until it
    is deactivated, so every web and worker process sees the same activation.
    """

    token_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=255, unique=True)
    token_type = models.CharField(max_length=64)
    auto_activate = models.BooleanField(default=False)
    allow_export = models.BooleanField(default=False)
    explicit_ecc_parameters = models.BooleanField(default=False)
    properties = models.JSONField(default=dict, blank=True)
    secret_properties = models.JSONField(default=dict, blank=True)
    auth_code_encrypted = models.TextField(blank=True, default="")
    activation_secret = models.TextField(blank=True, default="")
    # Bumped whenever activation or keys change, so per-process key caches know to reload.
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return bool(self.auth_code_encrypted if self.auto_activate else self.activation_secret)


class CryptoTokenKeyPair(models.Model):
    """One key pair on a token, known by its alias. ``private_data`` is backend-specific
    (the encrypted PKCS#12 of a soft token, a key id for cloud tokens, nothing for an HSM)."""

    token = models.ForeignKey(CryptoToken, on_delete=models.CASCADE, related_name="key_pairs")
    alias = models.CharField(max_length=255)
    key_algorithm = models.CharField(max_length=16, choices=KeyAlgorithm.choices)
    key_spec = models.CharField(max_length=32)
    public_key_der = models.BinaryField()
    subject_key_id = models.CharField(max_length=64)
    private_data = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["alias"]
        constraints = [models.UniqueConstraint(fields=["token", "alias"], name="unique_key_alias_per_token")]

    def __str__(self) -> str:
        return f"{self.token.name}/{self.alias}"
