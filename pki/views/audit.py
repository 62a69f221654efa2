"""The audit log: filter, page through, verify the HMAC chain."""

from __future__ import annotations

from django import forms
from django.shortcuts import render

from .. import audit
from ..choices import AuditOutcome
from ..models import AuditEvent
from .base import paginate, requires


class AuditFilter(forms.Form):
    event_type = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "Event type"}))
    actor = forms.CharField(required=False, widget=forms.TextInput(attrs={"placeholder": "Actor"}))
    outcome = forms.ChoiceField(choices=[("", "Any outcome")] + list(AuditOutcome.choices), required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


@requires("/audit/view")
def audit_log(request):
    form = AuditFilter(request.GET or None)
    qs = AuditEvent.objects.all()
    if form.is_valid():
        d = form.cleaned_data
        if d["event_type"]:
            qs = qs.filter(event_type__icontains=d["event_type"])
        if d["actor"]:
            qs = qs.filter(actor__icontains=d["actor"])
        if d["outcome"]:
            qs = qs.filter(outcome=d["outcome"])
        if d["since"]:
            qs = qs.filter(timestamp__date__gte=d["since"])
        if d["until"]:
            qs = qs.filter(timestamp__date__lte=d["until"])
    report = audit.verify_chain() if request.GET.get("verify") else None
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("verify", None)
    return render(request, "pki/audit.html", {"form": form, "page": paginate(request, qs), "report": report,
                                              "params": params.urlencode()})
