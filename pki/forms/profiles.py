"""Certificate profile form: checkboxes for key usage, named EKUs and the key policy; a formset of rows
for custom extensions (a fixed number of blank rows, so it works without JavaScript)."""

from __future__ import annotations

from django import forms

from cryptotokens.backends.base import CURVES

from ..choices import ProfileType
from ..models import CertificateProfile
from ..x509.algorithms import OFFERED
from ..x509.extensions import CUSTOM_ENCODINGS, EKU_NAMES, EXTENDED_KEY_USAGES, KEY_USAGES, eku_oid
from .base import FieldsetsMixin

RSA_SIZES = [1024, 2048, 3072, 4096, 6144, 8192]
KEY_ALGORITHMS = ("RSA", "EC", "Ed25519", "Ed448")
CHECKBOXES = forms.CheckboxSelectMultiple


def _oid(eku: str) -> str:
    # Built-in profiles keep EKU names (serverAuth); saved ones keep OIDs.
    try:
        return eku_oid(eku)
    except ValueError:
        return eku


class ProfileForm(FieldsetsMixin, forms.Form):
    """Every setting of a certificate profile except its custom extensions (see CustomExtensionFormSet)."""

    name = forms.CharField(max_length=255)
    profile_type = forms.ChoiceField(choices=ProfileType.choices, label="Type")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    validity = forms.CharField(help_text="Days, or e.g. 2y, 1y 6mo, 90d, 397 days")
    allow_validity_override = forms.BooleanField(required=False, label="Allow validity override",
                                                 help_text="Requests may ask for a shorter validity")
    allow_extension_override = forms.BooleanField(required=False, label="Allow extension override",
                                                  help_text="Take extensions from the CSR")
    allow_dn_override = forms.BooleanField(required=False, label="Allow subject DN override by CSR",
                                           help_text="Use the subject DN of the CSR as is")
    key_usage = forms.MultipleChoiceField(choices=[(k, k) for k in KEY_USAGES], required=False, widget=CHECKBOXES,
                                          label="Key usage")
    key_usage_critical = forms.BooleanField(required=False, initial=True, label="Key usage critical")
    extended_key_usage = forms.MultipleChoiceField(choices=[(o, n) for n, o in EXTENDED_KEY_USAGES.items()],
                                                   required=False, widget=CHECKBOXES, label="Extended key usage")
    extra_eku = forms.CharField(required=False, label="Other extended key usage OIDs",
                                help_text="Dotted OIDs separated by commas")
    extended_key_usage_critical = forms.BooleanField(required=False, label="Extended key usage critical")
    allowed_key_algorithms = forms.MultipleChoiceField(choices=[(a, a) for a in KEY_ALGORITHMS], widget=CHECKBOXES,
                                                       label="Available key algorithms")
    allowed_rsa_sizes = forms.TypedMultipleChoiceField(choices=[(s, s) for s in RSA_SIZES], coerce=int,
                                                       required=False, widget=CHECKBOXES,
                                                       label="Available RSA key sizes")
    allowed_curves = forms.MultipleChoiceField(choices=[(c, c) for c in CURVES], required=False, widget=CHECKBOXES,
                                               label="Available ECDSA curves")
    allowed_signature_algorithms = forms.MultipleChoiceField(
        choices=[(n, n) for n in OFFERED], required=False, widget=CHECKBOXES, label="Signature algorithms",
        help_text="None ticked: whatever the CA uses")
    basic_constraints = forms.BooleanField(required=False, initial=True, label="Basic constraints")
    basic_constraints_critical = forms.BooleanField(required=False, initial=True, label="Basic constraints critical")
    path_length = forms.IntegerField(required=False, min_value=0, label="Path length constraint",
                                     help_text="CA profiles only; empty: no limit")
    use_subject_key_id = forms.BooleanField(required=False, initial=True, label="Subject key identifier")
    use_authority_key_id = forms.BooleanField(required=False, initial=True, label="Authority key identifier")
    use_crl_distribution_point = forms.BooleanField(required=False, initial=True,
                                                    label="CRL distribution points")
    use_authority_info_access = forms.BooleanField(required=False, initial=True,
                                                   label="Authority information access")
    use_ocsp_no_check = forms.BooleanField(required=False, label="OCSP no check")
    use_cabf_organization_identifier = forms.BooleanField(
        required=False, label="CA/B Forum organization identifier",
        help_text="Put the identifier an end entity profile's field of that name gives into certificates")

    PROFILE_FIELDS = ("profile_type", "description", "validity", "allow_validity_override",
                      "allow_extension_override", "allow_dn_override", "key_usage", "key_usage_critical",
                      "extended_key_usage_critical", "allowed_key_algorithms", "allowed_rsa_sizes", "allowed_curves",
                      "allowed_signature_algorithms", "basic_constraints", "basic_constraints_critical",
                      "path_length", "use_subject_key_id", "use_authority_key_id", "use_crl_distribution_point",
                      "use_authority_info_access", "use_ocsp_no_check", "use_cabf_organization_identifier")

    fieldsets = [
        ("Profile", ["name", "profile_type", "description", "validity", "allow_validity_override",
                     "allow_extension_override", "allow_dn_override"]),
        ("Keys and signatures", ["allowed_key_algorithms", "allowed_rsa_sizes", "allowed_curves",
                                 "allowed_signature_algorithms"]),
        ("Key usage", ["key_usage", "key_usage_critical"]),
        ("Extended key usage", ["extended_key_usage", "extra_eku", "extended_key_usage_critical"]),
        ("Basic constraints", ["basic_constraints", "basic_constraints_critical", "path_length"]),
        ("Other extensions", ["use_subject_key_id", "use_authority_key_id", "use_crl_distribution_point",
                              "use_authority_info_access", "use_ocsp_no_check",
                              "use_cabf_organization_identifier"]),
    ]

    NEW_PROFILE = {"profile_type": ProfileType.ENDENTITY, "validity": "2y", "allowed_key_algorithms": ["RSA", "EC"],
                   "allowed_rsa_sizes": [2048, 3072, 4096], "allowed_curves": ["secp256r1", "secp384r1"],
                   "key_usage": ["digitalSignature", "keyEncipherment"]}

    @classmethod
    def initial_for(cls, profile: CertificateProfile | None) -> dict:
        """Initial values: the profile's, or sensible ones for a new end entity profile."""
        if profile is None:
            return dict(cls.NEW_PROFILE)
        initial = {f: getattr(profile, f) for f in cls.PROFILE_FIELDS}
        initial["name"] = profile.name
        oids = [_oid(e) for e in profile.extended_key_usage]
        initial["extended_key_usage"] = [o for o in oids if o in EKU_NAMES]
        initial["extra_eku"] = ", ".join(o for o in oids if o not in EKU_NAMES)
        return initial

    def profile_values(self) -> dict:
        """The values for ``save_profile`` (named EKUs and extra OIDs in one list)."""
        d = self.cleaned_data
        values = {f: d[f] for f in self.PROFILE_FIELDS}
        extra = [o.strip() for o in (d.get("extra_eku") or "").split(",") if o.strip()]
        values["extended_key_usage"] = list(d["extended_key_usage"]) + extra
        return values


