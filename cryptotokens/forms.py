"""Crypto token forms, built from the backends' declared parameters (each backend adds its own fields)."""

from __future__ import annotations

from collections.abc import Callable

from django import forms

from .backends import registry
from .backends.base import BackendParameter

KEY_SPECS = [(s, s) for s in ("RSA2048", "RSA3072", "RSA4096", "P-256", "P-384", "P-521", "brainpoolP256r1",
                               "Ed25519", "Ed448")]


# Parameters whose choices a layer above supplies at run time (this app never imports it), e.g. the key
# bindings app registers "key_binding" -> its authentication bindings, so the Azure login picks from a list.
DYNAMIC_CHOICES: dict[str, Callable[[], list[tuple[str, str]]]] = {}


def _field(param: BackendParameter) -> forms.Field:
    kwargs = {"label": param.label, "required": False, "help_text": param.help_text, "initial": param.default}
    if param.name in DYNAMIC_CHOICES:
        return forms.ChoiceField(choices=lambda: [("", "—"), *DYNAMIC_CHOICES[param.name]()], **kwargs)
    if param.choices:
        return forms.ChoiceField(choices=list(param.choices), **kwargs)
    if param.secret:
        return forms.CharField(widget=forms.PasswordInput(render_value=False), **kwargs)
    return forms.CharField(**kwargs)


def param_field_name(type_name: str, param: BackendParameter) -> str:
    return f"{type_name}__{param.name}"


class CryptoTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=255)
    token_type = forms.ChoiceField(label="Type", initial="SoftCryptoToken")
    auth_code = forms.CharField(widget=forms.PasswordInput, label="Authentication code",
                                help_text="PIN of an HSM slot, password of a soft keystore, or the cloud secret")
    auth_code_repeat = forms.CharField(widget=forms.PasswordInput, label="Repeat authentication code")
    auto_activate = forms.BooleanField(required=False, label="Auto-activation",
                                       help_text="Store the code (encrypted) and keep the token active")
    allow_export = forms.BooleanField(required=False, label="Allow export of private keys",
                                      help_text="Soft tokens only")
    explicit_ecc_parameters = forms.BooleanField(required=False, label="Use explicit ECC parameters",
                                                 help_text="Only for ICAO CSCA and DS certificates")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["token_type"].choices = registry.choices()
        # One field per backend parameter; the page shows those of the chosen type.
        self.backend_fields: dict[str, list[str]] = {}
        for backend in registry:
            names = []
            for param in backend.parameters:
                name = param_field_name(backend.type_name, param)
                self.fields[name] = _field(param)
                self.fields[name].widget.attrs["data-backend"] = backend.type_name
                names.append(name)
            self.backend_fields[backend.type_name] = names

    def clean(self):
        data = super().clean()
        if data.get("auth_code") != data.get("auth_code_repeat"):
            self.add_error("auth_code_repeat", "The authentication codes differ.")
        backend = registry.get(data["token_type"]) if data.get("token_type") else None
        if backend is not None:
            for param in backend.parameters:
                name = param_field_name(backend.type_name, param)
                if param.required and not data.get(name):
                    self.add_error(name, f"{param.label} is required for {backend.label}.")
        return data

    def properties(self) -> dict[str, str]:
        backend = registry.get(self.cleaned_data["token_type"])
        return {p.name: self.cleaned_data[param_field_name(backend.type_name, p)]
                for p in backend.parameters if self.cleaned_data.get(param_field_name(backend.type_name, p))}

    def common_fields(self):
        return [self[n] for n in ("name", "token_type", "auth_code", "auth_code_repeat", "auto_activate",
                                  "allow_export", "explicit_ecc_parameters")]

    def backend_field_groups(self):
        return [(registry.get(t).label, t, [self[n] for n in names]) for t, names in self.backend_fields.items()
                if names]


class GenerateKeyForm(forms.Form):
    alias = forms.CharField(max_length=255, label="Key pair alias")
    key_spec = forms.ChoiceField(choices=KEY_SPECS, label="Key specification")


class ActivateForm(forms.Form):
    auth_code = forms.CharField(widget=forms.PasswordInput, label="Authentication code")


class ExportForm(forms.Form):
    alias = forms.CharField(widget=forms.HiddenInput)
    password = forms.CharField(widget=forms.PasswordInput, min_length=8, label="Password for the PKCS#12 file")


class CryptoTokenEditForm(forms.Form):
    """Edit a token: the common flags and its backend's parameters (an HSM slot can be remapped)."""

    name = forms.CharField(max_length=255)
    auto_activate = forms.BooleanField(required=False, label="Auto-activation")
    allow_export = forms.BooleanField(required=False, label="Allow export of private keys")
    explicit_ecc_parameters = forms.BooleanField(required=False, label="Use explicit ECC parameters")
    auth_code = forms.CharField(widget=forms.PasswordInput, required=False, label="Authentication code",
                                help_text="Needed to turn auto-activation on for an offline token, or to check it")

    def __init__(self, token, *args, **kwargs):
        initial = {"name": token.name, "auto_activate": token.auto_activate, "allow_export": token.allow_export,
                   "explicit_ecc_parameters": token.explicit_ecc_parameters}
        self.backend = registry.get(token.token_type)
        for param in self.backend.parameters:
            initial[param.name] = token.properties.get(param.name, param.default)
        super().__init__(*args, initial=initial, **kwargs)
        for param in self.backend.parameters:
            self.fields[param.name] = _field(param)

    def properties(self) -> dict[str, str]:
        return {p.name: self.cleaned_data[p.name] for p in self.backend.parameters if self.cleaned_data.get(p.name)}
