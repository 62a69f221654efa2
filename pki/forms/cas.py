"""Forms of the CA pages. They only collect values; the services decide and refuse."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from cryptotokens.models import CryptoToken

from ..choices import CAStatus, ProfileType
from ..models import CertificateAuthority, CertificateProfile
from ..x509.algorithms import OFFERED

KEY_SPECS = [(s, s) for s in ("RSA2048", "RSA3072", "RSA4096", "P-256", "P-384", "P-521", "Ed25519")]
SIGNATURE_CHOICES = [("", "Default for the key")] + [(n, n) for n in OFFERED]


def _hours(value: float) -> timedelta:
    return timedelta(hours=float(value))


class _CrlFields(forms.Form):
    crl_period_hours = forms.FloatField(min_value=0.1, initial=24, label="CRL period (hours)")
    crl_overlap_hours = forms.FloatField(min_value=0, initial=0.5, label="CRL overlap (hours)",
                                         help_text="A new CRL is made this long before the current one expires")
    delta_crl_period_hours = forms.FloatField(min_value=0, initial=0, label="Delta CRL period (hours)",
                                              help_text="0: no delta CRLs")
    crl_distribution_point = forms.URLField(required=False, assume_scheme="http", label="CRL distribution point",
                                            help_text="Put in issued certificates; e.g. http://host/crl/<name>.crl")
    ocsp_url = forms.URLField(required=False, assume_scheme="http", label="OCSP service URL")
    ca_issuers_url = forms.URLField(required=False, assume_scheme="http", label="CA issuers URL (AIA)")

    def crl_settings(self) -> dict:
        d = self.cleaned_data
        return {
            "crl_period": _hours(d["crl_period_hours"]), "crl_overlap": _hours(d["crl_overlap_hours"]),
            "delta_crl_period": _hours(d["delta_crl_period_hours"]),
            "crl_distribution_point": d["crl_distribution_point"], "ocsp_url": d["ocsp_url"],
            "ca_issuers_url": d["ca_issuers_url"],
        }


class CACreateForm(_CrlFields):
    name = forms.CharField(max_length=255)
    subject_dn = forms.CharField(max_length=1024, label="Subject DN",
                                 help_text='EJBCA syntax, e.g. "CN=Issuing CA,O=Example,C=SE"')
    signed_by = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), required=False,
                                       label="Signed by", empty_label="Self signed (root CA)")
    crypto_token = forms.ModelChoiceField(queryset=CryptoToken.objects.all(), label="Crypto token")
    key_alias = forms.CharField(max_length=255, initial="signKey", label="Key pair alias")
    generate_key = forms.BooleanField(required=False, initial=True, label="Generate a new key pair under this alias")
    key_spec = forms.ChoiceField(choices=KEY_SPECS, initial="RSA3072", label="Key specification")
    validity = forms.CharField(initial="10y", help_text="Days, or e.g. 10y, 5y 6mo")
    signature_algorithm = forms.ChoiceField(choices=SIGNATURE_CHOICES, required=False)
    certificate_profile = forms.ModelChoiceField(
        queryset=CertificateProfile.objects.filter(profile_type__in=[ProfileType.ROOTCA, ProfileType.SUBCA]),
        required=False, empty_label="ROOTCA / SUBCA", label="CA certificate profile")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    is_default = forms.BooleanField(required=False, label="Default CA (used by SCEP and REST when none is named)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["signed_by"].queryset = CertificateAuthority.objects.active().exclude(crypto_token=None)
        self.fields["crl_overlap_hours"].initial = 1 / 6


class CAImportForm(forms.Form):
    name = forms.CharField(max_length=255)
    certificate_file = forms.FileField(required=False, label="CA certificate or chain file (PEM or DER)")
    certificate_pem = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}),
                                      label="…or paste PEM (CA certificate first, then its issuers)")

    def certificate_bytes(self) -> bytes:
        if self.cleaned_data.get("certificate_file"):
            return self.cleaned_data["certificate_file"].read()
        return self.cleaned_data.get("certificate_pem", "").encode()

    def clean(self):
        data = super().clean()
        if not data.get("certificate_file") and not data.get("certificate_pem", "").strip():
            raise forms.ValidationError("Upload a certificate file or paste PEM.")
        return data


class CAEditForm(_CrlFields):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    validity = forms.CharField(help_text="Validity of renewed CA certificates")
    signature_algorithm = forms.ChoiceField(choices=[(n, n) for n in OFFERED])
    status = forms.ChoiceField(choices=[(CAStatus.ACTIVE, "Active"), (CAStatus.OFFLINE, "Offline")])
    is_default = forms.BooleanField(required=False, label="Default CA")

    @classmethod
    def for_ca(cls, ca: CertificateAuthority, data=None):
        initial = {
            "description": ca.description, "validity": ca.validity, "signature_algorithm": ca.signature_algorithm,
            "status": ca.status, "is_default": ca.is_default,
            "crl_period_hours": ca.crl_period.total_seconds() / 3600,
            "crl_overlap_hours": ca.crl_overlap.total_seconds() / 3600,
            "delta_crl_period_hours": ca.delta_crl_period.total_seconds() / 3600,
            "crl_distribution_point": ca.crl_distribution_point, "ocsp_url": ca.ocsp_url,
            "ca_issuers_url": ca.ca_issuers_url,
        }
        return cls(data=data, initial=initial)


class CARenewForm(forms.Form):
    new_key = forms.BooleanField(required=False, label="Renew with a new key pair")
    new_key_alias = forms.CharField(required=False, max_length=255, label="New key pair alias")
    new_key_spec = forms.ChoiceField(choices=KEY_SPECS, required=False, label="New key specification")
    activate_at = forms.DateTimeField(required=False, label="Activate at (UTC; empty: now)",
                                      widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                      help_text="A future time makes a rollover certificate (SCEP GetNextCACert)")

    def clean(self):
        data = super().clean()
        if data.get("new_key") and not data.get("new_key_alias"):
            self.add_error("new_key_alias", "Give an alias for the new key pair.")
        return data
