"""End entity profiles: which subject fields, CAs and certificate profiles an enrollment may use."""

from __future__ import annotations

from django.db import models


class EndEntityProfile(models.Model):
    """An EJBCA end entity profile. ``fields`` holds the subject DN and alt-name field instances
    (type, required, modifiable, validation, default); EMPTY, the built-in profile, accepts any DN."""

    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")
    builtin = models.BooleanField(default=False)
    fields = models.JSONField(default=list, blank=True)
    available_cas = models.ManyToManyField("pki.CertificateAuthority", blank=True, related_name="+")
    any_ca = models.BooleanField(default=True, help_text="Any CA may be used")
    default_ca = models.ForeignKey(
        "pki.CertificateAuthority", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    available_certificate_profiles = models.ManyToManyField("pki.CertificateProfile", blank=True, related_name="+")
    default_certificate_profile = models.ForeignKey(
        "pki.CertificateProfile", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
