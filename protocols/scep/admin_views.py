"""Admin UI: "SCEP Configuration" (list, add, edit, delete aliases) and the approval requests of SCEP
enrollments. Thin views over :mod:`.services` and :mod:`.approvals`."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pki.errors import NotFoundError
from pki.models import CertificateAuthority, CertificateProfile
from pki.views.base import SERVICE_ERRORS, actor, form_error, form_status, posted, refusal_message, requires

from . import approvals, services
from .forms import ScepAliasForm
from .models import ApprovalRequest, ApprovalRequirement, ApprovalStatus

RULE = services.RULE
APPROVE_RULE = approvals.RULE


def _alias_or_404(name: str):
    try:
        return services.get_alias(name)
    except NotFoundError:
        raise Http404(f"No SCEP alias '{name}'") from None


@requires(RULE)
def alias_list(request: HttpRequest) -> HttpResponse:
    """Every alias with its mode and URL."""
    return render(request, "scep/alias_list.html", {"aliases": services.list_aliases()})


def _edit(request: HttpRequest, alias) -> HttpResponse:
    values = services.alias_values(alias) if alias else None
    form = ScepAliasForm(posted(request), initial=ScepAliasForm.initial_for(alias, values))
    refused = None
    if request.method == "POST" and form.is_valid():
        who = actor(request)
        name = form.cleaned_data["name"]
        try:
            if alias is None:
                saved = services.add_alias(who, name, **form.settings())
            else:
                if name != alias.name:
                    services.rename_alias(who, alias.name, name)
                saved = services.edit_alias(who, name, **form.settings())
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"SCEP alias '{saved.name}' saved.")
            return redirect("scep-alias-list")
    title = f"Edit SCEP alias {alias.name}" if alias else "Add SCEP alias"
    return render(request, "pki/form.html", {"form": form, "title": title, "submit": "Save",
                                             "cancel": "/system/scep/"}, status=form_status(form, refused))


@requires(RULE)
def alias_create(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@requires(RULE)
def alias_edit(request: HttpRequest, name: str) -> HttpResponse:
    return _edit(request, _alias_or_404(name))


@require_POST
@requires(RULE)
def alias_delete(request: HttpRequest, name: str) -> HttpResponse:
    alias = _alias_or_404(name)
    try:
        services.remove_alias(actor(request), alias.name)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"SCEP alias '{alias.name}' removed.")
    return redirect("scep-alias-list")


@require_POST
@requires(RULE)
def alias_ra_certificate(request: HttpRequest, name: str) -> HttpResponse:
    """Issue the certificate of the alias's RA key pair from the alias's CA."""
    alias = _alias_or_404(name)
    try:
        services.issue_ra_certificate(actor(request), alias.name)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"RA certificate of alias '{alias.name}' issued.")
    return redirect("scep-alias-list")


@requires(APPROVE_RULE)
def approval_list(request: HttpRequest) -> HttpResponse:
    """Waiting requests first, then the decided ones."""
    waiting = ApprovalRequest.objects.filter(status=ApprovalStatus.WAITING).select_related("ca", "alias")
    decided = ApprovalRequest.objects.exclude(status=ApprovalStatus.WAITING).select_related("ca", "alias")[:50]
    return render(request, "scep/approval_list.html", {
        "waiting": waiting, "decided": decided,
        "requirements": ApprovalRequirement.objects.select_related("ca", "certificate_profile"),
        "cas": CertificateAuthority.objects.local(), "profiles": CertificateProfile.objects.all(),
        "may_configure": actor(request).is_allowed(approvals.CONFIG_RULE),
    })


@require_POST
@requires(approvals.CONFIG_RULE)
def approval_requirement(request: HttpRequest) -> HttpResponse:
    """Turn "requires approval" on or off for a CA (``ca=<id>``) or certificate profile (``profile=<id>``)."""
    ca = get_object_or_404(CertificateAuthority, pk=request.POST["ca"]) if request.POST.get("ca") else None
    profile = (get_object_or_404(CertificateProfile, pk=request.POST["profile"])
               if request.POST.get("profile") else None)
    try:
        approvals.set_required(actor(request), ca=ca, certificate_profile=profile,
                               required=request.POST.get("required") == "1")
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    return redirect("scep-approval-list")


@require_POST
@requires(APPROVE_RULE)
def approval_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    req = get_object_or_404(ApprovalRequest, pk=pk)
    if decision not in ("approve", "reject"):
        raise Http404("Unknown decision")
    try:
        approvals.decide(actor(request), req.pk, approve=decision == "approve",
                         comment=request.POST.get("comment", ""))
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"Request of '{req.username}' {'approved' if decision == 'approve' else 'rejected'}.")
    return redirect("scep-approval-list")
