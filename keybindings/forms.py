"""Key binding forms of the admin UI. No script needed: the key is one select of "token / alias" pairs."""

from __future__ import annotations

from django import forms

from cryptotokens.forms import KEY_SPECS
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.choices import ProfileType
from pki.models import CertificateAuthority, CertificateProfile
from pki.x509.algorithms import OFFERED

from . import tls

NEW_KEY = "__new__"
SIGALG_CHOICES = [("", "Default for the key")] + [(n, n) for n in OFFERED]


def _suite_choices() -> list[tuple[str, str]]:
    try:
        return [(e, e) for e in tls.allowed_entries()]
    except tls.CipherSuiteError as exc:  # a bad setting: show nothing to choose and say why on the form
        return [("", f"PKI_TLS_CIPHER_SUITES is invalid: {exc.message}")]


def parse_trusted(text: str) -> list[dict[str, str]]:
    """One entry a line: ``CA name`` or ``CA name;serial``."""
    out = []
    for line in (text or "").splitlines():
        if line.strip():
            ca, _, serial = line.partition(";")
            out.append({"ca": ca.strip(), "serial": serial.strip()})
    return out


def format_trusted(entries: list[dict]) -> str:
    names = dict(CertificateAuthority.objects.values_list("pk", "name"))
    return "\n".join(names.get(e["ca_id"], str(e["ca_id"])) + (f";{e['serial']}" if e.get("serial") else "")
                     for e in entries)


class _TrustAndTls(forms.Form):
    signature_algorithm = forms.ChoiceField(choices=SIGALG_CHOICES, required=False)
    trusted_certificates = forms.CharField(
        required=False, label="Trusted server certificates",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "placeholder": "ManagementCA;1a2b3c"}),
        help_text="One a line: a CA name (any certificate it issued) or 'CA name;serial' (that certificate). "
                  "Empty: any CA known here.")
    protocol_and_cipher_suites = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Protocol and cipher suites",
        help_text="None chosen: every pair PKI_TLS_CIPHER_SUITES allows. TLS 1.3 suites cannot be restricted in "
                  "the offer (Python's ssl); the negotiated one is checked after the handshake.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["protocol_and_cipher_suites"].choices = _suite_choices()

    def trusted(self) -> list[dict[str, str]]:
        return parse_trusted(self.cleaned_data.get("trusted_certificates", ""))


class BindingCreateForm(_TrustAndTls):
    name = forms.CharField(max_length=255)
    key_pair = forms.ChoiceField(label="Crypto token and key pair",
                                 help_text="An existing key pair, or a new key on the token chosen below")
    new_key_token = forms.ModelChoiceField(queryset=CryptoToken.objects.none(), required=False,
                                           label="Token for a new key")
    key_spec = forms.ChoiceField(choices=KEY_SPECS, required=False, initial="P-256", label="New key specification")

    field_order = ["name", "key_pair", "new_key_token", "key_spec", "signature_algorithm", "trusted_certificates",
                   "protocol_and_cipher_suites"]

    def __init__(self, *args, tokens=None, **kwargs):
        super().__init__(*args, **kwargs)
        tokens = tokens if tokens is not None else CryptoToken.objects.all()
        groups: list = [(NEW_KEY, "Generate a new key pair")]
        for token in tokens:
            pairs = CryptoTokenKeyPair.objects.filter(token=token).order_by("alias")
            groups.append((token.name, [(f"{token.pk}:{kp.alias}", f"{token.name} / {kp.alias} ({kp.key_spec})")
                                        for kp in pairs]))
        self.fields["key_pair"].choices = groups
        self.fields["new_key_token"].queryset = tokens

    def clean(self):
        data = super().clean()
        choice = data.get("key_pair")
        if choice == NEW_KEY:
            if not data.get("new_key_token"):
                self.add_error("new_key_token", "Choose the token for the new key.")
            data["token"], data["alias"] = data.get("new_key_token"), ""
        elif choice:
            token_pk, _, alias = choice.partition(":")
            data["token"], data["alias"] = int(token_pk), alias
            data["key_spec"] = ""
        return data


class BindingEditForm(_TrustAndTls):
    name = forms.CharField(max_length=255)
    next_key_pair_alias = forms.ChoiceField(required=False, label="Next key pair alias")
    field_order = ["name", "signature_algorithm", "next_key_pair_alias", "trusted_certificates",
                   "protocol_and_cipher_suites"]

    def __init__(self, binding, *args, **kwargs):
        kwargs.setdefault("initial", {
            "name": binding.name, "signature_algorithm": binding.signature_algorithm,
            "next_key_pair_alias": binding.next_key_pair_alias,
            "trusted_certificates": format_trusted(binding.trusted_certificates),
            "protocol_and_cipher_suites": binding.protocol_and_cipher_suites})
        super().__init__(*args, **kwargs)
        aliases = CryptoTokenKeyPair.objects.filter(token_id=binding.crypto_token_id).exclude(
            alias=binding.key_pair_alias).values_list("alias", flat=True)
        self.fields["next_key_pair_alias"].choices = [("", "None")] + [(a, a) for a in aliases]


class IssueForm(forms.Form):
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), label="CA")
    certificate_profile = forms.ModelChoiceField(
        queryset=CertificateProfile.objects.filter(profile_type=ProfileType.ENDENTITY), label="Certificate profile")
    subject_dn = forms.CharField(required=False, label="Subject DN", help_text="Empty: CN=<binding name>")
    validity = forms.CharField(required=False, help_text="Only where the profile allows validity override")
    next_key = forms.BooleanField(required=False, label="Certify the next key (and switch to it)")

    def __init__(self, *args, cas=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ca"].queryset = cas if cas is not None else CertificateAuthority.objects.local()


class ImportForm(forms.Form):
    certificate_file = forms.FileField(required=False, label="Certificate file (PEM or DER)")
    certificate_pem = forms.CharField(required=False, label="…or paste the PEM certificate",
                                      widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}))

    def clean(self):
        data = super().clean()
        upload = data.get("certificate_file")
        if upload is not None:
            if upload.size > 65536:
                raise forms.ValidationError("The certificate file is too large.")
            data["certificate"] = upload.read()
        elif data.get("certificate_pem"):
            data["certificate"] = data["certificate_pem"]
        else:
            raise forms.ValidationError("Upload or paste the certificate.")
        return data


class CsrForm(forms.Form):
    subject_dn = forms.CharField(required=False, label="Subject DN")
    next_key = forms.BooleanField(required=False, label="For the next key")


class RenewForm(forms.Form):
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), required=False, label="CA",
                                help_text="Empty: the CA of the current certificate")
    certificate_profile = forms.ModelChoiceField(
        queryset=CertificateProfile.objects.filter(profile_type=ProfileType.ENDENTITY), required=False,
        label="Certificate profile", help_text="Empty: the profile of the current certificate")

    def __init__(self, *args, cas=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ca"].queryset = cas if cas is not None else CertificateAuthority.objects.local()
