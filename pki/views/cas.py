"""CA pages: list, view, create (root or sub-CA), import for trust, edit, renew, downloads."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from ..crl import latest_crl
from ..forms.cas import CACreateForm, CAEditForm, CAImportForm, CARenewForm, key_suggestions
from ..models import CRL, CertificateAuthority
from ..services import cas as ca_services
from ..services.health import ca_health
from .base import SERVICE_ERRORS, actor, form_error, form_status, posted, requires, safe_filename
from .certinfo import describe
from .display import crl_timing
from .listing import sort_rows

DOWNLOADS = ("pem", "der", "chain")


def _visible(request: HttpRequest, pk: int) -> CertificateAuthority:
    """The CA, if the caller may see it (``/ca/<id>``); otherwise the "not authorized" page."""
    ca = get_object_or_404(
        CertificateAuthority.objects.select_related("signed_by", "crypto_token", "certificate_profile"), pk=pk)
    actor(request).require(f"/ca/{ca.pk}")
    return ca


@requires("/ca_functionality/view_ca")
def ca_list(request: HttpRequest) -> HttpResponse:
    """Every CA the caller may see."""
    who = actor(request)
    cas = [ca for ca in CertificateAuthority.objects.select_related("signed_by", "crypto_token")
           if who.is_allowed(f"/ca/{ca.pk}")]
    states = ca_health(cas)
    attention = request.GET.get("attention") == "1"
    rows = [{"ca": ca, "health": states[ca.pk]} for ca in cas if not attention or not states[ca.pk].ok]
    rows, sorting = sort_rows(request, rows, CA_SORT_COLUMNS, "name")
    return render(request, "pki/ca_list.html", {"rows": rows, "attention": attention, "sorting": sorting})


# The CA list's columns (``?o=``): the list is short, sorted in Python; a CA without a certificate sorts last.
CA_SORT_COLUMNS = {
    "name": lambda row: row["ca"].name.lower(),
    "subject": lambda row: row["ca"].subject_dn.lower(),
    "status": lambda row: row["health"].label if not row["health"].ok else row["ca"].get_status_display(),
    "signer": lambda row: row["ca"].signed_by.name.lower() if row["ca"].signed_by else "",
    "expires": lambda row: row["ca"].certificate.not_valid_after_utc if row["ca"].certificate else None,
}


@requires("/ca_functionality/view_ca")
def ca_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A CA: its settings, its certificate decoded, its issuers, a pending rollover and its CRLs."""
    ca = _visible(request, pk)
    return render(request, "pki/ca_detail.html", {
        "ca": ca, "health": ca_health([ca])[ca.pk],
        "timing": crl_timing(ca), "cert": describe(ca.certificate) if ca.certificate else None,
        "chain": [describe(c) for c in ca.chain()[1:]],
        "rollover": describe(ca.rollover_certificate) if ca.rollover_certificate else None,
        "crl": latest_crl(ca), "delta": latest_crl(ca, delta=True),
        "crls": CRL.objects.filter(ca=ca).defer("der").order_by("-crl_number")[:5],
        "history": ca.certificates_history.all()[:20],
    })


@requires("/ca_functionality/view_ca")
def ca_download(request: HttpRequest, pk: int, what: str) -> HttpResponse:
    """The CA certificate as PEM or DER, or its chain (the CA first) as PEM."""
    if what not in DOWNLOADS:
        raise Http404("Unknown download format.")
    ca = _visible(request, pk)
    if ca.certificate is None:
        raise Http404("This CA has no certificate yet.")
    if what == "der":
        response = HttpResponse(ca.certificate.public_bytes(Encoding.DER), content_type="application/pkix-cert")
        filename = f"{ca.name}.crt"
    else:
        certs = ca.chain() if what == "chain" else [ca.certificate]
        response = HttpResponse(b"".join(c.public_bytes(Encoding.PEM) for c in certs),
                                content_type="application/x-pem-file")
        filename = f"{ca.name}-chain.pem" if what == "chain" else f"{ca.name}.pem"
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(filename)}"'
    return response


