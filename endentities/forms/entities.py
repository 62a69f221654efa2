"""The end entity form, generated from its end entity profile: one input per subject DN and alt-name field
instance (required ones required, non-modifiable ones read-only or a drop-down of the ';'-separated values),
the e-mail, username and password as the profile asks, the CA / certificate profile / token choices and the
per-entity options the profile uses. The admin UI and the RA portal share it.

The form only translates: :meth:`EndEntityForm.to_input` builds the ``EndEntityInput`` the services validate
against the profile (every rule lives in ``endentities.validation``).
"""

from __future__ import annotations

from typing import Any

from django import forms

from pki.auth.access import Actor
from pki.choices import ProfileType, RevocationReason
from pki.forms.base import DatalistInput, FieldsetsMixin
from pki.forms.cas import usable_cas
from pki.models import CertificateProfile
from pki.x509.altnames import AltNameError, parse_altname_pairs
from pki.x509.dn import escape_value, parse_dn_pairs
from pki.x509.fields import field_for

from .. import fields as field_table
from ..choices import EndEntityStatus, TokenType
from ..models import EndEntity, EndEntityProfile
from ..validation import EndEntityInput

PSD2_ROLES = [("PSP_AS", "Account servicing (PSP_AS)"), ("PSP_PI", "Payment initiation (PSP_PI)"),
              ("PSP_AI", "Account information (PSP_AI)"), ("PSP_IC", "Issuing of card-based instruments (PSP_IC)")]


def _options(instance: dict[str, Any]) -> list[str]:
    raw = instance.get("value") or ""
    return [v.strip() for v in raw.split(";")] if raw else []


def instance_field(ftype: field_table.FieldType | None, instance: dict[str, Any], label: str) -> forms.Field:
    """The input of one field instance: text with its default, a drop-down of the allowed values, or a
    read-only box showing the fixed value."""
    options = _options(instance)
    required = bool(instance.get("required"))
    help_parts = [ftype.hint] if ftype and ftype.hint else []
    if instance.get("validation"):
        help_parts.append(f"must match {instance['validation']}")
    help_text = "; ".join(help_parts)
    if not instance.get("modifiable", True):
        if len(options) > 1:
            choices = ([] if required else [("", "—")]) + [(o, o) for o in options]
            return forms.ChoiceField(choices=choices, required=required, label=label, help_text=help_text)
        return forms.CharField(required=False, label=label, help_text=help_text or "Fixed by the profile",
                               disabled=True, initial=options[0] if options else "")
    widget = DatalistInput(suggestions=[(o, o) for o in options]) if len(options) > 1 else forms.TextInput()
    return forms.CharField(required=required, label=label, help_text=help_text, widget=widget,
                           initial=options[0] if options else "")


def split_dn(profile: EndEntityProfile, dn: str) -> dict[str, str]:
    """An end entity's DN as initial values of the profile's DN inputs (``dn_<i>``), matched by type and order;
    attributes without an input of their own go to ``extra_dn`` (profiles that accept any DN)."""
    by_type: dict[str, list[str]] = {}
    try:
        pairs = [p for rdn in parse_dn_pairs(dn) for p in rdn]
    except ValueError:
        return {}
    for key, value in pairs:
        f = field_for(key)
        by_type.setdefault(f.key if f else key.upper(), []).append(value)
    out = {}
    for i, inst in enumerate(profile.subject_dn_fields):
        values = by_type.get(inst["type"], [])
        if values:
            out[f"dn_{i}"] = values.pop(0)
    rest = [f"{key}={escape_value(v)}" for key, values in by_type.items() for v in values]
    if rest:
        out["extra_dn"] = ",".join(rest)
    return out


