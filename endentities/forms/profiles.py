"""End entity profile editor: every scalar option of the model as a form field (generated from the model,
so a new option shows up without touching this module), and two lists of field instances (subject DN and
subject alternative names) plus the notification rows as formsets.

Adding or removing a field instance is a submit of the same form with ``op`` (``add-dn``, ``remove-san-2``);
the view re-renders the edited lists without saving, so the editor works without JavaScript.
"""

from __future__ import annotations

from typing import Any

from django import forms

from pki.choices import ProfileType, RevocationReason
from pki.forms.base import FieldsetsMixin
from pki.models import CertificateAuthority, CertificateProfile

from .. import fields as field_table
from ..choices import EndEntityStatus, TokenType
from ..models import EndEntityProfile
from ..profilerules import compile_java_regex, load_field_validator

CHECKBOXES = forms.CheckboxSelectMultiple

# Model fields the editor does not show as plain inputs: bookkeeping, and the lists it edits as formsets.
NOT_IN_FORM = ("builtin", "subject_dn_fields", "subject_alt_name_fields", "notifications", "created_at",
               "updated_at")

LABELS = {
    "username_auto_generate": "Auto-generated username",
    "username_prefix": "Username prefix (auto-generated) / default",
    "password_required": "Password (enrollment code) required",
    "password_auto_generate": "Auto-generated password",
    "password_min_strength_bits": "Minimum password strength (bits)",
    "email_use": "Use end entity e-mail",
    "email_domain": "E-mail domain",
    "email_required": "E-mail required",
    "email_modifiable": "E-mail modifiable",
    "any_dn": "Accept any subject DN and alt name",
    "reverse_field_checks": "Reverse subject DN and alt name checks",
    "allow_merge_dn": "Allow merge DN across all interfaces",
    "allow_multi_value_rdns": "Allow multi-value RDNs",
    "redact_subject": "Redact subject name from logs",
    "validity_start_use": "Use certificate validity start time",
    "validity_start_default": "Start time default",
    "validity_start_modifiable": "Start time modifiable",
    "validity_end_use": "Use certificate validity end time",
    "validity_end_default": "End time default",
    "validity_end_modifiable": "End time modifiable",
    "revocation_reason_use": "Use revocation reason to set after certificate issuance",
    "revocation_reason_default": "Revocation reason after issuance",
    "send_notification_use": "Use send notification",
    "send_notification_default": "Send notification by default",
    "send_notification_required": "Send notification required",
    "max_failed_logins_use": "Use maximum number of failed login attempts",
    "max_failed_logins": "Maximum failed login attempts",
    "max_failed_logins_modifiable": "Maximum failed logins modifiable",
    "custom_extension_data_use": "Use custom certificate extension data",
    "psd2_qc_statement_use": "Use ETSI PSD2 QC statement",
    "cabf_organization_identifier_use": "Use CA/B Forum organization identifier",
    "allowed_requests_use": "Use number of allowed requests",
    "allowed_requests_default": "Allowed requests (default)",
    "allowed_requests_max": "Allowed requests (maximum)",
    "renewal_before_expiration_use": "Allow renewal before expiration",
    "renewal_days_before_expiration": "Days before expiration (24-hour periods)",
    "key_recoverable_use": "Use key recoverable",
    "key_recoverable_default": "Key recoverable by default",
    "key_recoverable_required": "Key recoverable required",
    "clear_password_use": "Batch generation (clear text password storage)",
    "clear_password_default": "Clear text password storage by default",
    "clear_password_required": "Clear text password storage required",
    "available_token_types": "Available tokens",
    "default_token_type": "Default token",
    "any_ca": "Any CA",
    "available_cas": "Available CAs",
    "default_ca": "Default CA",
    "available_certificate_profiles": "Available certificate profiles",
    "default_certificate_profile": "Default certificate profile",
}

HELP = {
    "validity_start_default": "ISO 8601 date and time (2027-01-31 12:00) or relative days:hours:minutes (0:0:10)",
    "validity_end_default": "ISO 8601 date and time or relative days:hours:minutes from the start (365:0:0)",
    "available_token_types": "BCFKS keystores open with Bouncy Castle (FIPS) providers only; prefer P12 elsewhere",
    "password_min_strength_bits": "floor(length × log2(72)) for typed passwords: 55 bits demand 9 characters",
}

