"""End entity profiles: which subject fields, CAs, certificate profiles and options an end entity may use.

The subject DN and alt-name fields are lists of *field instances* (JSON), in the order the profile editor
shows them. A field instance is::

    {"type": "OU",            # a key of endentities.fields.FIELD_TYPES (DN attribute or alt-name type)
     "required": False,       # the end entity must give a (non-empty) value
     "modifiable": True,      # False: the value must be the default (one of the ';'-separated defaults)
     "validation": "",        # a regex (Java Pattern syntax, full match) the value must match; "" = none
     "value": "",             # default; "a;b;c" on a non-modifiable field = a drop-down of allowed values
     "use_entity_email": False,  # RFC822NAME only: take the end entity's e-mail address
     "use_entity_cn": False}     # DNSNAME only: take the CN of the subject DN

``endentities.validation.validate_end_entity`` applies every rule of this model; the model itself only
holds data (and stores field instances and notifications normalized on ``save``).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from ..choices import TokenType


def _default_token_types() -> list[int]:
    return [int(t) for t in TokenType]


def normalize_field_instance(raw: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """A field instance with every key present, the type canonical (``GN`` -> ``GIVENNAME``, ``dns`` -> ``DNSNAME``).

    ``kind`` is "dn" or "altname" (None: either). Raises ``ValueError`` for an unknown type. Used on save, by
    forms and by the REST layer."""
    from ..fields import field_type

    ftype = field_type(str(raw.get("type", "")), kind)  # type: ignore[arg-type]
    if ftype is None:
        raise ValueError(f"Unknown field type '{raw.get('type')}'")
    return {
        "type": ftype.key,
        "required": bool(raw.get("required", False)),
        "modifiable": bool(raw.get("modifiable", True)),
        "validation": str(raw.get("validation") or ""),
        "value": str(raw.get("value") or ""),
        "use_entity_email": bool(raw.get("use_entity_email", False)) and ftype.key == "RFC822NAME",
        "use_entity_cn": bool(raw.get("use_entity_cn", False)) and ftype.key == "DNSNAME",
        # A plug-in check by dotted class path (endentities.profilerules.load_field_validator), only when set.
        **({"validator": str(raw["validator"]).strip()} if str(raw.get("validator") or "").strip() else {}),
    }


def normalize_notification(raw: dict[str, Any]) -> dict[str, Any]:
    """A notification with every key: ``events`` (end entity status names, e.g. ["NEW", "GENERATED"]),
    ``recipients`` (list: "USER", "APPROVER" or e-mail addresses), ``sender``, ``subject``, ``body``.
    Subject and body are templates with EJBCA's variables (``${USERNAME}``, ``${PASSWORD}``, ``${CN}``...)."""
    events = raw.get("events") or []
    recipients = raw.get("recipients") or []
    if isinstance(recipients, str):
        recipients = [r.strip() for r in recipients.replace(",", ";").split(";") if r.strip()]
    return {
        "events": [str(e).upper() for e in events],
        "recipients": [str(r) for r in recipients],
        "sender": str(raw.get("sender") or ""),
        "subject": str(raw.get("subject") or ""),
        "body": str(raw.get("body") or ""),
    }


