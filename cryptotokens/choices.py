"""Choices of the crypto token app."""

from django.db import models


class KeyAlgorithm(models.TextChoices):
    RSA = "RSA", "RSA"
    EC = "EC", "EC"
    ED25519 = "Ed25519", "Ed25519"
    ED448 = "Ed448", "Ed448"