@requires("/ca_functionality/create_ca")
def ca_create(request: HttpRequest) -> HttpResponse:
    """Create a root CA or a sub-CA on a crypto token key (generated here or already there)."""
    who = actor(request)
    form = CACreateForm(posted(request), actor=who)
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            ca = ca_services.create_ca(who, ca_services.CASettings(
                name=d["name"], subject_dn=d["subject_dn"], crypto_token=d["crypto_token"],
                key_alias=d["key_alias"], key_spec=d["key_spec"] if form.generate_key else None,
                signed_by=d["signed_by"], validity=d["validity"],
                signature_algorithm=d["signature_algorithm"] or None,
                certificate_profile=d["certificate_profile"].name if d["certificate_profile"] else None,
                description=d["description"], is_default=d["is_default"], **form.crl_settings(),
                **form.uniqueness_settings(),
            ))
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"CA '{ca.name}' created.")
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": "Create CA", "submit": "Create CA", "cancel": reverse("ca-list"),
        "intro": "A root CA signs its own certificate; a sub-CA is signed by the CA chosen under 'Signed by'.",
    }, status=form_status(form, refused))


@requires("/ca_functionality/create_ca")
def ca_import(request: HttpRequest) -> HttpResponse:
    """Import an external CA's certificate (and its issuers) for trust only."""
    form = CAImportForm(posted(request), posted(request, files=True))
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            ca = ca_services.import_ca(actor(request), form.cleaned_data["name"], form.certificate_bytes())
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc, {"certificate": "certificate_pem", "subject_dn": "certificate_pem"})
        else:
            messages.success(request, f"External CA '{ca.name}' imported for trust.")
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": "Import CA certificate", "submit": "Import", "multipart": True,
        "cancel": reverse("ca-list"),
        "intro": "The CA is known for trust only: it has no key here and issues nothing.",
    }, status=form_status(form, refused))


@requires("/ca_functionality/edit_ca")
def ca_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a CA's description, status, validity, signature algorithm, CRL settings and URLs."""
    ca = _visible(request, pk)
    if ca.is_external:
        messages.info(request, f"'{ca.name}' is an external CA imported for trust: it has no settings to edit.")
        return redirect("ca-detail", ca.pk)
    form = CAEditForm.for_ca(ca, posted(request))
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            ca_services.edit_ca(actor(request), ca, **form.changes(ca))
        except SERVICE_ERRORS as exc:
            ca.refresh_from_db()
            refused = form_error(form, exc)
        else:
            messages.success(request, f"CA '{ca.name}' saved.")
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": f"Edit CA {ca.name}", "submit": "Save", "cancel": reverse("ca-detail", args=[ca.pk]),
    }, status=form_status(form, refused))


@requires("/ca_functionality/renew_ca")
def ca_renew(request: HttpRequest, pk: int) -> HttpResponse:
    """Renew a CA certificate with the same or a new key, now or as a rollover later."""
    ca = _visible(request, pk)
    if ca.is_external:
        messages.info(request, f"'{ca.name}' is an external CA: it is renewed by its owner, then imported again.")
        return redirect("ca-detail", ca.pk)
    form = CARenewForm(posted(request), keys=key_suggestions(actor(request), [ca.crypto_token]),
                       current=ca.key_alias)
    refused = None
    if request.method == "POST" and form.is_valid():
        renewal = form.renewal()
        try:
            renewed = ca_services.renew_ca(actor(request), ca, **renewal)
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc, {"key_alias": "new_key_alias"})
        else:
            rollover = renewed.rollover_at
            messages.success(request, f"CA '{ca.name}' renewed." + (
                f" The new certificate is a rollover certificate until {rollover:%Y-%m-%d %H:%M} UTC."
                if rollover else ""))
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": f"Renew CA {ca.name}", "submit": "Renew CA",
        "cancel": reverse("ca-detail", args=[ca.pk]),
        "intro": f"The current key pair is '{ca.key_alias}' on crypto token "
                 f"'{ca.crypto_token.name if ca.crypto_token else '-'}'.",
    }, status=form_status(form, refused))