FIELDSETS = [
    ("Profile", ["name", "description"]),
    ("Username", ["username_auto_generate", "username_prefix"]),
    ("Password (enrollment code)", ["password_required", "password_auto_generate", "password_min_strength_bits",
                                    "clear_password_use", "clear_password_default", "clear_password_required"]),
    ("End entity e-mail", ["email_use", "email_domain", "email_required", "email_modifiable"]),
    ("Failed logins", ["max_failed_logins_use", "max_failed_logins", "max_failed_logins_modifiable"]),
    ("Subject name options", ["any_dn", "allow_merge_dn", "allow_multi_value_rdns", "reverse_field_checks",
                              "redact_subject"]),
    ("CAs and certificate profiles", ["any_ca", "available_cas", "default_ca", "available_certificate_profiles",
                                      "default_certificate_profile"]),
    ("Tokens and key recovery", ["available_token_types", "default_token_type", "key_recoverable_use",
                                 "key_recoverable_default", "key_recoverable_required"]),
    ("Certificate validity", ["validity_start_use", "validity_start_default", "validity_start_modifiable",
                              "validity_end_use", "validity_end_default", "validity_end_modifiable"]),
    ("Requests and renewal", ["allowed_requests_use", "allowed_requests_default", "allowed_requests_max",
                              "renewal_before_expiration_use", "renewal_days_before_expiration"]),
    ("Revocation", ["revocation_reason_use", "revocation_reason_default"]),
    ("Other certificate data", ["custom_extension_data_use", "psd2_qc_statement_use",
                                "cabf_organization_identifier_use"]),
    ("E-mail notifications", ["send_notification_use", "send_notification_default", "send_notification_required"]),
]

# The editor's sections, in EJBCA's words: (id, title, the option groups in it). The page shows the subject DN and
# alt-name field lists and the notification rows in their sections (dn, san, notifications) after the options;
# "Profile" (name, description) stands above the sections, and options in no group go to the last section.
SECTIONS = [
    ("user", "Username & password", ["Username", "Password (enrollment code)", "End entity e-mail", "Failed logins"]),
    ("dn", "Subject DN", ["Subject name options"]),
    ("san", "Alt names", []),
    ("validity", "Validity", ["Certificate validity", "Requests and renewal", "Revocation"]),
    ("tokens", "Tokens", ["CAs and certificate profiles", "Tokens and key recovery"]),
    ("notifications", "Notifications", ["E-mail notifications"]),
    ("extensions", "Extensions", ["Other certificate data", ""]),
]


def _formfield(db_field, **kwargs):
    """The model's own form field, with check boxes for many-to-many choices."""
    if db_field.many_to_many:
        kwargs["widget"] = CHECKBOXES
    return db_field.formfield(**kwargs)


class EndEntityProfileForm(FieldsetsMixin, forms.Form):
    """Every scalar option of an end entity profile (the field instances and notifications are formsets)."""

    fieldsets = FIELDSETS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        generated = forms.fields_for_model(EndEntityProfile, exclude=NOT_IN_FORM, labels=LABELS, help_texts=HELP,
                                           formfield_callback=_formfield)
        self.fields.update(generated)
        self.fields["available_token_types"] = forms.TypedMultipleChoiceField(
            choices=TokenType.choices, coerce=int, widget=CHECKBOXES, label=LABELS["available_token_types"],
            help_text=HELP["available_token_types"])
        if "revocation_reason_default" in self.fields:
            self.fields["revocation_reason_default"] = forms.TypedChoiceField(
                choices=[("", "Active (none)")] + [(r.value, r.label) for r in RevocationReason
                                                   if r != RevocationReason.REMOVE_FROM_CRL],
                coerce=int, empty_value=None, required=False, label=LABELS["revocation_reason_default"])
        end_entity = CertificateProfile.objects.filter(profile_type=ProfileType.ENDENTITY)
        for name in ("available_certificate_profiles", "default_certificate_profile"):
            if name in self.fields:
                self.fields[name].queryset = end_entity
        for name in ("available_cas", "default_ca"):
            if name in self.fields:
                self.fields[name].queryset = CertificateAuthority.objects.exclude(crypto_token=None)

    def heading_groups(self) -> list[tuple[str, list]]:
        """The groups above the sections (the profile's name and description)."""
        return [(t, f) for t, f in self.grouped() if t == "Profile"]

    def sections(self) -> list[dict[str, Any]]:
        """The editor's sections (``SECTIONS``), each with its option groups in order."""
        groups = dict(self.grouped())
        return [{"id": key, "title": title, "groups": [(t, groups[t]) for t in titles if t in groups]}
                for key, title, titles in SECTIONS]

    @staticmethod
    def initial_for(profile: EndEntityProfile | None) -> dict[str, Any]:
        """The profile's values (or the model defaults for a new profile) as initial form data."""
        if profile is None:
            return {"available_token_types": [int(t) for t in TokenType]}
        initial = forms.model_to_dict(profile, exclude=NOT_IN_FORM)
        for name in ("available_cas", "available_certificate_profiles"):
            initial[name] = [o.pk for o in initial.get(name) or []]
        return initial

    def profile_values(self) -> dict[str, Any]:
        """The scalar values for the profile service (without ``name``, which it takes apart)."""
        return {k: v for k, v in self.cleaned_data.items() if k != "name"}

    def data_as_initial(self) -> dict[str, Any]:
        """What was posted, as initial values: the form is shown again (after adding or removing a field
        instance) without the errors of a half-filled form."""
        return {name: f.widget.value_from_datadict(self.data, self.files, self.add_prefix(name))
                for name, f in self.fields.items()}


