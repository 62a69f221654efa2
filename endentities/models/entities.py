"""End entities: the users, servers and devices certificates are issued to (EJBCA's UserData)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

from ..choices import EndEntityStatus, TokenType

if TYPE_CHECKING:
    from pki.auth.access import Actor


class EndEntityQuerySet(models.QuerySet):
    """Querysets that speak the domain: ``EndEntity.objects.restrict(actor, "view_end_entity")``."""

    def restrict(self, actor: Actor, action: str = "view_end_entity") -> EndEntityQuerySet:
        """End entities whose CA (``/ca/<id>``) and profile (``/endentityprofilesrules/<id>/<action>``)
        ``actor`` may use for ``action``."""
        if actor.system:
            return self
        from pki.models import CertificateAuthority

        from .profiles import EndEntityProfile

        ca_ids = [pk for pk in CertificateAuthority.objects.values_list("pk", flat=True)
                  if actor.is_allowed(f"/ca/{pk}")]
        profile_ids = [pk for pk in EndEntityProfile.objects.values_list("pk", flat=True)
                       if actor.is_allowed(f"/endentityprofilesrules/{pk}/{action}")]
        return self.filter(ca_id__in=ca_ids, end_entity_profile_id__in=profile_ids)

    def with_status(self, *statuses: EndEntityStatus) -> EndEntityQuerySet:
        return self.filter(status__in=[int(s) for s in statuses])


class EndEntity(models.Model):
    """One end entity. The password (enrollment code) is stored as a Django password hash; a recoverable
    copy, encrypted under the master key, is kept only when the profile needs it (renewal before expiration,
    batch generation). ``request_counter`` counts the certificate requests still allowed in NEW status."""

    username = models.CharField(max_length=255, unique=True)
    password_hash = models.CharField(max_length=255, blank=True, default="",
                                     help_text="Django password hash of the enrollment code; empty: none set")
    clear_password = models.TextField(blank=True, default="",
                                      help_text="Recoverable copy, encrypted (cryptotokens.secrets); usually empty")
    status = models.SmallIntegerField(choices=EndEntityStatus.choices, default=EndEntityStatus.NEW, db_index=True)
    subject_dn = models.CharField(max_length=2048, blank=True, default="")
    subject_alt_name = models.TextField(blank=True, default="")
    email = models.CharField(max_length=255, blank=True, default="")
    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.PROTECT, related_name="end_entities")
    certificate_profile = models.ForeignKey("pki.CertificateProfile", on_delete=models.PROTECT, related_name="+")
    end_entity_profile = models.ForeignKey("endentities.EndEntityProfile", on_delete=models.PROTECT,
                                           related_name="end_entities")
    token_type = models.SmallIntegerField(choices=TokenType.choices, default=TokenType.USERGENERATED)
    key_recoverable = models.BooleanField(default=False)
    send_notification = models.BooleanField(default=False)
    # Requests still allowed before the status turns GENERATED (EJBCA's "number of allowed requests").
    allowed_requests = models.PositiveIntegerField(default=1)
    request_counter = models.PositiveIntegerField(default=1)
    # Wrong enrollment codes in a row; max_failed_logins None (or -1 in EJBCA's API) means unlimited.
    failed_login_count = models.PositiveIntegerField(default=0)
    max_failed_logins = models.IntegerField(null=True, blank=True)
    # EJBCA's ExtendedInformation: validity start/end, custom revocation reason, extension data, ...
    extended_information = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndEntityQuerySet.as_manager()

    class Meta:
        ordering = ["username"]
        verbose_name_plural = "end entities"
        indexes = [
            models.Index(fields=["end_entity_profile", "status"], name="ee_profile_status_idx"),
            models.Index(fields=["ca", "status"], name="ee_ca_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(request_counter__lte=models.F("allowed_requests")),
                                   name="ee_request_counter_le_allowed"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def status_name(self) -> str:
        """EJBCA's status name (NEW, GENERATED, ...)."""
        return EndEntityStatus(self.status).name

    @property
    def token(self) -> TokenType:
        return TokenType(self.token_type)

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)
