"""What the CA keeps about a local account beside Django's user row (pki.services.users keeps the rules)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LocalAccount(models.Model):
    """A local user's password state: a password an administrator set (a reset or a new account) is one-time,
    and the user must choose their own at the next login before any other page opens."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pki_account")
    must_change_password = models.BooleanField(default=False)
    password_changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"account of {self.user_id}"
