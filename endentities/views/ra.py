"""RA portal enrollment: Enroll ▸ Make New Request and Enroll ▸ Use Username.

Make New Request: choose the certificate type (an end entity profile; its description shows), fill the form
generated from it, give the key (a CSR, or a key pair generated here for the P12/JKS/PEM/BCFKS tokens) and
get the certificate or the keystore. The end entity is added and enrolled through the services in one
transaction, so a refused enrollment leaves no end entity behind.

Use Username: an end entity registered before enrolls with its username and enrollment code.
"""

from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from pki.services.approvals import WaitingForApproval
from pki.views.base import SERVICE_ERRORS, actor, form_status, not_authorized, posted, requires, safe_filename

from .. import services
from ..choices import EnrollmentInterface, TokenType
from ..forms.entities import ChooseProfileForm, EndEntityForm
from ..forms.ra import KeySourceForm, UseUsernameForm
from ..services import approvals
from ..services.entities import new_end_entity
from .common import place_refusal, profiles_for

CREATE = "/ra_functionality/create_end_entity"
USE_USERNAME = "/ca_functionality/use_username"
# Any one of these opens the portal's start page.
PORTAL_RULES = ("/ra_functionality/view_end_entity", CREATE, USE_USERNAME, "/ca_functionality/view_certificate")
# File name suffix and media type of each keystore format.
KEYSTORE_FILES = {
    TokenType.P12: (".p12", "application/x-pkcs12"),
    TokenType.JKS: (".jks", "application/x-java-keystore"),
    TokenType.PEM: (".pem", "application/x-pem-file"),
    TokenType.BCFKS: (".bcfks", "application/octet-stream"),
}
# Service fields that belong to the key part of the page.
KEY_FIELDS = {"csr": "csr_pem", "key_alg": "key_algorithm", "key_spec": "key_algorithm", "token": "token_type",
              "token_type": "token_type"}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The portal's start page: what the caller's rules let them do (a caller with none of the portal's rules
    gets the "not authorized" page)."""
    who = actor(request)
    if not any(who.is_allowed(rule) for rule in PORTAL_RULES):
        return not_authorized(request, PORTAL_RULES[0])
    return render(request, "ra/home.html")


def certificate_response(cert, chain, what: str, name: str) -> HttpResponse:
    """A certificate download: PEM, DER or PEM followed by the CA chain."""
    name = safe_filename(name[:60]) or "certificate"
    if what == "der":
        response = HttpResponse(cert.public_bytes(Encoding.DER), content_type="application/pkix-cert")
        response["Content-Disposition"] = f'attachment; filename="{name}.crt"'
        return response
    certs = [cert] + (list(chain) if what == "chain" else [])
    response = HttpResponse(b"".join(c.public_bytes(Encoding.PEM) for c in certs),
                            content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{name}{"-chain" if what == "chain" else ""}.pem"'
    return response


def keystore_response(enrolled, username: str) -> HttpResponse:
    """The keystore generated here, as a download (it is never stored)."""
    suffix, media = KEYSTORE_FILES[enrolled.token_type]
    response = HttpResponse(enrolled.keystore, content_type=media)
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(username[:60]) or "keystore"}{suffix}"'
    response["Cache-Control"] = "no-store"
    return response


def issued_headers(response: HttpResponse, row) -> HttpResponse:
    """Name what a download carries (the certificate's serial number), so the page that asked for it can say
    what was issued and offer the same file again (static/pki/ra-enroll.js)."""
    response["X-Issued-Serial"] = row.serial.upper()
    return response


def _retarget(exc: Exception) -> Exception:
    """A service refusal about the key, named as the key form's input."""
    field = getattr(exc, "field", None)
    if field in KEY_FIELDS:
        exc.field = KEY_FIELDS[field]
    return exc


def _key_refusal(form: EndEntityForm, key_form, exc: Exception) -> int:
    """A refusal about the key goes on the key part of the page, anything else on the end entity form."""
    if getattr(exc, "field", None) in KEY_FIELDS:
        return place_refusal(key_form, _retarget(exc))
    return place_refusal(form, exc)


@requires(CREATE)
def make_request(request: HttpRequest) -> HttpResponse:
    """Enroll ▸ Make New Request."""
    who = actor(request)
    profiles = profiles_for(who, "create_end_entity")
    chooser = ChooseProfileForm(request.GET if "profile" in request.GET else None, profiles=profiles)
    context = {"chooser": chooser, "profiles": profiles, "title": "Make new request"}
    if not chooser.is_bound or not chooser.is_valid():
        if profiles.count() == 1 and not chooser.is_bound:
            return redirect(f"{request.path}?profile={profiles.first().pk}")
        return render(request, "ra/enroll.html", context, status=form_status(chooser))
    profile = chooser.cleaned_data["profile"]
    form = EndEntityForm(posted(request), profile=profile, who=who, tokens=False, hide_single_choices=True)
    key_form = KeySourceForm(posted(request), posted(request, files=True), profile=profile, prefix="key")
    refused = None
    if request.method == "POST" and form.is_valid() & key_form.is_valid():
        data = form.to_input()
        data.token_type = key_form.cleaned_data["token_type"]
        try:
            _approval_gate(who, data, profile, key_form)  # stored for approval instead (raises)
            with transaction.atomic():  # the end entity only exists if its certificate was issued
                ee = services.add_end_entity(who, data, profile=profile)
                password = data.password or ee.generated_password
                if key_form.server_generated:
                    alg, spec = key_form.key()
                    enrolled = services.enroll_keystore(ee.username, password, key_alg=alg, key_spec=spec,
                                                        interface=EnrollmentInterface.RA_WEB, actor=who, with_ra=True)
                else:
                    issued = services.enroll_with_ra(who, ee.username, csr=key_form.csr,
                                                     interface=EnrollmentInterface.RA_WEB)
        except WaitingForApproval as waiting:
            messages.info(request, f"{waiting.message} Once it is approved, enroll with Use Username and the "
                          "enrollment code." if key_form.server_generated else
                          f"{waiting.message} Once it is approved, its certificate is issued by "
                          f"POST v1/certificate/{waiting.request_id}/finalize.")
            return redirect("ra-home")
        except SERVICE_ERRORS as exc:
            refused = _key_refusal(form, key_form, exc)
        else:
            if key_form.server_generated:
                return issued_headers(keystore_response(enrolled, ee.username), enrolled.issued.row)
            messages.success(request, f"Certificate issued to '{ee.username}'.")
            url = reverse("ra-cert-detail", args=[issued.row.pk])
            return redirect(f"{url}?format={key_form.cleaned_data['certificate_format']}")
    context.update({"form": form, "key_form": key_form, "profile": profile})
    status = refused or (400 if request.method == "POST" and (form.errors or key_form.errors) else 200)
    return render(request, "ra/enroll.html", context, status=status)


def _approval_gate(who, data, profile, key_form) -> None:
    """Make New Request on a CA or certificate profile whose "Add/Edit End Entity" needs approval: the request
    (with its CSR) is stored for approval before anything is written (raises WaitingForApproval)."""
    if not approvals.needs_approval(data, profile):
        return
    checked = new_end_entity(who, dataclasses.replace(data), profile=profile)
    csr = None if key_form.server_generated else key_form.csr
    der = csr.public_bytes(Encoding.DER) if csr is not None else None
    approvals.gate_add(who, data, profile, operation="enroll_pkcs10" if der else "add_end_entity", csr_der=der,
                       interface=EnrollmentInterface.RA_WEB, checked=checked)


@requires(USE_USERNAME)
def use_username(request: HttpRequest) -> HttpResponse:
    """Enroll ▸ Use Username: username + enrollment code, then a CSR or a keystore generated here.

    The enrollment code authorizes the enrollment (one-time, counted by the services); the page itself needs
    ``/ca_functionality/use_username``, which an installation without password enrollment leaves out."""
    form = UseUsernameForm(posted(request), posted(request, files=True))
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        who = actor(request)
        try:
            if d["key_source"] == "server":
                alg, spec = form.key()
                enrolled = services.enroll_keystore(d["username"], d["enrollment_code"], key_alg=alg, key_spec=spec,
                                                    interface=EnrollmentInterface.RA_WEB, actor=who)
                return issued_headers(keystore_response(enrolled, d["username"]), enrolled.issued.row)
            issued = services.enroll(d["username"], d["enrollment_code"], csr=form.csr,
                                     interface=EnrollmentInterface.RA_WEB, actor=who)
        except SERVICE_ERRORS as exc:
            refused = place_refusal(form, _retarget(exc))
        else:
            row = issued.row
            return issued_headers(certificate_response(issued.certificate, row.ca.chain(), d["certificate_format"],
                                                       d["username"]), row)
    return render(request, "ra/use_username.html", {"form": form, "title": "Enroll with username"},
                  status=form_status(form, refused))
