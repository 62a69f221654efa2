"""Bulk actions of list pages: each selected row goes through the same service call, access rules, approval
gate and audit event as the single action on its own page; the result page tells, row by row, what happened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse

from ..choices import RevocationReason
from ..errors import as_pki_error
from ..forms.bulk import BulkRevokeForm
from ..services.approvals import WaitingForApproval
from .base import SERVICE_ERRORS


@dataclass
class BulkOutcome:
    """What became of one selected row."""

    label: str
    url: str | None
    state: str  # "done", "approval" (stored as an approval request), "refused", "missing"
    message: str
    approval_id: int | None = None


@dataclass
class BulkItem:
    """A row to act on: its label and page, and the one service call that acts on it."""

    label: str
    url: str
    act: Callable[[], object]


def back_url(list_view: str, back: str) -> str:
    """The list page with the filters, order and page it was submitted from (only a query string is taken)."""
    query = QueryDict(back or "").urlencode()
    return reverse(list_view) + (f"?{query}" if query else "")


def run(items: list[BulkItem], done: str) -> list[BulkOutcome]:
    """Act on each item in turn; one refusal (or approval) never stops the others."""
    outcomes = []
    for item in items:
        try:
            item.act()
        except WaitingForApproval as waiting:
            outcomes.append(BulkOutcome(item.label, item.url, "approval", waiting.message, waiting.request_id))
        except SERVICE_ERRORS as exc:
            outcomes.append(BulkOutcome(item.label, item.url, "refused", as_pki_error(exc).message))
        else:
            outcomes.append(BulkOutcome(item.label, item.url, "done", done))
    return outcomes


def bulk_revoke(request: HttpRequest, *, what: str, list_view: str, find: Callable[[list[int]], dict[int, object]],
                item: Callable[[object, int], BulkItem], base: str = "base.html") -> HttpResponse:
    """Revoke the selected rows of a list page with the posted reason and show the outcome of each.

    ``find(ids)`` returns the rows the caller may see by id (others are reported as not found, as their pages
    would answer 404); ``item(row, reason)`` makes the service call for one row.
    """
    form = BulkRevokeForm(request.POST)
    back = back_url(list_view, request.POST.get("back", ""))
    if not form.is_valid():
        return render(request, "pki/bulk_result.html", {"base": base, "what": what, "form": form, "back": back},
                      status=400)
    ids, reason = form.cleaned_data["id"], form.cleaned_data["reason"]
    rows = find(ids)
    items = [item(rows[pk], reason) for pk in ids if pk in rows]
    outcomes = run(items, "On hold." if reason == RevocationReason.CERTIFICATE_HOLD else "Revoked.")
    outcomes += [BulkOutcome(f"#{pk}", None, "missing", "Not found.") for pk in ids if pk not in rows]
    counts = {state: sum(1 for o in outcomes if o.state == state) for state in ("done", "approval", "refused",
                                                                                  "missing")}
    return render(request, "pki/bulk_result.html", {
        "base": base, "what": what, "outcomes": outcomes, "counts": counts, "back": back,
        "reason": dict(form.fields["reason"].choices).get(reason, reason)})
