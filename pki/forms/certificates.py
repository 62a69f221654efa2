"""Forms of the certificate pages: search, revoke, issue for a CSR."""

from __future__ import annotations

from django import forms

from ..choices import CertificateStatus, ProfileType, RevocationReason
from ..models import CertificateAuthority, CertificateProfile


class SearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(
        attrs={"placeholder": "Subject, SAN, user name, serial or fingerprint"}))
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.all(), required=False, empty_label="Any CA")
    status = forms.ChoiceField(choices=[("", "Any status")] + list(CertificateStatus.choices), required=False)
    expires_after = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    expires_before = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class RevokeForm(forms.Form):
    reason = forms.TypedChoiceField(
        coerce=int, choices=[(r.value, r.label) for r in RevocationReason if r != RevocationReason.REMOVE_FROM_CRL])


class IssueForm(forms.Form):
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), label="CA")
    certificate_profile = forms.ModelChoiceField(
        queryset=CertificateProfile.objects.filter(profile_type=ProfileType.ENDENTITY), label="Certificate profile")
    csr_file = forms.FileField(required=False, label="CSR file (PEM or DER)")
    csr_pem = forms.CharField(required=False, label="…or paste the PEM request",
                              widget=forms.Textarea(attrs={"rows": 8}))
    subject_dn = forms.CharField(required=False, label="Subject DN",
                                 help_text="Empty: the request's subject; e.g. CN=host.example.com,O=Example")
    subject_alt_name = forms.CharField(
        required=False, label="Subject alternative names",
        help_text='e.g. "DNSNAME=a.example.com, IPADDRESS=10.0.0.1"; empty: the request\'s')
    validity = forms.CharField(required=False, help_text="Only where the profile allows override, e.g. 90 or 1y")
    username = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, cas=None, **kwargs):
        super().__init__(*args, **kwargs)
        if cas is not None:
            self.fields["ca"].queryset = cas

    def clean(self):
        data = super().clean()
        if not data.get("csr_file") and not (data.get("csr_pem") or "").strip():
            raise forms.ValidationError("Upload a CSR file or paste the PEM request.")
        return data

    def csr_bytes(self) -> bytes:
        if self.cleaned_data.get("csr_file"):
            return self.cleaned_data["csr_file"].read()
        return self.cleaned_data["csr_pem"].strip().encode()
