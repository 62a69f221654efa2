"""RA portal helpers around enrollment: the subject a pasted CSR asks for (to pre-fill the form), editing an
end entity, and re-enrollment in one step (a new enrollment code sets the end entity back to New).

Every change goes through the end entity services, which check the caller's rules on the end entity's profile
and CA and put the change under "Add/Edit End Entity" approval where a profile covers it.
"""

from __future__ import annotations

from cryptography import x509
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from pki.errors import ValidationError as PkiValidationError
from pki.ids import parse_decimal
from pki.issuance import load_csr
from pki.services.approvals import WaitingForApproval
from pki.views.base import SERVICE_ERRORS, actor, form_status, requires
from pki.x509.altnames import format_altnames
from pki.x509.dn import format_csr_subject

from .. import services
from ..choices import EndEntityStatus
from ..forms.entities import EndEntityForm, split_alt_names, split_dn
from ..forms.ra import ReenrollForm
from ..models import EndEntity
from ..services.approvals import gate_status
from .common import may, place_refusal, profiles_for, save_edit
from .ra import CREATE

EDIT = "/ra_functionality/edit_end_entity"
# A CSR is a few kilobytes; anything much larger is not one.
MAX_CSR_BYTES = 64 * 1024


def _refuse(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def csr_fields(profile, csr: x509.CertificateSigningRequest) -> dict[str, object]:
    """What the CSR asks for, as values of the profile's end entity form inputs (``dn_<i>``, ``san_<i>``,
    ``extra_dn``/``extra_san``, ``email``), matched as the edit form matches a stored end entity."""
    subject = format_csr_subject(csr)
    try:
        alt = format_altnames(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        alt = ""
    fields = {**split_dn(profile, subject), **split_alt_names(profile, alt)}
    if profile.email_use:
        emails = [v for k, v in _pairs(alt) if k.lower() in ("rfc822name", "email")]
        if emails:
            fields["email"] = emails[0]
    return {"subject_dn": subject, "alt_names": alt, "fields": fields}


def _pairs(alt: str) -> list[tuple[str, str]]:
    from pki.x509.altnames import AltNameError, parse_altname_pairs

    try:
        return parse_altname_pairs(alt)
    except AltNameError:
        return []


@require_POST
@requires(CREATE)
def csr_subject(request: HttpRequest) -> HttpResponse:
    """POST ``csr`` (PEM text) or ``csr_file`` (PEM or DER) with ``profile``: the subject DN and alt names of the
    request, and the form inputs of that certificate type they fill. Only for a caller who may make requests
    with the profile; the request's signature is checked as enrollment would (garbage is a 400)."""
    who = actor(request)
    chosen = parse_decimal(request.POST.get("profile") or "")
    profile = profiles_for(who, "create_end_entity").filter(pk=chosen).first() if chosen is not None else None
    if profile is None:
        return _refuse(403, "Choose a certificate type you may make requests with.")
    upload = request.FILES.get("csr_file")
    if upload is not None and upload.size > MAX_CSR_BYTES:
        return _refuse(400, "The certificate request file is too large.")
    raw = upload.read() if upload is not None else (request.POST.get("csr") or "").strip().encode()
    if not raw:
        return _refuse(400, "Paste or upload a certificate request.")
    if len(raw) > MAX_CSR_BYTES:
        return _refuse(400, "The certificate request is too large.")
    try:
        csr = load_csr(raw)
    except PkiValidationError as exc:
        return _refuse(400, exc.message)
    except ValueError as exc:
        return _refuse(400, f"Not a certificate request: {exc}")
    return JsonResponse(csr_fields(profile, csr))


def _editable(request: HttpRequest, pk: int) -> EndEntity:
    """The end entity, if the caller may view it (else 404) and edit it (else the "not authorized" page)."""
    who = actor(request)
    qs = EndEntity.objects.restrict(who, "view_end_entity").select_related("end_entity_profile", "ca",
                                                                          "certificate_profile")
    ee = get_object_or_404(qs, pk=pk)
    if not may(who, "edit", ee):
        who.require(f"/endentityprofilesrules/{ee.end_entity_profile_id}/edit_end_entity")
        who.require(f"/ca/{ee.ca_id}")
    return ee


@requires(EDIT)
def entity_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit an end entity with the form of its profile, as the admin UI does (an empty password keeps it)."""
    ee = _editable(request, pk)
    who = actor(request)
    form = EndEntityForm(request.POST if request.method == "POST" else None, profile=ee.end_entity_profile,
                         who=who, instance=ee, hide_single_choices=True)
    done, refused = save_edit(request, who, ee, form, "ra-ee-detail")
    if done is not None:
        return done
    return render(request, "ra/entity_edit.html", {
        "form": form, "ee": ee, "title": f"Edit end entity {ee.username}",
        "cancel": reverse("ra-ee-detail", args=[ee.pk]),
    }, status=form_status(form, refused))


@requires(EDIT)
def entity_reenroll(request: HttpRequest, pk: int) -> HttpResponse:
    """Re-enrollment in one step: a new enrollment code and status New, together or not at all; stored for
    approval instead where "Add/Edit End Entity" approval covers the end entity."""
    ee = _editable(request, pk)
    who = actor(request)
    form = ReenrollForm(request.POST if request.method == "POST" else None)
    refused = None
    if request.method == "POST" and form.is_valid():
        password = form.cleaned_data["password"]
        try:
            gate_status(who, ee.username, EndEntityStatus.NEW, password, interface="ra")
            with transaction.atomic():
                services.set_password(who, ee.username, password)
                services.set_status(who, ee.username, EndEntityStatus.NEW)
        except WaitingForApproval as waiting:
            messages.info(request, f"{waiting.message} Once it is approved, '{ee.username}' can enroll again.")
            return redirect("ra-ee-detail", ee.pk)
        except SERVICE_ERRORS as exc:
            refused = place_refusal(form, exc)
        else:
            messages.success(request, f"End entity '{ee.username}' is New again: enroll with Use Username and "
                             "the new enrollment code.")
            return redirect("ra-ee-detail", ee.pk)
    return render(request, "ra/entity_reenroll.html", {
        "form": form, "ee": ee, "title": f"Re-enroll {ee.username}",
        "cancel": reverse("ra-ee-detail", args=[ee.pk]),
    }, status=form_status(form, refused))