def split_alt_names(profile: EndEntityProfile, text: str) -> dict[str, str]:
    """An end entity's alt names as initial values of the profile's alt-name inputs (``san_<i>``); the rest
    (and those the profile fills from the e-mail or the CN) go to ``extra_san`` when the form has it."""
    by_type: dict[str, list[str]] = {}
    try:
        pairs = parse_altname_pairs(text)
    except AltNameError:
        return {}
    for key, value in pairs:
        ftype = field_table.field_type(key, "altname")
        by_type.setdefault(ftype.key if ftype else key, []).append(value)
    out = {}
    for i, inst in enumerate(profile.subject_alt_name_fields):
        values = by_type.get(inst["type"], [])
        if values:
            value = values.pop(0)
            if not (inst.get("use_entity_email") or inst.get("use_entity_cn")):
                out[f"san_{i}"] = value
    rest = [f"{key}={v}" for key, values in by_type.items() for v in values]
    if rest:
        out["extra_san"] = ", ".join(rest)
    return out


def ca_choices(profile: EndEntityProfile, who: Actor) -> list[tuple[int, str]]:
    """The CAs of the profile (any active CA when it allows any) that ``who`` may use."""
    usable = usable_cas(who)
    if not profile.any_ca:
        usable = usable.filter(pk__in=profile.available_cas.values_list("pk", flat=True))
    return [(ca.pk, ca.name) for ca in usable.order_by("name")]


def certificate_profile_choices(profile: EndEntityProfile) -> list[tuple[int, str]]:
    qs = profile.available_certificate_profiles.all()
    if not qs.exists():  # a profile without a list takes any end entity certificate profile
        qs = CertificateProfile.objects.filter(profile_type=ProfileType.ENDENTITY)
    return [(p.pk, p.name) for p in qs.order_by("name")]


def token_choices(profile: EndEntityProfile) -> list[tuple[int, str]]:
    available = [int(t) for t in profile.available_token_types or []] or [int(t) for t in TokenType]
    return [(t.value, t.label) for t in TokenType if t.value in available]


