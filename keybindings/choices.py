"""Choices of the key binding app, in EJBCA's own words."""

from __future__ import annotations

from django.db import models


class BindingType(models.TextChoices):
    """EJBCA's key binding types: a TLS client key for outgoing mTLS, or a delegated OCSP responder key."""

    AUTHENTICATION = "AuthenticationKeyBinding", "Authentication (remote authenticator)"
    OCSP = "OcspKeyBinding", "OCSP responder"


class BindingStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    DISABLED = "DISABLED", "Disabled"


class CertificateState(models.TextChoices):
    """What the admin pages and APIs show about a binding's certificate."""

    NONE = "NONE", "No certificate"
    VALID = "VALID", "Valid"
    EXPIRED = "EXPIRED", "Expired"
    NOT_YET_VALID = "NOT_YET_VALID", "Not yet valid"
    REVOKED = "REVOKED", "Revoked"
