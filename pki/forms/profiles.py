"""Certificate profile form: checkboxes for key usage, named EKUs, key policy; a formset for custom extensions."""

from __future__ import annotations

from django import forms

from cryptotokens.backends.base import CURVES

from ..choices import ProfileType
from ..models import CertificateProfile
from ..x509.algorithms import OFFERED
from ..x509.extensions import CUSTOM_ENCODINGS, EKU_NAMES, EXTENDED_KEY_USAGES, KEY_USAGES

RSA_SIZES = [1024, 2048, 3072, 4096, 6144, 8192]


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=255)
    profile_type = forms.ChoiceField(choices=ProfileType.choices, label="Type")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    validity = forms.CharField(help_text="Days, or e.g. 2y, 1y 6mo, 90d")
    allow_validity_override = forms.BooleanField(required=False, help_text="Requests may ask for a shorter validity")
    allow_extension_override = forms.BooleanField(required=False, help_text="Take extensions from the CSR")
    key_usage = forms.MultipleChoiceField(choices=[(k, k) for k in KEY_USAGES], required=False,
                                          widget=forms.CheckboxSelectMultiple)
    key_usage_critical = forms.BooleanField(required=False, initial=True)
    extended_key_usage = forms.MultipleChoiceField(choices=[(o, n) for n, o in EXTENDED_KEY_USAGES.items()],
                                                   required=False, widget=forms.CheckboxSelectMultiple)
    extra_eku = forms.CharField(required=False, label="Other extended key usage OIDs",
                                help_text="Dotted OIDs separated by commas")
    extended_key_usage_critical = forms.BooleanField(required=False)
    allowed_key_algorithms = forms.MultipleChoiceField(choices=[(a, a) for a in ("RSA", "EC", "Ed25519", "Ed448")],
                                                       widget=forms.CheckboxSelectMultiple)
    allowed_rsa_sizes = forms.TypedMultipleChoiceField(choices=[(s, s) for s in RSA_SIZES], coerce=int,
                                                       required=False, widget=forms.CheckboxSelectMultiple)
    allowed_curves = forms.MultipleChoiceField(choices=[(c, c) for c in CURVES], required=False,
                                               widget=forms.CheckboxSelectMultiple)
    allowed_signature_algorithms = forms.MultipleChoiceField(
        choices=[(n, n) for n in OFFERED], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: whatever the CA uses")
    basic_constraints = forms.BooleanField(required=False, initial=True, label="Basic constraints extension")
    basic_constraints_critical = forms.BooleanField(required=False, initial=True)
    path_length = forms.IntegerField(required=False, min_value=0, help_text="CA profiles only")
    use_subject_key_id = forms.BooleanField(required=False, initial=True, label="Subject key identifier")
    use_authority_key_id = forms.BooleanField(required=False, initial=True, label="Authority key identifier")
    use_crl_distribution_point = forms.BooleanField(required=False, initial=True, label="CRL distribution point")
    use_authority_info_access = forms.BooleanField(required=False, initial=True, label="Authority information access")
    use_ocsp_no_check = forms.BooleanField(required=False, label="OCSP no check")

    PROFILE_FIELDS = ("profile_type", "description", "validity", "allow_validity_override",
                      "allow_extension_override", "key_usage", "key_usage_critical", "extended_key_usage_critical",
                      "allowed_key_algorithms", "allowed_rsa_sizes", "allowed_curves", "allowed_signature_algorithms",
                      "basic_constraints", "basic_constraints_critical", "path_length", "use_subject_key_id",
                      "use_authority_key_id", "use_crl_distribution_point", "use_authority_info_access",
                      "use_ocsp_no_check")

    @classmethod
    def initial_for(cls, profile: CertificateProfile) -> dict:
        initial = {f: getattr(profile, f) for f in cls.PROFILE_FIELDS}
        initial["name"] = profile.name
        named = set(EKU_NAMES)
        initial["extended_key_usage"] = [o for o in profile.extended_key_usage if o in named]
        initial["extra_eku"] = ", ".join(o for o in profile.extended_key_usage if o not in named)
        return initial

    def profile_values(self) -> dict:
        d = self.cleaned_data
        values = {f: d[f] for f in self.PROFILE_FIELDS}
        extra = [o.strip() for o in (d.get("extra_eku") or "").split(",") if o.strip()]
        values["extended_key_usage"] = list(d["extended_key_usage"]) + extra
        return values


class CustomExtensionForm(forms.Form):
    oid = forms.CharField(required=False, label="OID")
    critical = forms.BooleanField(required=False)
    encoding = forms.ChoiceField(choices=[(e, e) for e in CUSTOM_ENCODINGS], initial="UTF8String")
    value = forms.CharField(required=False, help_text="Hex for RAW and OCTETSTRING")
    dynamic = forms.BooleanField(required=False, help_text="Value from the end entity's data")


CustomExtensionFormSet = forms.formset_factory(CustomExtensionForm, extra=2)


def custom_extensions(formset) -> list[dict]:
    return [
        {k: f.cleaned_data[k] for k in ("oid", "critical", "encoding", "value", "dynamic")}
        for f in formset.forms if f.cleaned_data.get("oid")
    ]