class EndEntityProfile(models.Model):
    """An EJBCA end entity profile. EMPTY, the built-in profile, accepts any subject DN and alt name."""

    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="", help_text="Shown in the RA portal's Make New Request")
    builtin = models.BooleanField(default=False)

    # Username: manual, or generated (unique) with ``username_prefix`` in front.
    username_auto_generate = models.BooleanField(default=False)
    username_prefix = models.CharField(max_length=128, blank=True, default="")

    # Password / enrollment code.
    password_required = models.BooleanField(default=True)
    password_auto_generate = models.BooleanField(default=False)
    password_min_strength_bits = models.PositiveIntegerField(
        default=0, help_text="floor(length x log2(72)) for typed passwords; 0 = no minimum"
    )

    # End entity e-mail (the registered address, not the certificate's RFC822NAME).
    email_use = models.BooleanField(default=True)
    email_domain = models.CharField(max_length=255, blank=True, default="", help_text="Default domain")
    email_required = models.BooleanField(default=False)
    email_modifiable = models.BooleanField(default=True, help_text="Cleared: bound to the default domain")

    # Subject DN and subject alternative name field instances (see the module docstring).
    subject_dn_fields = models.JSONField(default=list, blank=True)
    subject_alt_name_fields = models.JSONField(default=list, blank=True)
    any_dn = models.BooleanField(
        default=False, help_text="Accept any DN attribute and alt name (the EMPTY profile); fields still give defaults"
    )
    reverse_field_checks = models.BooleanField(
        default=False, help_text="Match DN/alt-name values to field instances from the end (EJBCA's reverse checks)"
    )
    allow_merge_dn = models.BooleanField(default=False, help_text="Merge given DNs with the profile's defaults")
    allow_multi_value_rdns = models.BooleanField(default=False)
    redact_subject = models.BooleanField(default=False, help_text="Redact subject DN and alt name from logs")

    # Certificate validity per end entity (needs 'allow validity override' in the certificate profile).
    validity_start_use = models.BooleanField(default=False)
    validity_start_default = models.CharField(max_length=64, blank=True, default="")
    validity_start_modifiable = models.BooleanField(default=True)
    validity_end_use = models.BooleanField(default=False)
    validity_end_default = models.CharField(max_length=64, blank=True, default="")
    validity_end_modifiable = models.BooleanField(default=True)

    # Revocation reason set on the certificate right after issuance (-1 / null = active).
    revocation_reason_use = models.BooleanField(default=False)
    revocation_reason_default = models.SmallIntegerField(
        null=True, blank=True, help_text="RFC 5280 reason code, e.g. 6 = certificateHold; empty = active"
    )

    # E-mail notifications: list of {events, recipients, sender, subject, body}.
    send_notification_use = models.BooleanField(default=False)
    send_notification_default = models.BooleanField(default=False)
    send_notification_required = models.BooleanField(default=False)
    notifications = models.JSONField(default=list, blank=True)

    # Failed logins with the enrollment code: status -> GENERATED after the maximum.
    max_failed_logins_use = models.BooleanField(default=False)
    max_failed_logins = models.IntegerField(default=-1, help_text="-1 = unlimited")
    max_failed_logins_modifiable = models.BooleanField(default=True)

    # Extra certificate content per end entity.
    custom_extension_data_use = models.BooleanField(default=False)
    psd2_qc_statement_use = models.BooleanField(default=False)
    cabf_organization_identifier_use = models.BooleanField(default=False)

    # Number of allowed requests before the status becomes GENERATED.
    allowed_requests_use = models.BooleanField(default=False)
    allowed_requests_default = models.PositiveIntegerField(default=1)
    allowed_requests_max = models.PositiveIntegerField(default=1)

    # Renewal with the password while GENERATED, this many 24-hour days before expiry.
    renewal_before_expiration_use = models.BooleanField(default=False)
    renewal_days_before_expiration = models.PositiveIntegerField(default=0)

    # Key recovery and clear-text (recoverable) password storage ("batch generation").
    key_recoverable_use = models.BooleanField(default=False)
    key_recoverable_default = models.BooleanField(default=False)
    key_recoverable_required = models.BooleanField(default=False)
    clear_password_use = models.BooleanField(default=False)
    clear_password_default = models.BooleanField(default=False)
    clear_password_required = models.BooleanField(default=False)

    # Tokens (key delivery), CAs and certificate profiles.
    available_token_types = models.JSONField(default=_default_token_types, blank=True)
    default_token_type = models.PositiveSmallIntegerField(choices=TokenType.choices, default=TokenType.USERGENERATED)
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

    def save(self, *args, **kwargs) -> None:
        """Field instances and notifications are stored normalized (every key present)."""
        self.subject_dn_fields = [normalize_field_instance(f, "dn") for f in self.subject_dn_fields or []]
        self.subject_alt_name_fields = [
            normalize_field_instance(f, "altname") for f in self.subject_alt_name_fields or []
        ]
        self.notifications = [normalize_notification(n) for n in self.notifications or []]
        super().save(*args, **kwargs)

    # Convenience for forms and the RA portal.
    def dn_fields_of(self, key: str) -> list[dict[str, Any]]:
        """The DN field instances of one type, in profile order."""
        return [f for f in self.subject_dn_fields if f.get("type") == key]

    @property
    def keeps_password(self) -> bool:
        """The password is stored recoverable: renewal with the password or clear-text (batch) storage."""
        return self.renewal_before_expiration_use or self.clear_password_use
