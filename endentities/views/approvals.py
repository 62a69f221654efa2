"""RA portal: "Approve requests" (EJBCA's Manage Requests): the requests waiting for the caller's approval, one
request in full (what was asked, by whom, through which interface, the PKCS#10 request decoded, the decisions
so far) and approve/reject with a comment. Thin views over :mod:`pki.services.approvals`."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from pki.errors import AuthorizationDenied, NotFoundError
from pki.models.approvals import ApprovalStatus
from pki.services import approvals
from pki.views.base import SERVICE_ERRORS, actor, not_authorized, paginate, refusal_message

# Any one of these opens the pages; deciding checks the request's own rule (and its CA) in the service.
RULES = (approvals.APPROVE_END_ENTITY_RULE, approvals.APPROVE_CA_RULE, approvals.VIEW_RULE)
# Keys of a request's data that are never shown (sealed secrets).
HIDDEN = {"password"}


def _allowed(request: HttpRequest) -> bool:
    who = actor(request)
    return any(who.is_allowed(rule) for rule in RULES)


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    """Waiting requests (or those of ``?status=``), newest first."""
    if not _allowed(request):
        return not_authorized(request, RULES[0])
    status = request.GET.get("status", ApprovalStatus.WAITING)
    if status not in ApprovalStatus.values:
        status = ApprovalStatus.WAITING
    qs = approvals.with_status(approvals.visible(actor(request)), status)
    return render(request, "ra/approval_list.html", {
        "page": paginate(request, qs), "status": status, "statuses": ApprovalStatus.choices,
    })


def _csr_info(der: bytes | None) -> dict | None:
    if not der:
        return None
    try:
        csr = x509.load_der_x509_csr(bytes(der))
    except ValueError:
        return {"error": "The stored request cannot be read."}
    key = csr.public_key()
    try:
        alt = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt_names = ", ".join(str(n.value) for n in alt)
    except (x509.ExtensionNotFound, ValueError):
        alt_names = ""
    return {"subject": csr.subject.rfc4514_string(), "key": type(key).__name__.lstrip("_"),
            "key_size": getattr(key, "key_size", ""), "alt_names": alt_names,
            "pem": csr.public_bytes(Encoding.PEM).decode()}


@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One request in full, with the approve/reject form while it waits."""
    if not _allowed(request):
        return not_authorized(request, RULES[0])
    who = actor(request)
    try:
        req = approvals.get_request(who, pk)
    except NotFoundError:
        raise Http404("No such approval request") from None
    data = sorted((k, v) for k, v in (req.data or {}).items() if k not in HIDDEN)
    return render(request, "ra/approval_detail.html", {
        "req": req, "data": data, "csr": _csr_info(req.request_der), "decisions": req.approvals.all(),
        "own": req.requested_by == who.name and req.requester_kind == who.kind,
        "may_decide": who.is_allowed(approvals.rule_for(req.action)),
        "waiting": req.status == ApprovalStatus.WAITING and not req.is_expired,
    })


@login_required
@require_POST
def request_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve or reject (``decision``) with a ``comment``."""
    if not _allowed(request):
        return not_authorized(request, RULES[0])
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        messages.error(request, "Choose approve or reject.")
        return redirect("ra-approval-detail", pk=pk)
    who = actor(request)
    try:
        req = approvals.get_request(who, pk)
    except NotFoundError:
        raise Http404("No such approval request") from None
    try:
        req = approvals.decide(who, req.pk, approve=decision == "approve", comment=request.POST.get("comment", ""))
    except AuthorizationDenied as exc:
        messages.error(request, exc.message)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        if req.status == ApprovalStatus.FAILED:
            messages.error(request, f"Approved, but carrying it out failed: {req.result}")
        else:
            messages.success(request, f"Request {req.pk} {'approved' if decision == 'approve' else 'rejected'}"
                             f" ({req.get_status_display().lower()}).")
    return redirect("ra-approval-detail", pk=pk)
