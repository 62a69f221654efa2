"""Roles, their members and access rules (EJBCA's authorization model)."""

from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from ..choices import MemberMatch


class Role(models.Model):
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoleMember(models.Model):
    """Who belongs to a role: matched on a local user, an OAuth claim or a client certificate."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="members")
    match_type = models.CharField(max_length=32, choices=MemberMatch.choices)
    match_value = models.CharField(max_length=1024)
    # For OAuth members: which provider (by id, not label: a provider removed and another added under the
    # same name must not inherit the members) and claim; for certificate members: the issuing CA.
    provider = models.ForeignKey(
        "pki.TrustedOAuthProvider", on_delete=models.CASCADE, null=True, blank=True, related_name="role_members"
    )
    claim = models.CharField(max_length=64, blank=True, default="")
    issuer_ca = models.ForeignKey(
        "pki.CertificateAuthority", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    description = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            # The same match twice in one role is a mistake; a NULL provider or issuer (members of another
            # kind) counts as 0, as NULLs would otherwise never collide.
            models.UniqueConstraint("role", "match_type", "match_value", Coalesce("provider", Value(0)), "claim",
                                    Coalesce("issuer_ca", Value(0)), name="unique_member_per_role"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.get_match_type_display()} = {self.match_value}"


class AccessRule(models.Model):
    """A resource path allowed or denied to a role; the most specific rule on a path decides."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="rules")
    resource = models.CharField(max_length=512)
    allowed = models.BooleanField(default=True)

    class Meta:
        ordering = ["role", "resource"]
        constraints = [models.UniqueConstraint(fields=["role", "resource"], name="unique_rule_per_role")]

    def __str__(self) -> str:
        return f"{self.role}: {'allow' if self.allowed else 'deny'} {self.resource}"