class FieldInstanceForm(forms.Form):
    """One subject DN or alt-name field instance of a profile."""

    type = forms.CharField(widget=forms.HiddenInput)
    required = forms.BooleanField(required=False)
    modifiable = forms.BooleanField(required=False)
    validation = forms.CharField(required=False, label="Validation regex",
                                 widget=forms.TextInput(attrs={"placeholder": "e.g. ^[0-9]+$"}))
    value = forms.CharField(required=False, label="Default value(s)",
                            widget=forms.TextInput(attrs={"placeholder": "a;b;c gives a drop-down"}))
    use_entity_email = forms.BooleanField(required=False, label="Use entity e-mail field")
    use_entity_cn = forms.BooleanField(required=False, label="Use entity CN field")
    validator = forms.CharField(required=False, label="Validator class", widget=forms.TextInput(
        attrs={"placeholder": "validator class (dotted path)"}))

    FIELDS = ("type", "required", "modifiable", "validation", "value", "use_entity_email", "use_entity_cn",
              "validator")

    def __init__(self, *args, kind: str = "dn", **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        # The row's inputs sit in table cells without labels of their own: name them for screen readers.
        row = self.row_label
        for name in ("required", "modifiable", "validation", "value", "validator", "use_entity_email",
                     "use_entity_cn"):
            self.fields[name].widget.attrs["aria-label"] = f"{self.fields[name].label or name.title()}: {row}"

    @property
    def field_type(self) -> field_table.FieldType | None:
        """The table row of this instance's type (for its label, hint and options)."""
        key = self["type"].value() or ""
        return field_table.field_type(key, "dn" if self.kind == "dn" else "altname")

    @property
    def row_label(self) -> str:
        """How the error summary names this row: "Subject DN field Organization", ..."""
        ftype = self.field_type
        name = ftype.label if ftype else self["type"].value()
        return f"{'Subject DN' if self.kind == 'dn' else 'Alt name'} field {name}"

    def clean_validation(self) -> str:
        """The regex must compile (the profile rules' own Java-to-Python translation decides)."""
        regex = self.cleaned_data.get("validation") or ""
        if regex:
            try:
                compile_java_regex(regex)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return regex

    def clean_validator(self) -> str:
        """A plug-in field validator must import (endentities.profilerules.load_field_validator)."""
        path = (self.cleaned_data.get("validator") or "").strip()
        if path:
            try:
                load_field_validator(path)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from None
        return path

    def clean_type(self) -> str:
        ftype = field_table.field_type(self.cleaned_data["type"], "dn" if self.kind == "dn" else "altname")
        if ftype is None:
            raise forms.ValidationError(f"Unknown field type '{self.cleaned_data['type']}'.")
        return ftype.key


class _FieldInstanceFormSet(forms.BaseFormSet):
    kind = "dn"

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "kind": self.kind}

    def instances(self) -> list[dict[str, Any]]:
        """The field instances of a valid formset, in order, as the profile stores them."""
        return [{k: f.cleaned_data[k] for k in FieldInstanceForm.FIELDS} for f in self.forms if f.cleaned_data]


class DnFieldFormSet(forms.formset_factory(FieldInstanceForm, formset=_FieldInstanceFormSet, extra=0)):
    kind = "dn"


class AltNameFieldFormSet(forms.formset_factory(FieldInstanceForm, formset=_FieldInstanceFormSet, extra=0)):
    kind = "altname"


class NotificationForm(forms.Form):
    """One e-mail notification: the statuses that trigger it, who gets it and the templated text."""

    events = forms.MultipleChoiceField(choices=[(s.name, s.label) for s in EndEntityStatus], required=False,
                                       widget=CHECKBOXES, label="On status")
    recipients = forms.CharField(required=False, help_text="USER, APPROVER or e-mail addresses, ';' separated")
    sender = forms.CharField(required=False)
    subject = forms.CharField(required=False, help_text="${USERNAME}, ${CN}, ${PASSWORD}, ... are replaced")
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    FIELDS = ("events", "recipients", "sender", "subject", "body")


class _NotificationFormSet(forms.BaseFormSet):
    def notifications(self) -> list[dict[str, Any]]:
        """Filled-in rows (a row without events and recipients is ignored)."""
        return [{k: f.cleaned_data[k] for k in NotificationForm.FIELDS} for f in self.forms
                if f.cleaned_data and (f.cleaned_data.get("events") or f.cleaned_data.get("recipients"))]


NotificationFormSet = forms.formset_factory(NotificationForm, formset=_NotificationFormSet, extra=1)


def posted_rows(data, prefix: str) -> list[dict[str, Any]]:
    """The rows of a posted field-instance formset as plain dicts (for re-showing them after add/remove)."""
    try:
        total = int(data.get(f"{prefix}-TOTAL_FORMS", 0))
    except (TypeError, ValueError):
        total = 0
    rows = []
    for i in range(min(total, 1000)):
        key = f"{prefix}-{i}-"
        if data.get(key + "type") is None:
            continue
        rows.append({
            "type": data.get(key + "type", ""), "validation": data.get(key + "validation", ""),
            "value": data.get(key + "value", ""),
            **{b: bool(data.get(key + b)) for b in ("required", "modifiable", "use_entity_email", "use_entity_cn")},
        })
    return rows
