"""Forms of the CA pages. They only collect values; the services decide and refuse."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils.html import format_html, format_html_join

from cryptotokens import services as token_services
from cryptotokens.errors import CryptoTokenError
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair

from ..auth.access import Actor
from ..choices import CAStatus, ProfileType
from ..models import CertificateAuthority, CertificateProfile
from ..public_urls import default_ocsp_url
from ..x509.algorithms import OFFERED
from .base import DatalistInput, FieldsetsMixin

KEY_SPECS = [(s, s) for s in ("RSA2048", "RSA3072", "RSA4096", "P-256", "P-384", "P-521", "Ed25519")]
SIGNATURE_CHOICES = [("", "Default for the key")] + [(n, n) for n in OFFERED]
KEY_SOURCES = [("generate", "Generate a new key pair under this alias"),
               ("existing", "Use an existing key pair: one registered here, or a key already on the token's device "
                            "(HSM label, KMS alias, Key Vault key name)")]


def _hours(value: float) -> timedelta:
    return timedelta(hours=float(value))


def _as_hours(value: timedelta) -> float:
    return round(value.total_seconds() / 3600, 4)


class _CrlFields(FieldsetsMixin, forms.Form):
    """CRL timing and the URLs a CA writes into the certificates it issues."""

    crl_period_hours = forms.FloatField(min_value=0.1, initial=24, label="CRL period (hours)",
                                        help_text="How long each CRL is valid")
    crl_overlap_hours = forms.FloatField(min_value=0, initial=0.25, label="CRL overlap (hours)",
                                         help_text="A new CRL is made this long before the current one expires")
    delta_crl_period_hours = forms.FloatField(min_value=0, initial=0, label="Delta CRL period (hours)",
                                              help_text="0: no delta CRLs")
    crl_distribution_point = forms.URLField(required=False, assume_scheme="http", label="CRL distribution point",
                                            help_text="Written into issued certificates, e.g. "
                                                      "http://pki.example.com/crl/<CA name>.crl")
    ocsp_url = forms.URLField(required=False, assume_scheme="http", label="OCSP service URL",
                              initial=default_ocsp_url,
                              help_text="Written into issued certificates (AIA); this installation's responder "
                                        "answers for every CA at /ocsp")
    ca_issuers_url = forms.URLField(required=False, assume_scheme="http", label="CA issuers URL (AIA)")

    CRL_FIELDS = ["crl_period_hours", "crl_overlap_hours", "delta_crl_period_hours"]
    URL_FIELDS = ["crl_distribution_point", "ocsp_url", "ca_issuers_url"]

    def crl_settings(self) -> dict:
        """The CRL and URL values in the services' terms (durations, not hours)."""
        d = self.cleaned_data
        return {
            "crl_period": _hours(d["crl_period_hours"]), "crl_overlap": _hours(d["crl_overlap_hours"]),
            "delta_crl_period": _hours(d["delta_crl_period_hours"]),
            "crl_distribution_point": d["crl_distribution_point"], "ocsp_url": d["ocsp_url"],
            "ca_issuers_url": d["ca_issuers_url"],
        }


class _UniquenessFields(forms.Form):
    """EJBCA's "Enforce unique ..." settings: what the CA refuses to certify for a second end entity."""

    enforce_unique_public_keys = forms.BooleanField(
        required=False, initial=True, label="Enforce unique public keys",
        help_text="Refuse a public key this CA has already certified for another end entity (username)")
    enforce_unique_dn = forms.BooleanField(
        required=False, initial=True, label="Enforce unique DN",
        help_text="Refuse a subject DN this CA has already certified for another end entity")
    enforce_unique_dn_serial_number = forms.BooleanField(
        required=False, initial=False, label="Enforce unique Subject DN SerialNumber",
        help_text="Refuse a subject DN serialNumber (SN) this CA has already certified for another end entity")

    UNIQUENESS_FIELDS = ["enforce_unique_public_keys", "enforce_unique_dn", "enforce_unique_dn_serial_number"]

    def uniqueness_settings(self) -> dict:
        return {name: bool(self.cleaned_data[name]) for name in self.UNIQUENESS_FIELDS}


def usable_cas(who: Actor):
    """Active CAs with a key here that ``who`` may use (``/ca/<id>``)."""
    qs = CertificateAuthority.objects.active().exclude(crypto_token=None)
    return qs.filter(pk__in=[pk for pk in qs.values_list("pk", flat=True) if who.is_allowed(f"/ca/{pk}")])


def usable_tokens(who: Actor):
    """Crypto tokens whose keys ``who`` may use (``/cryptotoken/use/<id>``)."""
    ids = [pk for pk in CryptoToken.objects.values_list("pk", flat=True) if who.is_allowed(f"/cryptotoken/use/{pk}")]
    return CryptoToken.objects.filter(pk__in=ids)


