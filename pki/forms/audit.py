"""The audit log's filters."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from ..choices import AuditOutcome
from ..services.audit_filters import object_filter

DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class AuditFilterForm(forms.Form):
    """Event type, actor, object, outcome and a date range (UTC days, both ends included)."""

    event_type = forms.CharField(required=False, label="Event type",
                                 widget=forms.TextInput(attrs={"placeholder": "e.g. CERT_REVOKED"}),
                                 help_text="The start of the name is enough: CERT_ finds every certificate event")
    actor = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "Administrator"}))
    object = forms.CharField(required=False, max_length=255, label="Object",
                             widget=forms.TextInput(attrs={"placeholder": "Username, serial, CA or profile"}),
                             help_text="A username, a certificate serial number (any form), a CA or a profile name")
    outcome = forms.ChoiceField(choices=[("", "Any outcome")] + list(AuditOutcome.choices), required=False)
    since = forms.DateField(required=False, widget=DATE_INPUT, label="From")
    until = forms.DateField(required=False, widget=DATE_INPUT, label="To")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start of the date range is after its end.")
        return data

    def filter(self, qs: QuerySet) -> QuerySet:
        """``qs`` narrowed by the valid filters (unchanged when the form is unbound or invalid)."""
        if not self.is_bound or not self.is_valid():
            return qs
        d = self.cleaned_data
        if d["event_type"]:
            qs = qs.filter(event_type__istartswith=d["event_type"].strip())
        if d["actor"]:
            qs = qs.filter(actor__icontains=d["actor"].strip())
        if d["object"].strip():
            qs = qs.filter(object_filter(d["object"]))
        if d["outcome"]:
            qs = qs.filter(outcome=d["outcome"])
        if d["since"]:
            qs = qs.filter(timestamp__date__gte=d["since"])
        if d["until"]:
            qs = qs.filter(timestamp__date__lte=d["until"])
        return qs
