"""Admin UI: "Remote Authenticators" and "OCSP Responders" (CA functions). Interface code over
:mod:`keybindings.services`; every refusal lands on the form or in the messages area, never as a trace."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cryptotokens.models import CryptoToken
from pki.forms.cas import usable_cas
from pki.views.base import (
    SERVICE_ERRORS,
    actor,
    form_error,
    form_status,
    paginate,
    posted,
    refusal_message,
    requires,
    safe_filename,
)

from . import services
from .choices import BindingStatus, BindingType
from .forms import BindingCreateForm, BindingEditForm, CsrForm, ImportForm, IssueForm, RenewForm
from .models import InternalKeyBinding

VIEW, MODIFY, DELETE = services.VIEW, services.MODIFY, services.DELETE
KINDS = {"authentication": (BindingType.AUTHENTICATION, "Remote Authenticators"),
         "ocsp": (BindingType.OCSP, "OCSP Responders")}
KIND_OF = {t: k for k, (t, _) in KINDS.items()}


def _kind(kind: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise Http404("No such key binding type")
    return KINDS[kind]


def _binding(pk: int) -> InternalKeyBinding:
    return get_object_or_404(InternalKeyBinding.objects.select_related("crypto_token", "certificate__ca"), pk=pk)


@requires(VIEW)
def binding_list(request, kind: str):
    binding_type, title = _kind(kind)
    page = paginate(request, services.list_bindings(actor(request), binding_type))
    rows = [(b, services.certificate_status(b)) for b in page]
    return render(request, "keybindings/list.html", {
        "title": title, "kind": kind, "page": page, "rows": rows, "may_modify": actor(request).is_allowed(MODIFY)})


@requires(MODIFY)
def binding_create(request, kind: str):
    binding_type, title = _kind(kind)
    who = actor(request)
    tokens = CryptoToken.objects.filter(
        pk__in=[t.pk for t in CryptoToken.objects.only("pk") if who.is_allowed(f"/cryptotoken/use/{t.pk}")])
    form = BindingCreateForm(posted(request), tokens=tokens)
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            binding = services.create_binding(
                who, name=d["name"], binding_type=binding_type, crypto_token=d["token"], key_pair_alias=d["alias"],
                key_spec=d["key_spec"] if not d["alias"] else "", signature_algorithm=d["signature_algorithm"],
                trusted_certificates=form.trusted(), protocol_and_cipher_suites=d["protocol_and_cipher_suites"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc, {"crypto_token": "key_pair"})
        else:
            messages.success(request, f"Key binding '{binding.name}' created (disabled until it has a certificate).")
            return redirect("keybinding-detail", binding.pk)
    return render(request, "pki/form.html", {"form": form, "title": f"New: {title}", "submit": "Create",
                                             "cancel": f"/keybindings/{kind}/"}, status=form_status(form, refused))


@requires(VIEW)
def binding_detail(request, pk: int):
    binding = _binding(pk)
    who = actor(request)
    cas = usable_cas(who)
    return render(request, "keybindings/detail.html", {
        "binding": binding, "kind": KIND_OF.get(binding.binding_type, "authentication"),
        "title": KINDS[KIND_OF.get(binding.binding_type, "authentication")][1],
        "status": services.certificate_status(binding), "history": services.history(binding),
        "users": services.users_of(binding), "trusted": binding.trusted_certificates,
        "may_modify": who.is_allowed(MODIFY), "may_delete": who.is_allowed(DELETE),
        "csr_form": CsrForm(), "renew_form": RenewForm(cas=cas),
    })


@requires(MODIFY)
def binding_edit(request, pk: int):
    binding = _binding(pk)
    form = BindingEditForm(binding, posted(request))
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.edit_binding(actor(request), binding, name=d["name"], signature_algorithm=d["signature_algorithm"],
                                  next_key_pair_alias=d["next_key_pair_alias"], trusted_certificates=form.trusted(),
                                  protocol_and_cipher_suites=d["protocol_and_cipher_suites"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Key binding '{binding.name}' saved.")
            return redirect("keybinding-detail", binding.pk)
    return render(request, "pki/form.html", {"form": form, "title": f"Edit key binding {binding.name}",
                                             "cancel": f"/keybindings/{binding.pk}/"},
                  status=form_status(form, refused))


def _act(request, pk: int, action) -> HttpResponse:
    binding = _binding(pk)
    try:
        note = action(binding)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, note)
    return redirect("keybinding-detail", binding.pk)


@require_POST
@requires(MODIFY)
def binding_status(request, pk: int):
    wanted = request.POST.get("status", "")
    return _act(request, pk, lambda b: services.set_status(actor(request), b, wanted)
                and f"Key binding '{b.name}' is now {BindingStatus(b.status).label.lower()}.")


@require_POST
@requires(MODIFY)
def binding_renew(request, pk: int):
    form = RenewForm(request.POST, cas=usable_cas(actor(request)))
    if not form.is_valid():
        messages.error(request, "Choose a CA and certificate profile from the lists.")
        return redirect("keybinding-detail", pk)

    def run(b):
        row = services.renew(actor(request), b, ca=form.cleaned_data["ca"],
                             profile=form.cleaned_data["certificate_profile"])
        return f"Renewed: new key '{b.key_pair_alias}', certificate {row.serial.upper()}."

    return _act(request, pk, run)


@require_POST
@requires(MODIFY)
def binding_next_key(request, pk: int):
    return _act(request, pk, lambda b: f"Next key '{services.generate_next_key(actor(request), b)}' generated.")


@require_POST
@requires(DELETE)
def binding_delete(request, pk: int):
    binding = _binding(pk)
    kind = KIND_OF.get(binding.binding_type, "authentication")
    try:
        services.delete_binding(actor(request), binding)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("keybinding-detail", binding.pk)
    messages.success(request, f"Key binding '{binding.name}' deleted.")
    return redirect("keybinding-list", kind)


@require_POST
@requires(MODIFY)
def binding_csr(request, pk: int):
    binding = _binding(pk)
    form = CsrForm(request.POST)
    form.is_valid()
    try:
        pem = services.generate_csr(actor(request), binding, next_key=form.cleaned_data.get("next_key", False),
                                    subject_dn=form.cleaned_data.get("subject_dn") or None)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("keybinding-detail", binding.pk)
    response = HttpResponse(pem, content_type="application/pkcs10")
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(binding.name)}.csr"'
    return response


@requires(MODIFY)
def binding_issue(request, pk: int):
    binding = _binding(pk)
    who = actor(request)
    form = IssueForm(posted(request), cas=usable_cas(who))
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            row = services.issue_certificate(who, binding, ca=d["ca"], profile=d["certificate_profile"],
                                             subject_dn=d["subject_dn"] or None, validity=d["validity"] or None,
                                             next_key=d["next_key"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc, {"profile": "certificate_profile", "certificate": "certificate_profile"})
        else:
            messages.success(request, f"Certificate {row.serial.upper()} issued for '{binding.name}'.")
            return redirect("keybinding-detail", binding.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": f"Issue the certificate of {binding.name}", "submit": "Issue certificate",
        "cancel": f"/keybindings/{binding.pk}/",
        "intro": ("Authentication: keyUsage digitalSignature (and keyEncipherment for RSA), EKU clientAuth. "
                  "OCSP: digitalSignature and OCSPSigning, from the CA it answers for. Never a CA certificate."),
    }, status=form_status(form, refused))


@requires(MODIFY)
def binding_import(request, pk: int):
    binding = _binding(pk)
    form = ImportForm(posted(request), posted(request, files=True))
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            row = services.import_certificate(actor(request), binding, form.cleaned_data["certificate"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Certificate {row.serial.upper()} imported for '{binding.name}'.")
            return redirect("keybinding-detail", binding.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": f"Import a certificate for {binding.name}", "submit": "Import", "multipart": True,
        "cancel": f"/keybindings/{binding.pk}/"}, status=form_status(form, refused))


@requires(VIEW)
def binding_certificate(request, pk: int):
    binding = _binding(pk)
    pem = services.export_certificate(actor(request), binding)
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(binding.name)}.pem"'
    return response