def key_suggestions(who: Actor, tokens) -> list[tuple[str, str, int]]:
    """(alias, description) of the keys a new CA could use: each active token's device list (keys registered here
    and keys only on the device), and the registered key pairs of tokens whose device cannot be listed now;
    each with the id of its token, so the page offers only the chosen token's keys."""
    suggestions: list[tuple[str, str, int]] = []
    listed: set[int] = set()
    for token in tokens:
        if not token.is_active or not who.is_allowed(f"/cryptotoken/view/{token.pk}"):
            continue
        try:
            keys = token_services.list_device_keys(who, token)
        except CryptoTokenError:
            continue  # unreachable device: its registered key pairs are offered below
        listed.add(token.pk)
        suggestions += [(k.alias, f"{token.name}: {k.key_algorithm} {k.key_spec}"
                         + ("" if k.known else " (on the device, registered when used)"), token.pk)
                        for k in keys if k.usable]
    pairs = CryptoTokenKeyPair.objects.filter(token__in=tokens).exclude(token__in=listed).select_related("token")
    return suggestions + [(kp.alias, f"{kp.token.name}: {kp.key_spec}", kp.token_id) for kp in pairs]


class KeyAliasInput(DatalistInput):
    """The key pair alias box with its suggestions tagged by token (``data-token``): static/pki/forms.js
    turns it into a pick-list of the chosen token's keys plus "Generate a new key pair"; without JavaScript
    it stays a text box with suggestions."""

    def __init__(self, attrs=None, keys: list[tuple[str, str, int]] | None = None):
        super().__init__(attrs, suggestions=[(alias, label) for alias, label, _ in keys or []])
        self.keys = keys or []

    def render(self, name, value, attrs=None, renderer=None):
        list_id = f"{(attrs or {}).get('id') or 'id_' + name}-list"
        attrs = {**(attrs or {}), "list": list_id, "data-key-alias": "1"}
        options = format_html_join("", '<option value="{}" data-token="{}">{}</option>',
                                   [(alias, token, label) for alias, label, token in self.keys])
        return format_html('{}<datalist id="{}">{}</datalist>',
                           forms.TextInput.render(self, name, value, attrs, renderer), list_id, options)


class CACreateForm(_CrlFields, _UniquenessFields):
    """Create a root CA (self signed) or a sub-CA signed by a local CA."""

    name = forms.CharField(max_length=255, label="CA name")
    subject_dn = forms.CharField(max_length=1024, label="Subject DN",
                                 help_text='EJBCA syntax, e.g. "CN=Issuing CA,O=Example,C=SE"')
    signed_by = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), required=False,
                                       label="Signed by", empty_label="Self signed (root CA)")
    crypto_token = forms.ModelChoiceField(queryset=CryptoToken.objects.none(), label="Crypto token")
    key_source = forms.ChoiceField(choices=KEY_SOURCES, initial="generate", widget=forms.RadioSelect,
                                   label="Key pair")
    key_alias = forms.CharField(max_length=255, initial="signKey", label="Key pair alias")
    key_spec = forms.ChoiceField(choices=KEY_SPECS, initial="RSA3072", label="Key specification",
                                 help_text="For a new key pair only")
    validity = forms.CharField(initial="10y", help_text="Days, or e.g. 10y, 5y 6mo, 3650 days")
    signature_algorithm = forms.ChoiceField(choices=SIGNATURE_CHOICES, required=False)
    certificate_profile = forms.ModelChoiceField(
        queryset=CertificateProfile.objects.filter(profile_type__in=[ProfileType.ROOTCA, ProfileType.SUBCA]),
        required=False, empty_label="ROOTCA or SUBCA (by the CA's kind)", label="CA certificate profile")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    is_default = forms.BooleanField(required=False, label="Default CA (used by SCEP and REST when none is named)")

    fieldsets = [
        ("CA", ["name", "description", "subject_dn", "signed_by", "certificate_profile", "validity"]),
        ("Key", ["crypto_token", "key_source", "key_alias", "key_spec", "signature_algorithm"]),
        ("CRLs", _CrlFields.CRL_FIELDS),
        ("URLs in issued certificates", _CrlFields.URL_FIELDS),
        ("Uniqueness", _UniquenessFields.UNIQUENESS_FIELDS),
        ("", ["is_default"]),
    ]

    def __init__(self, *args, actor: Actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["signed_by"].queryset = usable_cas(actor)
        tokens = usable_tokens(actor)
        self.fields["crypto_token"].queryset = tokens
        self.fields["key_alias"].widget = KeyAliasInput(keys=key_suggestions(actor, tokens))

    @property
    def generate_key(self) -> bool:
        return self.cleaned_data.get("key_source") == "generate"


class CAImportForm(forms.Form):
    """An external CA's certificate (and its issuers) imported for trust only."""

    name = forms.CharField(max_length=255, label="CA name")
    certificate_file = forms.FileField(required=False, label="CA certificate or chain file (PEM or DER)")
    certificate_pem = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}),
                                      label="…or paste PEM (the CA certificate first, then its issuers)")

    def certificate_bytes(self) -> bytes:
        if self.cleaned_data.get("certificate_file"):
            return self.cleaned_data["certificate_file"].read()
        return self.cleaned_data.get("certificate_pem", "").encode()

    def clean(self):
        data = super().clean()
        if not data.get("certificate_file") and not data.get("certificate_pem", "").strip():
            raise forms.ValidationError("Upload a certificate file or paste PEM.")
        return data