class EndEntityForm(FieldsetsMixin, forms.Form):
    """An end entity of ``profile``; ``instance`` for editing (username fixed, password optional)."""

    def __init__(self, data=None, *, profile: EndEntityProfile, who: Actor, instance: EndEntity | None = None,
                 tokens: bool = True, hide_single_choices: bool = False, **kwargs):
        super().__init__(data, **kwargs)
        self.profile, self.instance = profile, instance
        f = self.fields
        creating = instance is None
        if creating and not profile.username_auto_generate:
            f["username"] = forms.CharField(max_length=255, label="Username")
        elif creating:
            f["username"] = forms.CharField(required=False, disabled=True, label="Username",
                                            initial="(auto-generated)")
        if not profile.password_auto_generate or not creating:
            required = creating and profile.password_required
            f["password"] = forms.CharField(
                required=required, label="Password (enrollment code)", strip=False,
                widget=forms.PasswordInput(),
                help_text=("" if creating else "Leave empty to keep the current one. ") +
                (f"At least {profile.password_min_strength_bits} bits" if profile.password_min_strength_bits
                 else ""))
            f["password_confirm"] = forms.CharField(required=False, label="Confirm password", strip=False,
                                                    widget=forms.PasswordInput())
        if profile.email_use:
            domain = profile.email_domain.strip().lstrip("@")
            help_text = f"The domain @{domain} is added to a name without one" if domain else ""
            if domain and not profile.email_modifiable:
                help_text = f"Addresses of @{domain} only"
            f["email"] = forms.CharField(required=profile.email_required, label="E-mail", max_length=255,
                                         help_text=help_text)
        self.dn_names, self.san_names = [], []
        for i, inst in enumerate(profile.subject_dn_fields):
            ftype = field_table.field_type(inst["type"], "dn")
            f[f"dn_{i}"] = instance_field(ftype, inst, ftype.label if ftype else inst["type"])
            self.dn_names.append(f"dn_{i}")
        for i, inst in enumerate(profile.subject_alt_name_fields):
            if inst.get("use_entity_email") or inst.get("use_entity_cn"):
                continue  # filled from the e-mail or the CN by the profile rules
            ftype = field_table.field_type(inst["type"], "altname")
            f[f"san_{i}"] = instance_field(ftype, inst, ftype.label if ftype else inst["type"])
            self.san_names.append(f"san_{i}")
        if profile.any_dn:
            f["extra_dn"] = forms.CharField(required=False, label="Further subject DN attributes",
                                            help_text="EJBCA syntax, e.g. OU=Sales,L=Stockholm")
            f["extra_san"] = forms.CharField(required=False, label="Further subject alternative names",
                                             help_text="e.g. dNSName=www.example.com, rfc822Name=a@example.com")
        f["ca"] = forms.TypedChoiceField(choices=ca_choices(profile, who), coerce=int, label="CA",
                                         initial=profile.default_ca_id)
        f["certificate_profile"] = forms.TypedChoiceField(choices=certificate_profile_choices(profile), coerce=int,
                                                          label="Certificate profile",
                                                          initial=profile.default_certificate_profile_id)
        if tokens:
            f["token_type"] = forms.TypedChoiceField(choices=token_choices(profile), coerce=int, label="Token",
                                                     initial=profile.default_token_type)
        if hide_single_choices:  # the RA portal asks for the CA and certificate profile only if there is a choice
            for name in ("ca", "certificate_profile"):
                choices = list(f[name].choices)
                if len(choices) == 1:
                    f[name].widget = forms.HiddenInput()
                    f[name].initial = choices[0][0]
        self._options(profile)
        if instance is not None:
            self._initial_from(instance)

    def _options(self, profile: EndEntityProfile) -> None:
        f = self.fields
        if profile.validity_start_use:
            f["validity_start"] = forms.CharField(
                required=False, label="Certificate validity start", initial=profile.validity_start_default,
                disabled=not profile.validity_start_modifiable,
                help_text="2027-01-31 12:00 (UTC) or days:hours:minutes")
        if profile.validity_end_use:
            f["validity_end"] = forms.CharField(
                required=False, label="Certificate validity end", initial=profile.validity_end_default,
                disabled=not profile.validity_end_modifiable,
                help_text="2028-01-31 12:00 (UTC) or days:hours:minutes")
        if profile.revocation_reason_use:
            f["revocation_reason"] = forms.TypedChoiceField(
                required=False, coerce=int, empty_value=None, label="Revocation reason to set after issuance",
                choices=[("", "Active")] + [(r.value, r.label) for r in RevocationReason
                                            if r != RevocationReason.REMOVE_FROM_CRL],
                initial=profile.revocation_reason_default)
        if profile.allowed_requests_use:
            f["allowed_requests"] = forms.IntegerField(
                min_value=1, label="Number of allowed requests", initial=profile.allowed_requests_default,
                help_text=f"At most {profile.allowed_requests_max}")
        if profile.max_failed_logins_use:
            f["max_failed_logins"] = forms.IntegerField(
                min_value=-1, label="Maximum failed login attempts", initial=profile.max_failed_logins,
                disabled=not profile.max_failed_logins_modifiable, help_text="-1 = unlimited")
        for name, label in (("key_recoverable", "Key recoverable"), ("send_notification", "Send notification"),
                            ("clear_password", "Store the password recoverable (batch generation)")):
            if getattr(profile, f"{name}_use", False):
                fixed = getattr(profile, f"{name}_required", False)
                f[name] = forms.BooleanField(required=False, label=label, disabled=fixed,
                                             initial=fixed or getattr(profile, f"{name}_default", False))
        if profile.custom_extension_data_use:
            f["custom_extension_data"] = forms.CharField(
                required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Custom certificate extension data",
                help_text="Properties format, one per line: 1.2.3.4.value=Hello")
        if profile.psd2_qc_statement_use:
            f["psd2_nca_name"] = forms.CharField(required=False, label="PSD2 NCA name")
            f["psd2_nca_id"] = forms.CharField(required=False, label="PSD2 NCA identifier")
            f["psd2_roles"] = forms.MultipleChoiceField(choices=PSD2_ROLES, required=False, label="PSD2 TPP roles",
                                                        widget=forms.CheckboxSelectMultiple)
        if profile.cabf_organization_identifier_use:
            f["cabf_organization_identifier"] = forms.CharField(
                required=False, label="CA/B Forum organization identifier", help_text="e.g. NTRGB-12345678")

    def _initial_from(self, ee: EndEntity) -> None:
        info = ee.extended_information or {}
        initial = {"email": ee.email, "ca": ee.ca_id, "certificate_profile": ee.certificate_profile_id,
                   "token_type": ee.token_type, "allowed_requests": ee.allowed_requests,
                   "max_failed_logins": ee.max_failed_logins, "key_recoverable": ee.key_recoverable,
                   "send_notification": ee.send_notification}
        for key in ("validity_start", "validity_end", "revocation_reason", "custom_extension_data", "psd2_nca_name",
                    "psd2_nca_id", "psd2_roles", "cabf_organization_identifier"):
            if key in info:
                initial[key] = info[key]
        initial.update(split_dn(self.profile, ee.subject_dn))
        initial.update(split_alt_names(self.profile, ee.subject_alt_name))
        for name, value in initial.items():
            if name in self.fields and not self.fields[name].disabled:
                self.initial[name] = value

    @property
    def dn_fields(self) -> list:
        return [self[n] for n in self.dn_names] + ([self["extra_dn"]] if "extra_dn" in self.fields else [])

    @property
    def san_fields(self) -> list:
        return [self[n] for n in self.san_names] + ([self["extra_san"]] if "extra_san" in self.fields else [])

    def grouped(self) -> list[tuple[str, list]]:
        """The visible inputs in groups (hidden ones go out with ``hidden_fields``)."""
        groups = [("End entity", [self[n] for n in ("username", "password", "password_confirm", "email")
                                  if n in self.fields])]
        if self.dn_fields:
            groups.append(("Subject DN", self.dn_fields))
        if self.san_fields:
            groups.append(("Subject alternative names", self.san_fields))
        issuance = [self[n] for n in ("ca", "certificate_profile", "token_type")
                    if n in self.fields and not self[n].is_hidden]
        if issuance:
            groups.append(("Issuance", issuance))
        shown = {b.name for _, fields in groups for b in fields} | {b.name for b in self.hidden_fields()}
        rest = [self[n] for n in self.fields if n not in shown]
        if rest:
            groups.append(("Other data", rest))
        return groups

    def clean(self):
        data = super().clean()
        if "password_confirm" in self.fields and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The passwords differ.")
        self._profile_rule_errors()
        return data

    # The inputs behind each part the profile's rules check on its own.
    _PARTS = {"password": ("password", "password_confirm"), "email": ("email",),
              "subject_dn": ("dn_", "extra_dn"), "subject_alt_name": ("san_", "extra_san")}

    def _profile_rule_errors(self) -> None:
        """Every broken profile rule at once (password strength, e-mail domain, DN and alt-name rules), not the
        first the service meets; parts whose inputs already have an error are left to that error. The services
        check everything again when the end entity is saved."""
        from ..validation import profile_rule_errors

        if "ca" not in self.cleaned_data or "certificate_profile" not in self.cleaned_data:
            return
        skip = frozenset(part for part, prefixes in self._PARTS.items()
                         if any(name.startswith(prefixes) for name in self.errors))
        try:
            data = self.to_input()
        except KeyError:  # the username is missing: its error says so
            return
        for exc in profile_rule_errors(self.profile, data, keep_password=self.instance is not None, skip=skip):
            self.place_error(exc.field, exc.message)

    def subject_dn(self) -> str:
        """The DN string from the inputs in profile order. An empty input between filled ones of the same
        type stays as an empty placeholder (``OU=``) so values keep their positions in the profile."""
        d = self.cleaned_data
        instances = self.profile.subject_dn_fields
        values = [(inst["type"], (d.get(f"dn_{i}") or "").strip()) for i, inst in enumerate(instances)]
        parts = []
        for i, (key, value) in enumerate(values):
            later = any(k == key and v for k, v in values[i + 1:])
            if value or later:
                parts.append(f"{key}={escape_value(value)}")
        extra = (d.get("extra_dn") or "").strip()
        return ",".join(parts + ([extra] if extra else []))

    def subject_alt_name(self) -> str:
        """The alt-name string from the inputs (``use entity e-mail / CN`` instances are the rules' to fill)."""
        d = self.cleaned_data
        parts = []
        for i, inst in enumerate(self.profile.subject_alt_name_fields):
            value = (d.get(f"san_{i}") or "").strip()
            if value:
                parts.append(f"{inst['type']}={value}")
        extra = (d.get("extra_san") or "").strip()
        return ", ".join(parts + ([extra] if extra else []))

    def to_input(self) -> EndEntityInput:
        """The form as the services' input (only what the profile asks for is set)."""
        d = self.cleaned_data
        username = self.instance.username if self.instance else ("" if self.fields["username"].disabled
                                                                  else d["username"])
        values: dict[str, Any] = {
            "username": username, "password": d.get("password") or None,
            "subject_dn": self.subject_dn(), "subject_alt_name": self.subject_alt_name(),
            "email": d.get("email") or "", "ca": d["ca"], "certificate_profile": d["certificate_profile"],
            "token_type": d.get("token_type"),
        }
        for key in ("validity_start", "validity_end", "custom_extension_data", "psd2_nca_name", "psd2_nca_id",
                    "cabf_organization_identifier"):
            if key in self.fields:
                values[key] = d.get(key) or ""
        if "psd2_roles" in self.fields:
            values["psd2_roles"] = list(d.get("psd2_roles") or [])
        for key in ("revocation_reason", "allowed_requests", "max_failed_logins", "key_recoverable",
                    "send_notification", "clear_password"):
            if key in self.fields:
                values[key] = d.get(key)
        return EndEntityInput(**values)

    def place_error(self, field: str | None, message: str) -> None:
        """Put a service refusal on the input it is about: the DN/alt-name input of the field type the message
        names (EJBCA's names: 'ORGANIZATIONALUNIT'), else the form field of that name, else the form."""
        if field in ("subject_dn", "subject_alt_name"):
            names = self.dn_names if field == "subject_dn" else self.san_names
            key = "dn" if field == "subject_dn" else "altname"
            instances = self.profile.subject_dn_fields if key == "dn" else self.profile.subject_alt_name_fields
            for name in names:
                inst = instances[int(name.split("_")[1])]
                ftype = field_table.field_type(inst["type"], key)
                if ftype and (f"'{ftype.ejbca_name}'" in message or f"'{ftype.key}'" in message):
                    self.add_error(name, message)
                    return
            extra = "extra_dn" if key == "dn" else "extra_san"
            if extra in self.fields:
                self.add_error(extra, message)
                return
            field = None
        if field and field.startswith("psd2"):
            field = "psd2_nca_name" if "psd2_nca_name" in self.fields else None
        self.add_error(field if field in self.fields else None, message)


