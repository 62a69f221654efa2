"""CA pages: list, view, create (root or sub-CA), import for trust, edit, renew, downloads."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from ..crl import latest_crl
from ..errors import PkiError
from ..forms.cas import CACreateForm, CAEditForm, CAImportForm, CARenewForm
from ..models import CertificateAuthority
from ..services import cas as ca_services
from .base import actor, form_error, posted, requires
from .certinfo import describe


@requires("/ca_functionality/view_ca")
def ca_list(request):
    who = actor(request)
    cas = [ca for ca in CertificateAuthority.objects.select_related("signed_by", "crypto_token")
           if who.is_allowed(f"/ca/{ca.pk}")]
    return render(request, "pki/ca_list.html", {"cas": cas})


def _visible(request, pk: int) -> CertificateAuthority:
    ca = get_object_or_404(CertificateAuthority.objects.select_related("signed_by", "crypto_token"), pk=pk)
    actor(request).require(f"/ca/{ca.pk}")
    return ca


@requires("/ca_functionality/view_ca")
def ca_detail(request, pk: int):
    ca = _visible(request, pk)
    return render(request, "pki/ca_detail.html", {
        "ca": ca, "cert": describe(ca.certificate) if ca.certificate else None,
        "chain": ca.chain()[1:], "rollover": describe(ca.rollover_certificate) if ca.rollover_certificate else None,
        "crl": latest_crl(ca), "delta": latest_crl(ca, delta=True),
        "history": ca.certificates_history.all()[:20],
    })


@requires("/ca_functionality/view_ca")
def ca_download(request, pk: int, what: str):
    ca = _visible(request, pk)
    if what == "der":
        response = HttpResponse(ca.certificate.public_bytes(Encoding.DER), content_type="application/pkix-cert")
        response["Content-Disposition"] = f'attachment; filename="{ca.name}.crt"'
    else:
        certs = ca.chain() if what == "chain" else [ca.certificate]
        response = HttpResponse(b"".join(c.public_bytes(Encoding.PEM) for c in certs),
                                content_type="application/x-pem-file")
        response["Content-Disposition"] = f'attachment; filename="{ca.name}{"-chain" if what == "chain" else ""}.pem"'
    return response


@requires("/ca_functionality/create_ca")
def ca_create(request):
    form = CACreateForm(posted(request))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            ca = ca_services.create_ca(actor(request), ca_services.CASettings(
                name=d["name"], subject_dn=d["subject_dn"], crypto_token=d["crypto_token"],
                key_alias=d["key_alias"], key_spec=d["key_spec"] if d["generate_key"] else None,
                signed_by=d["signed_by"], validity=d["validity"],
                signature_algorithm=d["signature_algorithm"] or None,
                certificate_profile=d["certificate_profile"].name if d["certificate_profile"] else None,
                description=d["description"], is_default=d["is_default"], **form.crl_settings(),
            ))
        except PkiError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"CA '{ca.name}' created.")
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {"form": form, "title": "Create CA", "submit": "Create CA"},
                  status=400 if form.errors else 200)


@requires("/ca_functionality/create_ca")
def ca_import(request):
    form = CAImportForm(posted(request), posted(request, files=True))
    if request.method == "POST" and form.is_valid():
        try:
            ca = ca_services.import_ca(actor(request), form.cleaned_data["name"], form.certificate_bytes())
        except PkiError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"External CA '{ca.name}' imported for trust.")
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {"form": form, "title": "Import CA certificate", "submit": "Import",
                                             "multipart": True}, status=400 if form.errors else 200)


@requires("/ca_functionality/edit_ca")
def ca_edit(request, pk: int):
    ca = _visible(request, pk)
    form = CAEditForm.for_ca(ca, posted(request))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            changes = {"description": d["description"], "validity": d["validity"], "status": d["status"],
                       "signature_algorithm": d["signature_algorithm"], **form.crl_settings()}
            if d["is_default"] and not ca.is_default:
                changes["is_default"] = True
            ca_services.edit_ca(actor(request), ca, **changes)
        except PkiError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"CA '{ca.name}' saved.")
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {"form": form, "title": f"Edit CA {ca.name}", "submit": "Save"},
                  status=400 if form.errors else 200)


@requires("/ca_functionality/renew_ca")
def ca_renew(request, pk: int):
    ca = _visible(request, pk)
    form = CARenewForm(posted(request))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            ca_services.renew_ca(actor(request), ca, new_key_alias=d["new_key_alias"] if d["new_key"] else None,
                                 new_key_spec=d["new_key_spec"] or None, activate_at=d["activate_at"])
        except PkiError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"CA '{ca.name}' renewed." + (
                " The new certificate is a rollover certificate until its activation time." if d["activate_at"]
                else ""))
            return redirect("ca-detail", ca.pk)
    return render(request, "pki/form.html", {"form": form, "title": f"Renew CA {ca.name}", "submit": "Renew"},
                  status=400 if form.errors else 200)
