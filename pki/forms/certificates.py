"""Forms of the certificate pages: search, revoke, issue for a CSR."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from django import forms

from ..choices import CertificateStatus, ProfileType, RevocationReason
from ..models import CertificateAuthority, CertificateProfile
from ..services.certificates import CertificateQuery
from .base import FieldsetsMixin

DATE_INPUT = forms.DateInput(attrs={"type": "date"})


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class SearchForm(forms.Form):
    """One text box (subject, SAN, user name, serial or fingerprint) and filters."""

    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(
        attrs={"placeholder": "Subject, SAN, user name, serial or fingerprint", "type": "search"}))
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), required=False, empty_label="Any CA",
                                label="CA")
    status = forms.ChoiceField(choices=[("", "Any status")] + list(CertificateStatus.choices), required=False)
    expires_after = forms.DateField(required=False, widget=DATE_INPUT, label="Expires after")
    expires_before = forms.DateField(required=False, widget=DATE_INPUT, label="Expires before")

    def __init__(self, *args, cas=None, **kwargs):
        super().__init__(*args, **kwargs)
        if cas is not None:
            self.fields["ca"].queryset = cas

    def query(self) -> CertificateQuery:
        """The search criteria (none when the form is invalid or empty)."""
        if not self.is_bound or not self.is_valid():
            return CertificateQuery()
        d = self.cleaned_data
        return CertificateQuery(
            text=d["q"], ca=d["ca"], status=d["status"],
            expires_after=_start_of(d["expires_after"]) if d["expires_after"] else None,
            expires_before=_start_of(d["expires_before"]) if d["expires_before"] else None,
        )


class RevokeForm(forms.Form):
    """A revocation reason (certificateHold suspends; removeFromCRL is the separate "take off hold")."""

    reason = forms.TypedChoiceField(
        coerce=int, label="Revocation reason",
        choices=[(r.value, r.label) for r in RevocationReason if r != RevocationReason.REMOVE_FROM_CRL])

    def __init__(self, *args, on_hold: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if on_hold:  # already suspended: only a final reason is left to choose
            self.fields["reason"].choices = [c for c in self.fields["reason"].choices
                                             if c[0] != RevocationReason.CERTIFICATE_HOLD]


class IssueForm(FieldsetsMixin, forms.Form):
    """A PKCS#10 request (pasted or uploaded) to be issued by a CA under a certificate profile."""

    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.none(), label="CA")
    certificate_profile = forms.ModelChoiceField(
        queryset=CertificateProfile.objects.filter(profile_type=ProfileType.ENDENTITY), label="Certificate profile")
    csr_file = forms.FileField(required=False, label="CSR file (PEM or DER)")
    csr_pem = forms.CharField(required=False, label="…or paste the PEM request",
                              widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false",
                                                           "placeholder": "-----BEGIN CERTIFICATE REQUEST-----"}))
    subject_dn = forms.CharField(required=False, label="Subject DN",
                                 help_text="Empty: the request's subject; e.g. CN=host.example.com,O=Example")
    subject_alt_name = forms.CharField(
        required=False, label="Subject alternative names",
        help_text='e.g. "DNSNAME=a.example.com, IPADDRESS=10.0.0.1"; empty: the request\'s')
    validity = forms.CharField(required=False,
                               help_text="Only where the profile allows validity override, e.g. 90 or 1y")
    username = forms.CharField(required=False, max_length=255, label="User name")

    fieldsets = [
        ("Issuer", ["ca", "certificate_profile"]),
        ("Certificate request", ["csr_file", "csr_pem"]),
        ("Overrides", ["subject_dn", "subject_alt_name", "validity", "username"]),
    ]

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
