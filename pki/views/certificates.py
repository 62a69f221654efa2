"""Certificate pages: search, view, download, revoke / hold / take off hold, issue for a CSR."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..errors import PkiError
from ..forms.certificates import IssueForm, RevokeForm, SearchForm
from ..issuance import IssuanceRequest, issue
from ..models import Certificate, CertificateAuthority
from ..revocation import revoke, unrevoke
from ..services.certificates import CertificateQuery, restrict, search_certificates
from .base import actor, form_error, paginate, posted, requires
from .certinfo import describe


@requires("/ca_functionality/view_certificate")
def certificate_list(request):
    form = SearchForm(request.GET or None)
    query = CertificateQuery()
    if form.is_valid():
        d = form.cleaned_data
        query = CertificateQuery(text=d["q"], ca=d["ca"], status=d["status"])
        if d["expires_after"]:
            query.expires_after = _day(d["expires_after"])
        if d["expires_before"]:
            query.expires_before = _day(d["expires_before"])
    page = paginate(request, search_certificates(actor(request), query))
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "pki/certificate_list.html", {"form": form, "page": page, "params": params.urlencode()})


def _day(date):
    from datetime import UTC, datetime, time

    return datetime.combine(date, time.min, tzinfo=UTC)


def _visible(request, pk: int) -> Certificate:
    qs = restrict(Certificate.objects.select_related("ca", "certificate_profile"), actor(request))
    return get_object_or_404(qs, pk=pk)


@requires("/ca_functionality/view_certificate")
def certificate_detail(request, pk: int):
    cert = _visible(request, pk)
    who = actor(request)
    return render(request, "pki/certificate_detail.html", {
        "cert": cert, "info": describe(cert.certificate), "revoke_form": RevokeForm(),
        "can_revoke": who.is_allowed("/ra_functionality/revoke_end_entity") and who.is_allowed(f"/ca/{cert.ca_id}"),
    })


@requires("/ca_functionality/view_certificate")
def certificate_download(request, pk: int, what: str):
    cert = _visible(request, pk)
    parsed = cert.certificate
    name = (cert.username or cert.serial)[:60]
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
def certificate_revoke(request, pk: int):
    cert = _visible(request, pk)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason.")
        return redirect("certificate-detail", cert.pk)
    try:
        cert = revoke(actor(request), cert, form.cleaned_data["reason"])
    except PkiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Certificate {cert.serial.upper()} is now {cert.get_status_display().lower()}.")
    return redirect("certificate-detail", cert.pk)


@require_POST
@requires("/ra_functionality/revoke_end_entity")
def certificate_unhold(request, pk: int):
    cert = _visible(request, pk)
    try:
        unrevoke(actor(request), cert)
    except PkiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The certificate is active again.")
    return redirect("certificate-detail", cert.pk)


@requires("/ca_functionality/create_certificate")
def certificate_issue(request):
    who = actor(request)
    usable = CertificateAuthority.objects.active().exclude(crypto_token=None)
    usable = usable.filter(pk__in=[pk for pk in usable.values_list("pk", flat=True) if who.is_allowed(f"/ca/{pk}")])
    form = IssueForm(posted(request), posted(request, files=True), cas=usable)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            result = issue(IssuanceRequest(
                ca=d["ca"], actor=who, profile=d["certificate_profile"], csr=form.csr_bytes(),
                subject_dn=d["subject_dn"] or None, subject_alt_name=d["subject_alt_name"] or None,
                validity=d["validity"] or None, username=d["username"],
            ))
        except PkiError as exc:
            form_error(form, exc if exc.field != "csr" else type(exc)(exc.message, field="csr_pem"))
        else:
            messages.success(request, f"Certificate {result.row.serial.upper()} issued.")
            return redirect("certificate-detail", result.row.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": "Issue a certificate for a CSR", "submit": "Issue certificate", "multipart": True,
        "intro": "The request goes through the certificate profile's rules and is signed by the CA's crypto token.",
    }, status=400 if form.errors else 200)