class ChooseProfileForm(forms.Form):
    """Step one of adding an end entity: its end entity profile (the form is built from it)."""

    profile = forms.ModelChoiceField(queryset=EndEntityProfile.objects.none(), label="End entity profile",
                                     empty_label=None)

    def __init__(self, *args, profiles, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = profiles


class EndEntitySearchForm(forms.Form):
    """Search end entities: one text box (username, DN, e-mail) and filters."""

    text = forms.CharField(required=False, label="Username, DN or e-mail",
                           widget=forms.TextInput(attrs={"type": "search", "placeholder": "part of it"}))
    status = forms.TypedChoiceField(choices=[("", "Any")] + list(EndEntityStatus.choices), coerce=int,
                                    empty_value=None, required=False)
    profile = forms.ModelChoiceField(queryset=EndEntityProfile.objects.all(), required=False,
                                     label="End entity profile", empty_label="Any")
    ca = forms.TypedChoiceField(choices=[], coerce=int, empty_value=None, required=False, label="CA")

    def __init__(self, *args, ca_list=(), profiles=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ca"].choices = [("", "Any")] + [(ca.pk, ca.name) for ca in ca_list]
        if profiles is not None:
            self.fields["profile"].queryset = profiles


class SetStatusForm(forms.Form):
    status = forms.TypedChoiceField(choices=EndEntityStatus.choices, coerce=int, label="New status")


class RevokeEntityForm(forms.Form):
    reason = forms.TypedChoiceField(
        coerce=int, label="Revocation reason",
        choices=[(r.value, r.label) for r in RevocationReason if r != RevocationReason.REMOVE_FROM_CRL])

