"""Failed-authentication counters shared by every process (pki.auth.throttle keeps the rules)."""

from __future__ import annotations

from django.db import models


class AuthThrottle(models.Model):
    """Recent failures of one subject in one scope: an account name, a client address, an address at the
    SCEP RA shared secret. A row is counted by one atomic statement per failure; times are Unix seconds so
    the statement reads the same on PostgreSQL and SQLite."""

    scope = models.CharField(max_length=16)
    subject = models.CharField(max_length=200)
    failures = models.PositiveIntegerField(default=0)  # in the window that began at window_start
    window_start = models.FloatField(default=0)
    lockouts = models.PositiveIntegerField(default=0)  # each lockout lasts twice as long as the one before
    locked_until = models.FloatField(default=0)
    last_failure = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "subject"], name="auth_throttle_scope_subject")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.subject}"