class CustomExtensionForm(forms.Form):
    """One custom extension row; a row without an OID is ignored."""

    # The row's fields sit under the table's column headers, with no label of their own: each is named for
    # assistive technology by aria-label.
    oid = forms.CharField(required=False, label="OID", widget=forms.TextInput(
        attrs={"placeholder": "1.2.3.4", "aria-label": "Extension OID"}))
    critical = forms.BooleanField(required=False, widget=forms.CheckboxInput(attrs={"aria-label": "Critical"}))
    encoding = forms.ChoiceField(choices=[(e, e) for e in CUSTOM_ENCODINGS], initial="UTF8String",
                                 widget=forms.Select(attrs={"aria-label": "Encoding"}))
    value = forms.CharField(required=False, help_text="Hex for RAW and OCTETSTRING",
                            widget=forms.TextInput(attrs={"aria-label": "Value"}))
    dynamic = forms.BooleanField(required=False, help_text="Value from the end entity's data",
                                 widget=forms.CheckboxInput(attrs={"aria-label": "Dynamic"}))

    FIELDS = ("oid", "critical", "encoding", "value", "dynamic")

    def clean(self):
        data = super().clean()
        if data.get("oid") and not data.get("dynamic") and not data.get("value"):
            self.add_error("value", "Give a value, or tick dynamic to take it from the end entity.")
        return data


CustomExtensionFormSet = forms.formset_factory(CustomExtensionForm, extra=3)


def custom_extensions(formset) -> list[dict]:
    """The filled-in rows of a valid formset, as the profile stores them."""
    return [{k: f.cleaned_data[k] for k in CustomExtensionForm.FIELDS}
            for f in formset.forms if f.cleaned_data.get("oid")]
