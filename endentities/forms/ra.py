"""RA portal forms: where the key comes from (a CSR the user generated, or a key pair generated here and
delivered in a keystore) and enrollment with username and enrollment code."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from django import forms

from pki.errors import ValidationError as PkiValidationError
from pki.issuance import load_csr

from ..choices import TokenType
from ..models import EndEntityProfile
from .entities import token_choices

# Server-side key choices: (value, label) -> EJBCA's REST key_alg and key_spec.
KEY_ALGORITHMS: dict[str, tuple[str, str, str]] = {
    "RSA2048": ("RSA 2048 bits", "RSA", "2048"),
    "RSA3072": ("RSA 3072 bits", "RSA", "3072"),
    "RSA4096": ("RSA 4096 bits", "RSA", "4096"),
    "P-256": ("ECDSA P-256 (secp256r1)", "EC", "P-256"),
    "P-384": ("ECDSA P-384 (secp384r1)", "EC", "P-384"),
    "P-521": ("ECDSA P-521 (secp521r1)", "EC", "P-521"),
    "Ed25519": ("Ed25519", "Ed25519", ""),
}
CERTIFICATE_FORMATS = [("pem", "PEM"), ("der", "DER"), ("chain", "PEM with the CA chain")]


class _CsrMixin:
    """A CSR uploaded (PEM or DER) or pasted (PEM); parsed here so a broken file is a form error."""

    def parsed_csr(self) -> x509.CertificateSigningRequest | None:
        d = self.cleaned_data
        upload = d.get("csr_file")
        raw: bytes | str | None = upload.read() if upload else (d.get("csr_pem") or "").strip() or None
        if raw is None:
            return None
        try:
            return load_csr(raw)
        except PkiValidationError as exc:
            self.add_error("csr_file" if upload else "csr_pem", exc.message)
        except ValueError as exc:
            self.add_error("csr_file" if upload else "csr_pem", f"Not a certificate request: {exc}")
        return None


def _csr_fields() -> dict[str, forms.Field]:
    return {
        "csr_file": forms.FileField(required=False, label="Certificate request file (PEM or DER)"),
        "csr_pem": forms.CharField(required=False, label="…or paste the certificate request (PEM)",
                                   widget=forms.Textarea(attrs={"rows": 6, "placeholder":
                                                                "-----BEGIN CERTIFICATE REQUEST-----"})),
    }


class KeySourceForm(_CsrMixin, forms.Form):
    """Make New Request: the token of the profile (User Generated = a CSR; the others = a keystore generated
    here with the chosen key), and the certificate format to download."""

    def __init__(self, *args, profile: EndEntityProfile, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["token_type"] = forms.TypedChoiceField(
            choices=token_choices(profile), coerce=int, widget=forms.RadioSelect, label="Key source",
            initial=profile.default_token_type,
            help_text="User generated: upload your CSR. Otherwise the key pair is generated here and delivered in "
                      "the keystore, protected by the password (PEM: unprotected; BCFKS: Bouncy Castle FIPS only).")
        self.fields.update(_csr_fields())
        self.fields["key_algorithm"] = forms.ChoiceField(
            choices=[(k, v[0]) for k, v in KEY_ALGORITHMS.items()], initial="RSA2048", label="Key algorithm",
            help_text="For a keystore generated here")
        self.fields["certificate_format"] = forms.ChoiceField(choices=CERTIFICATE_FORMATS, initial="pem",
                                                              label="Certificate format")
        self.csr: x509.CertificateSigningRequest | None = None

    @property
    def server_generated(self) -> bool:
        return TokenType(self.cleaned_data["token_type"]).server_generated

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("token_type") is None:
            return data
        if TokenType(data["token_type"]) == TokenType.USERGENERATED:
            self.csr = self.parsed_csr()
            if self.csr is None and not self.errors:
                self.add_error("csr_pem", "Upload or paste the certificate request (User generated key).")
        return data

    def key(self) -> tuple[str, str]:
        """(key_alg, key_spec) for the keystore service."""
        _, alg, spec = KEY_ALGORITHMS[self.cleaned_data["key_algorithm"]]
        return alg, spec


class UseUsernameForm(_CsrMixin, forms.Form):
    """Enroll an end entity registered before, with its username and enrollment code."""

    username = forms.CharField(max_length=255)
    enrollment_code = forms.CharField(strip=False, widget=forms.PasswordInput, label="Enrollment code")
    key_source = forms.ChoiceField(choices=[("csr", "I have a certificate request (user generated key)"),
                                            ("server", "Generate the key pair here (keystore of my token type)")],
                                   widget=forms.RadioSelect, initial="csr", label="Key")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(_csr_fields())
        self.fields["key_algorithm"] = forms.ChoiceField(
            choices=[(k, v[0]) for k, v in KEY_ALGORITHMS.items()], initial="RSA2048", label="Key algorithm")
        self.fields["certificate_format"] = forms.ChoiceField(choices=CERTIFICATE_FORMATS, initial="pem",
                                                              label="Certificate format")
        self.csr: x509.CertificateSigningRequest | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("key_source") == "csr":
            self.csr = self.parsed_csr()
            if self.csr is None and not self.errors:
                self.add_error("csr_pem", "Upload or paste the certificate request.")
        return data

    def key(self) -> tuple[str, str]:
        _, alg, spec = KEY_ALGORITHMS[self.cleaned_data["key_algorithm"]]
        return alg, spec


class ReenrollForm(forms.Form):
    """Re-enrollment in one step: a new enrollment code sets the end entity back to New."""

    password = forms.CharField(strip=False, widget=forms.PasswordInput, label="New enrollment code")
    password_confirm = forms.CharField(strip=False, widget=forms.PasswordInput, label="Repeat the enrollment code")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password") and data.get("password_confirm") is not None \
                and data["password"] != data["password_confirm"]:
            self.add_error("password_confirm", "The enrollment codes differ.")
        return data
