"""The audit log: filter (also by the object an event is about), page through, verify the HMAC chain, and
export the filtered view as CSV."""

from __future__ import annotations

import csv
import json

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from .. import audit
from ..forms.audit import AuditFilterForm
from ..models import AuditEvent
from ..services.audit_filters import object_url
from .base import actor, form_status, paginate, requires
from .listing import sort_queryset

# The columns the log sorts by (``?o=``): time is the sequence (the chain's order), ties keep it too.
# Only indexed columns: the log is the largest table of an installation.
SORT_COLUMNS = {"sequence": ["sequence"], "event": ["event_type", "sequence"]}
CSV_COLUMNS = ["sequence", "timestamp", "event_type", "outcome", "actor", "object_type", "object_id", "details"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@requires("/audit/view")
def audit_log(request: HttpRequest) -> HttpResponse:
    """Audit events newest first, 50 to a page; ``?verify=1`` also checks the whole chain, ``?format=csv``
    downloads every event the filters select."""
    params = request.GET.copy()
    verify = params.pop("verify", None) is not None
    as_csv = params.pop("format", [""])[-1] == "csv"
    form = AuditFilterForm(params or None)
    events, sorting = sort_queryset(request, form.filter(AuditEvent.objects.all()), SORT_COLUMNS, "-sequence")
    if as_csv and not (form.is_bound and form.errors):
        return _export(request, form, events)
    report = audit.verify_chain() if verify else None
    page = paginate(request, events)
    for event in page:
        event.object_url = object_url(event)
    params.pop("page", None)
    return render(request, "pki/audit.html", {"form": form, "page": page, "report": report, "sorting": sorting,
                                              "params": params.urlencode()}, status=form_status(form))


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: values an attacker chose (usernames, DNs) that start like a
    formula get a leading apostrophe."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _export(request: HttpRequest, form: AuditFilterForm, events) -> StreamingHttpResponse:
    """Stream the selected events as CSV (read in chunks, never all in memory); the export is audited."""
    filters = {k: v for k, v in (form.cleaned_data.items() if form.is_bound else ()) if v not in ("", None)}
    audit.record("AUDIT_EXPORT", actor(request).name, object_type="audit_log",
                 details={"filters": {k: str(v) for k, v in filters.items()}, "events": events.count()})
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for e in events.iterator(chunk_size=2000):
            yield writer.writerow([e.sequence, e.timestamp.isoformat(), _cell(e.event_type), e.outcome,
                                   _cell(e.actor), _cell(e.object_type), _cell(e.object_id), _cell(e.details)])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
