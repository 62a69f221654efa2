"""The audit log: filter, page through, verify the HMAC chain."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .. import audit
from ..forms.audit import AuditFilterForm
from ..models import AuditEvent
from .base import form_status, paginate, requires


@requires("/audit/view")
def audit_log(request: HttpRequest) -> HttpResponse:
    """Audit events newest first, 50 to a page; ``?verify=1`` also checks the whole chain."""
    params = request.GET.copy()
    verify = params.pop("verify", None) is not None
    form = AuditFilterForm(params or None)
    report = audit.verify_chain() if verify else None
    page = paginate(request, form.filter(AuditEvent.objects.order_by("-sequence")))
    params.pop("page", None)
    return render(request, "pki/audit.html", {"form": form, "page": page, "report": report,
                                              "params": params.urlencode()}, status=form_status(form))