class CAEditForm(_CrlFields, _UniquenessFields):
    """What can change on a CA without a new certificate."""

    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    validity = forms.CharField(help_text="Validity of renewed CA certificates, e.g. 10y")
    signature_algorithm = forms.ChoiceField(choices=[(n, n) for n in OFFERED])
    status = forms.ChoiceField(choices=[(CAStatus.ACTIVE, CAStatus.ACTIVE.label),
                                        (CAStatus.OFFLINE, CAStatus.OFFLINE.label)],
                               help_text="An offline CA issues nothing and makes no CRLs")
    is_default = forms.BooleanField(required=False, label="Default CA",
                                    help_text="To move the default, make another CA the default")

    fieldsets = [
        ("CA", ["description", "status", "validity", "signature_algorithm"]),
        ("CRLs", _CrlFields.CRL_FIELDS),
        ("URLs in issued certificates", _CrlFields.URL_FIELDS),
        ("Uniqueness", _UniquenessFields.UNIQUENESS_FIELDS),
        ("", ["is_default"]),
    ]

    @classmethod
    def for_ca(cls, ca: CertificateAuthority, data=None) -> CAEditForm:
        initial = {
            "description": ca.description, "validity": ca.validity, "signature_algorithm": ca.signature_algorithm,
            "status": ca.status, "is_default": ca.is_default,
            "crl_period_hours": _as_hours(ca.crl_period), "crl_overlap_hours": _as_hours(ca.crl_overlap),
            "delta_crl_period_hours": _as_hours(ca.delta_crl_period),
            "crl_distribution_point": ca.crl_distribution_point, "ocsp_url": ca.ocsp_url,
            "ca_issuers_url": ca.ca_issuers_url,
            **{name: getattr(ca, name) for name in cls.UNIQUENESS_FIELDS},
        }
        return cls(data=data, initial=initial)

    def changes(self, ca: CertificateAuthority) -> dict:
        """The values for ``edit_ca``; the default flag only when it is being set (it cannot be cleared)."""
        d = self.cleaned_data
        changes = {"description": d["description"], "validity": d["validity"], "status": d["status"],
                   "signature_algorithm": d["signature_algorithm"], **self.crl_settings(),
                   **self.uniqueness_settings()}
        if d["is_default"] and not ca.is_default:
            changes["is_default"] = True
        return changes


class CARenewForm(FieldsetsMixin, forms.Form):
    """Renew with the same key or a new one, now or as a rollover at a later time."""

    new_key = forms.BooleanField(required=False, label="Renew with a new key pair")
    new_key_alias = forms.CharField(required=False, max_length=255, label="New key pair alias",
                                    help_text="Generated with the key specification below unless it exists")
    new_key_spec = forms.ChoiceField(choices=[("", "Existing key pair")] + KEY_SPECS, required=False,
                                     label="New key specification")
    activate_at = forms.DateTimeField(required=False, label="Activate at (UTC; empty: now)",
                                      widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                      help_text="A future time makes a rollover certificate (SCEP GetNextCACert)")

    def __init__(self, *args, keys: list[tuple[str, str, int]] | None = None, current: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        # The CA token's other keys to pick from (a key made ahead, say on an HSM); a new alias generates one.
        self.fields["new_key_alias"].widget = DatalistInput(
            suggestions=[(alias, label) for alias, label, _ in keys or [] if alias != current])

    def clean(self):
        data = super().clean()
        if data.get("new_key") and not data.get("new_key_alias"):
            self.add_error("new_key_alias", "Give an alias for the new key pair.")
        return data

    def renewal(self) -> dict:
        """The keyword arguments of ``renew_ca``."""
        d = self.cleaned_data
        new = bool(d["new_key"])
        return {"new_key_alias": d["new_key_alias"] if new else None,
                "new_key_spec": (d["new_key_spec"] or None) if new else None, "activate_at": d["activate_at"]}
