"""Approvals (EJBCA's approval profiles): an action that an approval profile covers is stored as an
:class:`ApprovalRequest` and carried out once enough administrators approved it.

* :class:`ApprovalProfile` — how many approvals, which roles may give them (none named: any administrator with
  the approval rule), how long a request stays open.
* :class:`ApprovalSetting` — which profile an action of a CA or a certificate profile uses (the certificate
  profile's setting comes first, as in EJBCA).
* :class:`ApprovalRequest` — the full request (``data``, ``request_der``), who asked and through which
  interface, its state; ``origin``/``origin_key`` tie it to the protocol transaction it came from (SCEP).
* :class:`Approval` — one administrator's approval or rejection with a comment; one per administrator and
  request (the database says so).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ApprovalAction(models.TextChoices):
    """EJBCA's approvable actions (its ApprovalRequestType names). Key recovery does not exist here."""

    ADD_EDIT_END_ENTITY = "ADDEDITENDENTITY", "Add/Edit End Entity (also enrollments that add or edit one)"
    REVOCATION = "REVOCATION", "Revocation"
    CA_ACTIVATION = "ACTIVATECA", "CA Service Activation"


class ApprovalStatus(models.TextChoices):
    WAITING = "WAITING", "Waiting for approval"
    APPROVED = "APPROVED", "Approved"  # executed (or, for enrollments, ready to be issued)
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    FAILED = "FAILED", "Approved, execution failed"


class ApprovalProfile(models.Model):
    """EJBCA's accumulative approval profile: ``approvals_required`` distinct administrators, from
    ``approver_roles`` when any are named."""

    name = models.CharField(max_length=255, unique=True)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_roles = models.ManyToManyField("pki.Role", blank=True, related_name="+",
                                            help_text="None: any administrator with the approval rule")
    request_expiration = models.PositiveIntegerField(default=8 * 3600, help_text="Seconds a request stays open")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(approvals_required__gte=1, approvals_required__lte=100),
                                   name="approval_profile_count_range"),
            models.CheckConstraint(condition=models.Q(request_expiration__gte=60),
                                   name="approval_profile_expiration_min"),
        ]

    def __str__(self) -> str:
        return self.name


class ApprovalSetting(models.Model):
    """The approval profile an action of a CA or of a certificate profile needs."""

    action = models.CharField(max_length=32, choices=ApprovalAction.choices)
    approval_profile = models.ForeignKey(ApprovalProfile, on_delete=models.PROTECT, related_name="settings")
    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.CASCADE, null=True, blank=True,
                           related_name="+")
    certificate_profile = models.ForeignKey("pki.CertificateProfile", on_delete=models.CASCADE, null=True,
                                            blank=True, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ca__isnull=False, certificate_profile__isnull=True)
                | models.Q(ca__isnull=True, certificate_profile__isnull=False),
                name="approval_setting_one_target",
            ),
            models.UniqueConstraint(fields=["ca", "action"], condition=models.Q(ca__isnull=False),
                                    name="approval_setting_unique_ca"),
            models.UniqueConstraint(fields=["certificate_profile", "action"],
                                    condition=models.Q(certificate_profile__isnull=False),
                                    name="approval_setting_unique_profile"),
        ]

    def __str__(self) -> str:
        return f"{self.action} of {self.ca or self.certificate_profile}: {self.approval_profile}"


class ApprovalRequest(models.Model):
    """An action waiting for (or decided by) approvals. ``operation`` names the registered executor that
    carries it out; ``data`` holds its arguments (secrets in it encrypted), ``request_der`` a PKCS#10."""

    action = models.CharField(max_length=32, choices=ApprovalAction.choices)
    operation = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.WAITING,
                              db_index=True)
    approval_profile = models.ForeignKey(ApprovalProfile, on_delete=models.SET_NULL, null=True, blank=True,
                                         related_name="+")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_role_ids = models.JSONField(default=list, blank=True)  # as the profile said when it was asked
    ca = models.ForeignKey("pki.CertificateAuthority", on_delete=models.CASCADE, null=True, blank=True,
                           related_name="+")
    certificate_profile = models.ForeignKey("pki.CertificateProfile", on_delete=models.SET_NULL, null=True,
                                            blank=True, related_name="+")
    username = models.CharField(max_length=255, blank=True, default="")
    subject_dn = models.CharField(max_length=2048, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    request_der = models.BinaryField(null=True, blank=True)
    requested_by = models.CharField(max_length=255, blank=True, default="")
    requester_kind = models.CharField(max_length=16, blank=True, default="")
    interface = models.CharField(max_length=16, blank=True, default="")
    origin = models.CharField(max_length=64, blank=True, default="")  # e.g. "scep:<alias id>"
    origin_key = models.CharField(max_length=255, blank=True, default="")  # e.g. the SCEP transactionID
    request_digest = models.CharField(max_length=64, blank=True, default="")  # SHA-256 of the CSR's signed part
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True, default="")  # why the execution failed
    certificate = models.ForeignKey("pki.Certificate", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["origin", "origin_key"], condition=~models.Q(origin=""),
                                    name="unique_approval_request_origin"),
        ]
        indexes = [models.Index(fields=["origin", "request_digest"], name="approval_request_digest")]

    def __str__(self) -> str:
        return f"{self.operation} {self.username} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.status == ApprovalStatus.EXPIRED or (
            self.status == ApprovalStatus.WAITING and self.expires_at <= timezone.now())


class Approval(models.Model):
    """One administrator's decision on a request."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="approvals")
    admin = models.CharField(max_length=255)
    approved = models.BooleanField()
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["request", "admin"], name="one_decision_per_admin")]

    def __str__(self) -> str:
        return f"{'approved' if self.approved else 'rejected'} by {self.admin}"
