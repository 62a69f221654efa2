"""RA portal search: Search ▸ End Entities and Search ▸ Certificates, each with a view page, revocation and
certificate downloads. Only what the caller's rules allow is found (the services restrict by CA and end
entity profile); buttons the caller cannot use are not shown."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pki.choices import CertificateStatus
from pki.forms.bulk import BulkRevokeForm
from pki.forms.certificates import RevokeForm, SearchForm
from pki.models import Certificate, CertificateAuthority
from pki.services.approvals import WaitingForApproval
from pki.services.certificates import restrict, search_certificates, visible_ca_ids
from pki.views.base import (
    SERVICE_ERRORS,
    actor,
    form_error,
    form_status,
    paginate,
    query_without_page,
    refusal_message,
    requires,
)
from pki.views.certificates import SORT_COLUMNS, bulk_revoke_certificates, revoke_with_form
from pki.views.certinfo import describe
from pki.views.listing import sort_queryset

from .. import services
from ..forms.entities import RevokeEntityForm
from ..models import EndEntity
from .common import entity_actions
from .entities import bulk_revoke_entities, list_context, search_form
from .ra import certificate_response

VIEW_EE = "/ra_functionality/view_end_entity"
VIEW_CERT = "/ca_functionality/view_certificate"
REVOKE = "/ra_functionality/revoke_end_entity"


@requires(VIEW_EE)
def entity_search(request: HttpRequest) -> HttpResponse:
    """Search ▸ End Entities."""
    context, status = list_context(request, search_form(request))
    return render(request, "ra/entity_list.html", {**context, "title": "Search end entities"}, status=status)


@require_POST
@requires(REVOKE)
def entity_bulk_revoke(request: HttpRequest) -> HttpResponse:
    """Revoke the end entities selected on Search ▸ End Entities."""
    return bulk_revoke_entities(request, list_view="ra-ee-search", detail_view="ra-ee-detail", base="ra/base.html")


def _entity(request: HttpRequest, pk: int) -> EndEntity:
    qs = EndEntity.objects.restrict(actor(request), "view_end_entity").select_related(
        "end_entity_profile", "ca", "certificate_profile")
    return get_object_or_404(qs, pk=pk)


@requires(VIEW_EE)
def entity_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An end entity with its certificates, and Revoke when the caller may."""
    ee = _entity(request, pk)
    who = actor(request)
    return render(request, "ra/entity_detail.html", {
        "ee": ee, "certificates": services.certificates_of(who, ee), "can": entity_actions(who, ee),
        "revoke_form": RevokeEntityForm(), "info": sorted((ee.extended_information or {}).items()),
        "title": f"End entity {ee.username}",
    })


@require_POST
@requires(REVOKE)
def entity_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke the end entity and its certificates."""
    ee = _entity(request, pk)
    form = RevokeEntityForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason.")
        return redirect("ra-ee-detail", ee.pk)
    try:
        services.revoke_end_entity(actor(request), ee.username, form.cleaned_data["reason"])
    except WaitingForApproval as waiting:  # the revocation needs approval: stored, not done
        messages.info(request, waiting.message)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"End entity '{ee.username}' and its certificates are revoked.")
    return redirect("ra-ee-detail", ee.pk)


@requires(VIEW_CERT)
def certificate_search(request: HttpRequest) -> HttpResponse:
    """Search ▸ Certificates (of the CAs the caller may see)."""
    who = actor(request)
    form = SearchForm(request.GET or None, cas=CertificateAuthority.objects.filter(pk__in=visible_ca_ids(who)))
    try:
        results = search_certificates(who, form.query())
    except SERVICE_ERRORS as exc:
        form_error(form, exc)
        results = Certificate.objects.none()
    results, sorting = sort_queryset(request, results, SORT_COLUMNS, "-issued")
    return render(request, "ra/certificate_list.html", {
        "form": form, "page": paginate(request, results), "params": query_without_page(request),
        "title": "Search certificates", "sorting": sorting, "bulk_form": BulkRevokeForm(),
    }, status=form_status(form))


@require_POST
@requires(REVOKE)
def certificate_bulk_revoke(request: HttpRequest) -> HttpResponse:
    """Revoke the certificates selected on Search ▸ Certificates."""
    return bulk_revoke_certificates(request, list_view="ra-cert-search", detail_view="ra-cert-detail",
                                    base="ra/base.html")


def _certificate(request: HttpRequest, pk: int) -> Certificate:
    qs = restrict(Certificate.objects.select_related("ca", "certificate_profile"), actor(request))
    return get_object_or_404(qs, pk=pk)


@requires(VIEW_CERT)
def certificate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A certificate, its downloads (PEM, DER, chain) and revocation for those allowed."""
    cert = _certificate(request, pk)
    who = actor(request)
    on_hold = cert.status == CertificateStatus.ON_HOLD
    ee = EndEntity.objects.restrict(who, "view_end_entity").filter(username=cert.username).first() \
        if cert.username else None
    return render(request, "ra/certificate_detail.html", {
        "cert": cert, "info": describe(cert.certificate), "revoke_form": RevokeForm(on_hold=on_hold), "ee": ee,
        "can_revoke": who.is_allowed(REVOKE) and who.is_allowed(f"/ca/{cert.ca_id}")
        and cert.status != CertificateStatus.REVOKED,
        "format": request.GET.get("format", ""), "title": "Certificate",
    })


@requires(VIEW_CERT)
def certificate_download(request: HttpRequest, pk: int, what: str) -> HttpResponse:
    """The certificate as PEM, DER, or PEM followed by its CA chain."""
    if what not in ("pem", "der", "chain"):
        raise Http404("Unknown download format.")
    cert = _certificate(request, pk)
    return certificate_response(cert.certificate, cert.ca.chain() if what == "chain" else [], what,
                                cert.username or cert.serial)


@require_POST
@requires(REVOKE)
def certificate_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke one certificate (certificateHold suspends it)."""
    return revoke_with_form(request, _certificate(request, pk), "ra-cert-detail")
