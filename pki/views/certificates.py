"""Certificate pages: search, view, download, revoke / hold / take off hold, issue for a CSR."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..approval_actions import gate_issue
from ..choices import CertificateStatus
from ..forms.bulk import BulkRevokeForm
from ..forms.cas import usable_cas
from ..forms.certificates import IssueForm, RevokeForm, SearchForm
from ..issuance import IssuanceRequest, issue
from ..models import Certificate, CertificateAuthority
from ..revocation import revoke, unrevoke
from ..services.approvals import WaitingForApproval
from ..services.certificates import restrict, search_certificates, visible_ca_ids
from .base import (
    SERVICE_ERRORS,
    actor,
    form_error,
    form_status,
    paginate,
    posted,
    query_without_page,
    refusal_message,
    requires,
    safe_filename,
)
from .bulk import BulkItem, bulk_revoke
from .cas import DOWNLOADS
from .certinfo import describe
from .listing import hex_serial, sort_queryset

# The columns a certificate list sorts by (``?o=``), and the order without one: newest first.
SORT_COLUMNS = {
    "subject": ["subject_dn"], "serial": hex_serial(), "ca": ["ca__name"], "profile": ["certificate_profile__name"],
    "expires": ["not_after"], "status": ["status"], "issued": ["created_at"],
}


@requires("/ca_functionality/view_certificate")
def certificate_list(request: HttpRequest) -> HttpResponse:
    """Search certificates by one text box and filters, 50 to a page, newest first."""
    who = actor(request)
    form = SearchForm(request.GET or None, cas=CertificateAuthority.objects.filter(pk__in=visible_ca_ids(who)))
    try:
        results = search_certificates(who, form.query())
    except SERVICE_ERRORS as exc:
        form_error(form, exc)
        results = Certificate.objects.none()
    results, sorting = sort_queryset(request, results, SORT_COLUMNS, "-issued")
    return render(request, "pki/certificate_list.html", {
        "form": form, "page": paginate(request, results), "params": query_without_page(request),
        "sorting": sorting, "bulk_form": BulkRevokeForm(),
    }, status=form_status(form))


def bulk_revoke_certificates(request: HttpRequest, *, list_view: str, detail_view: str, base: str = "base.html"
                             ) -> HttpResponse:
    """Revoke the certificates checked on a list page, each as its own revocation (rules, approval, audit)."""
    who = actor(request)

    def item(cert: Certificate, reason: int) -> BulkItem:
        return BulkItem(cert.serial.upper(), reverse(detail_view, args=[cert.pk]),
                        lambda: revoke(who, cert, reason))

    return bulk_revoke(request, what="certificates", list_view=list_view, base=base, item=item,
                       find=lambda ids: restrict(Certificate.objects.select_related("ca"), who).in_bulk(ids))


@require_POST
@requires("/ra_functionality/revoke_end_entity")
def certificate_bulk_revoke(request: HttpRequest) -> HttpResponse:
    """Revoke the certificates selected on the certificate list with one reason."""
    return bulk_revoke_certificates(request, list_view="certificate-list", detail_view="certificate-detail")


def _visible(request: HttpRequest, pk: int) -> Certificate:
    """The certificate, if issued by a CA the caller may see (else 404: its existence is not told)."""
    qs = restrict(Certificate.objects.select_related("ca", "certificate_profile"), actor(request))
    return get_object_or_404(qs, pk=pk)


@requires("/ca_functionality/view_certificate")
def certificate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A certificate decoded, with its status, downloads and (for those allowed) the revocation form."""
    cert = _visible(request, pk)
    who = actor(request)
    on_hold = cert.status == CertificateStatus.ON_HOLD
    return render(request, "pki/certificate_detail.html", {
        "cert": cert, "info": describe(cert.certificate), "revoke_form": RevokeForm(on_hold=on_hold),
        "can_revoke": who.is_allowed("/ra_functionality/revoke_end_entity") and who.is_allowed(f"/ca/{cert.ca_id}"),
        "on_hold": on_hold, "revoked": cert.status == CertificateStatus.REVOKED,
        "can_view_end_entity": who.is_allowed("/ra_functionality/view_end_entity"),
    })


@requires("/ca_functionality/view_certificate")
def certificate_download(request: HttpRequest, pk: int, what: str) -> HttpResponse:
    """The certificate as PEM or DER, or as PEM followed by its CA chain."""
    if what not in DOWNLOADS:
        raise Http404("Unknown download format.")
    cert = _visible(request, pk)
    parsed = cert.certificate
    name = safe_filename((cert.username or cert.serial)[:60])
    if what == "der":
        response = HttpResponse(parsed.public_bytes(Encoding.DER), content_type="application/pkix-cert")
        response["Content-Disposition"] = f'attachment; filename="{name}.crt"'
        return response
    certs = [parsed] + (cert.ca.chain() if what == "chain" else [])
    response = HttpResponse(b"".join(c.public_bytes(Encoding.PEM) for c in certs),
                            content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{name}{"-chain" if what == "chain" else ""}.pem"'
    return response


@require_POST
@requires("/ra_functionality/revoke_end_entity")
def certificate_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke with a reason; certificateHold puts the certificate on hold instead."""
    return revoke_with_form(request, _visible(request, pk), "certificate-detail")


def revoke_with_form(request: HttpRequest, cert, detail_view: str) -> HttpResponse:
    """Revoke ``cert`` with the reason of the posted RevokeForm and go back to ``detail_view``: the one way the
    admin UI and the RA portal revoke a certificate (the caller has checked the page's rule and visibility)."""
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason.")
        return redirect(detail_view, cert.pk)
    try:
        cert = revoke(actor(request), cert, form.cleaned_data["reason"])
    except WaitingForApproval as waiting:  # the revocation needs approval: stored, not done
        messages.info(request, waiting.message)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"Certificate {cert.serial.upper()} is now {cert.get_status_display().lower()}.")
    return redirect(detail_view, cert.pk)


@require_POST
@requires("/ra_functionality/revoke_end_entity")
def certificate_unhold(request: HttpRequest, pk: int) -> HttpResponse:
    """Take a certificate off hold (removeFromCRL): it is active again."""
    cert = _visible(request, pk)
    try:
        unrevoke(actor(request), cert)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"Certificate {cert.serial.upper()} was taken off hold and is active again.")
    return redirect("certificate-detail", cert.pk)


@requires("/ca_functionality/create_certificate")
def certificate_issue(request: HttpRequest) -> HttpResponse:
    """Issue a certificate for a PKCS#10 request through the one issuance pipeline."""
    who = actor(request)
    form = IssueForm(posted(request), posted(request, files=True), cas=usable_cas(who))
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            wanted = IssuanceRequest(
                ca=d["ca"], actor=who, profile=d["certificate_profile"], csr=form.csr_bytes(),
                subject_dn=d["subject_dn"] or None, subject_alt_name=d["subject_alt_name"] or None,
                validity=d["validity"] or None, username=d["username"],
            )
            gate_issue(wanted, "admin")  # may store it for approval instead (raises)
            result = issue(wanted)
        except WaitingForApproval as waiting:
            messages.info(request, waiting.message)
            return redirect("certificate-list")
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc, {"csr": "csr_pem", "profile": "certificate_profile"})
        else:
            messages.success(request, f"Certificate {result.row.serial.upper()} issued.")
            return redirect("certificate-detail", result.row.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": "Issue a certificate for a CSR", "submit": "Issue certificate", "multipart": True,
        "intro": "The request goes through the certificate profile's rules and is signed with the CA's key.",
    }, status=form_status(form, refused))
