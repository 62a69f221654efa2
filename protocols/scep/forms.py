"""The "SCEP Configuration" alias form: EJBCA's alias page, grouped like it."""

from __future__ import annotations

from typing import Any

from django import forms

from cryptotokens.models import CryptoToken
from endentities.models import EndEntityProfile
from pki.models import CertificateAuthority, CertificateProfile

from .models import LEGACY_DIGEST_HELP, NameGenerationScheme, OperationMode, ScepAlias, validate_alias_name


def _names(model, blank: str = "(none)") -> list[tuple[str, str]]:
    return [("", blank)] + [(n, n) for n in model.objects.values_list("name", flat=True)]


class ScepAliasForm(forms.Form):
    name = forms.CharField(max_length=32, validators=[validate_alias_name],
                           help_text="Letters, digits, dash and underscore. "
                                     "URL: /ejbca/publicweb/apply/scep/<alias>/pkiclient.exe")
    enabled = forms.BooleanField(required=False, initial=True)
    operation_mode = forms.ChoiceField(choices=OperationMode.choices, widget=forms.RadioSelect,
                                       initial=OperationMode.CA, label="Operational mode")
    include_ca = forms.BooleanField(required=False, initial=True, label="Include CA certificate in response")
    return_ca_chain = forms.BooleanField(required=False, initial=True,
                                         label="Return full chain in GetCACert responses")
    allow_legacy_digest = forms.BooleanField(required=False, label="Allow legacy digest algorithms (SHA-1, MD5)",
                                             help_text=LEGACY_DIGEST_HELP)
    allow_des = forms.BooleanField(required=False, label="Allow single-DES content encryption")
    max_body_size = forms.IntegerField(min_value=1024, initial=65536, label="Maximum request size (bytes)")
    default_ca = forms.ChoiceField(required=False, label="Default CA",
                                   help_text="When a request names no CA (CA mode)")
    ra_end_entity_profile = forms.ChoiceField(required=False, label="RA end entity profile")
    ra_certificate_profile = forms.ChoiceField(required=False, label="RA certificate profile")
    ra_default_ca = forms.ChoiceField(required=False, label="RA CA name")
    ra_auth_password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                       label="RA authentication password",
                                       help_text="Shared secret; leave empty to keep the stored one")
    clear_ra_auth_password = forms.BooleanField(required=False, label="Remove the RA authentication password")
    ra_name_generation_scheme = forms.ChoiceField(choices=NameGenerationScheme.choices, initial="DN",
                                                  label="RA name generation scheme")
    ra_name_generation_parameters = forms.CharField(required=False, initial="CN",
                                                    label="RA name generation parameters")
    ra_name_generation_prefix = forms.CharField(required=False, label="RA name generation prefix")
    ra_name_generation_postfix = forms.CharField(required=False, label="RA name generation postfix")
    client_certificate_renewal = forms.BooleanField(required=False, label="Allow client certificate renewal")
    allow_client_certificate_renewal_with_old_key = forms.BooleanField(
        required=False, label="Allow client certificate renewal using old key")
    ra_crypto_token = forms.ChoiceField(required=False, label="RA key: crypto token",
                                        help_text="A separate RSA key that decrypts requests (for CAs with EC keys)")
    ra_key_alias = forms.CharField(required=False, label="RA key: key pair alias")
    challenge_validator = forms.CharField(required=False, label="Challenge validator class",
                                          help_text="Dotted path; e.g. protocols.scep.intune.IntuneValidator")
    use_intune = forms.BooleanField(required=False, label="Validate challenges with Microsoft Intune")
    intune_tenant = forms.CharField(required=False, label="Intune: Azure AD tenant")
    intune_app_id = forms.CharField(required=False, label="Intune: application (client) id")
    intune_app_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                                     label="Intune: application key", help_text="Leave empty to keep the stored one")
    intune_authority = forms.CharField(required=False, label="Intune: authority URL")
    intune_resource_url = forms.CharField(required=False, label="Intune: validation service URL")

    GROUPS = (
        ("Alias", ("name", "enabled", "operation_mode")),
        ("Responses", ("include_ca", "return_ca_chain", "allow_legacy_digest", "allow_des", "max_body_size",
                       "default_ca")),
        ("RA mode", ("ra_end_entity_profile", "ra_certificate_profile", "ra_default_ca", "ra_auth_password",
                     "clear_ra_auth_password", "ra_name_generation_scheme", "ra_name_generation_parameters",
                     "ra_name_generation_prefix", "ra_name_generation_postfix")),
        ("Client certificate renewal", ("client_certificate_renewal",
                                        "allow_client_certificate_renewal_with_old_key")),
        ("RA key pair", ("ra_crypto_token", "ra_key_alias")),
        ("Challenge validation", ("challenge_validator", "use_intune", "intune_tenant", "intune_app_id",
                                  "intune_app_key", "intune_authority", "intune_resource_url")),
    )
    INTUNE = {"intune_tenant": "tenant", "intune_app_id": "app_id", "intune_authority": "authority",
              "intune_resource_url": "resource_url"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cas = _names(CertificateAuthority)
        self.fields["default_ca"].choices = cas
        self.fields["ra_default_ca"].choices = [("", "(end entity profile default)")] + cas[1:]
        self.fields["ra_end_entity_profile"].choices = _names(EndEntityProfile)
        self.fields["ra_certificate_profile"].choices = _names(CertificateProfile)
        self.fields["ra_crypto_token"].choices = _names(CryptoToken)

    @property
    def grouped(self):
        return [(legend, [self[f] for f in names]) for legend, names in self.GROUPS]

    @classmethod
    def initial_for(cls, alias: ScepAlias | None, values: dict[str, Any] | None = None) -> dict[str, Any]:
        if alias is None or values is None:
            return {}
        secrets = ("ra_auth_password", "intune_app_key")
        initial = {k: v for k, v in values.items() if k in cls.base_fields and k not in secrets}
        initial["name"] = alias.name
        for field, key in cls.INTUNE.items():
            initial[field] = (alias.intune_settings or {}).get(key, "")
        return initial

    def settings(self) -> dict[str, Any]:
        """The service's settings from the cleaned data (secrets only when typed or cleared)."""
        d = dict(self.cleaned_data)
        d.pop("name")
        clear = d.pop("clear_ra_auth_password", False)
        password = d.pop("ra_auth_password", "")
        app_key = d.pop("intune_app_key", "")
        intune = {key: d.pop(field, "") for field, key in self.INTUNE.items()}
        out: dict[str, Any] = dict(d)
        out["intune_settings"] = intune
        if clear:
            out["ra_auth_password"] = ""
        elif password:
            out["ra_auth_password"] = password
        if app_key:
            out["intune_app_key"] = app_key
        return out
