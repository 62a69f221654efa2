"""End entity pages of the admin UI: search, add (a form generated from the chosen end entity profile),
view with its certificates, edit, set status, revoke, delete. Every change goes through
``endentities.services``, which checks the RA, profile and CA rules and writes the audit log."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from pki.forms.bulk import BulkRevokeForm
from pki.forms.cas import usable_cas
from pki.services.approvals import WaitingForApproval
from pki.views.base import (
    SERVICE_ERRORS,
    actor,
    form_status,
    paginate,
    posted,
    query_without_page,
    refusal_message,
    requires,
)
from pki.views.bulk import BulkItem, bulk_revoke
from pki.views.listing import sort_queryset

from .. import services
from ..forms.entities import ChooseProfileForm, EndEntityForm, EndEntitySearchForm, RevokeEntityForm, SetStatusForm
from ..models import EndEntity
from .common import entity_actions, place_refusal, profiles_for, save_edit

VIEW = "/ra_functionality/view_end_entity"
CREATE = "/ra_functionality/create_end_entity"
EDIT = "/ra_functionality/edit_end_entity"
REVOKE = "/ra_functionality/revoke_end_entity"

# The columns an end entity list sorts by (``?o=``); without one, by username.
SORT_COLUMNS = {
    "username": ["username"], "subject": ["subject_dn"], "status": ["status"],
    "profile": ["end_entity_profile__name"], "ca": ["ca__name"], "updated": ["updated_at"],
}


def list_context(request: HttpRequest, results) -> tuple[dict, int]:
    """The context of an end entity list page (sorted, paginated, filters kept) and its status."""
    form, found = results
    found, sorting = sort_queryset(request, found, SORT_COLUMNS, "username")
    return {"form": form, "page": paginate(request, found), "params": query_without_page(request),
            "sorting": sorting, "bulk_form": BulkRevokeForm()}, form_status(form)


def bulk_revoke_entities(request: HttpRequest, *, list_view: str, detail_view: str, base: str = "base.html"
                         ) -> HttpResponse:
    """Revoke the end entities checked on a list page, each as its own revocation (rules, approval, audit)."""
    who = actor(request)

    def item(ee: EndEntity, reason: int) -> BulkItem:
        return BulkItem(ee.username, reverse(detail_view, args=[ee.pk]),
                        lambda: services.revoke_end_entity(who, ee.username, reason))

    return bulk_revoke(request, what="end entities", list_view=list_view, base=base, item=item,
                       find=lambda ids: EndEntity.objects.restrict(who, "view_end_entity").in_bulk(ids))


def search_form(request: HttpRequest) -> tuple[EndEntitySearchForm, object]:
    """The search form and the end entities it finds (the services restrict them to what the caller may see)."""
    who = actor(request)
    form = EndEntitySearchForm(request.GET or None, ca_list=usable_cas(who).order_by("name"),
                               profiles=profiles_for(who, "view_end_entity"))
    results = EndEntity.objects.none()
    if not form.is_bound or form.is_valid():
        d = form.cleaned_data if form.is_bound else {}
        query = services.EndEntityQuery(
            text=d.get("text") or "", statuses=[d["status"]] if d.get("status") is not None else [],
            profiles=[d["profile"]] if d.get("profile") else [],
            cas=list(usable_cas(who).filter(pk=d["ca"])) if d.get("ca") else [])
        results = services.search_end_entities(who, query)
    return form, results


@requires(VIEW)
def entity_search(request: HttpRequest) -> HttpResponse:
    """Find end entities by username, DN or e-mail, status, end entity profile and CA."""
    context, status = list_context(request, search_form(request))
    return render(request, "endentities/entity_list.html", context, status=status)


@require_POST
@requires(REVOKE)
def entity_bulk_revoke(request: HttpRequest) -> HttpResponse:
    """Revoke the end entities selected on the end entity list with one reason."""
    return bulk_revoke_entities(request, list_view="ee-search", detail_view="ee-detail")


def entity_form_page(request: HttpRequest, *, template: str, done, cancel: str, title: str) -> HttpResponse:
    """Add an end entity: choose the profile (``?profile=``), then fill the form generated from it.
    ``done(ee)`` is where a saved end entity goes next."""
    who = actor(request)
    profiles = profiles_for(who, "create_end_entity")
    chooser = ChooseProfileForm(request.GET if "profile" in request.GET else None, profiles=profiles)
    if not chooser.is_bound or not chooser.is_valid():
        if profiles.count() == 1 and not chooser.is_bound:
            return redirect(f"{request.path}?profile={profiles.first().pk}")
        return render(request, template, {"chooser": chooser, "title": title}, status=form_status(chooser))
    profile = chooser.cleaned_data["profile"]
    form = EndEntityForm(posted(request), profile=profile, who=who)
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            ee = services.add_end_entity(who, form.to_input(), profile=profile)
        except WaitingForApproval as waiting:
            messages.info(request, waiting.message)
            return redirect(cancel)
        except SERVICE_ERRORS as exc:
            refused = place_refusal(form, exc)
        else:
            if ee.generated_password:
                # Shown once on this page; a message would carry it in a cookie to the next request.
                return render(request, "endentities/entity_created.html", {"ee": ee, "title": title,
                                                                           "password": ee.generated_password})
            messages.success(request, f"End entity '{ee.username}' added.")
            return done(ee)
    return render(request, template, {
        "chooser": chooser, "form": form, "profile": profile, "title": title, "cancel": cancel,
    }, status=form_status(form, refused))


@requires(CREATE)
def entity_add(request: HttpRequest) -> HttpResponse:
    """Add an end entity with the form of its end entity profile."""
    return entity_form_page(request, template="endentities/entity_add.html",
                            done=lambda ee: redirect("ee-detail", ee.pk), cancel=reverse("ee-search"),
                            title="Add end entity")


def _visible(request: HttpRequest, pk: int) -> EndEntity:
    """The end entity, if the caller may view it (else 404: its existence is not told)."""
    qs = EndEntity.objects.restrict(actor(request), "view_end_entity").select_related(
        "end_entity_profile", "ca", "certificate_profile")
    return get_object_or_404(qs, pk=pk)


@requires(VIEW)
def entity_by_username(request: HttpRequest) -> HttpResponse:
    """``?username=``: the end entity of that name (the certificate page's link), if the caller may view it; else
    the end entity search for the name (a certificate issued for a CSR names a user without an end entity)."""
    username = request.GET.get("username", "")
    visible = EndEntity.objects.restrict(actor(request), "view_end_entity")
    found = visible.filter(username=username).values_list("pk", flat=True).first() if username else None
    if found is None:
        return redirect(f"{reverse('ee-search')}?{urlencode({'text': username})}")
    return redirect("ee-detail", found)


@requires(VIEW)
def entity_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An end entity, its certificates, and the actions the caller's rules allow."""
    ee = _visible(request, pk)
    who = actor(request)
    return render(request, "endentities/entity_detail.html", {
        "ee": ee, "certificates": services.certificates_of(who, ee), "can": entity_actions(who, ee),
        "status_form": SetStatusForm(initial={"status": ee.status}), "revoke_form": RevokeEntityForm(),
        "info": sorted((ee.extended_information or {}).items()),
    })


@requires(EDIT)
def entity_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit an end entity with the form of its profile (an empty password keeps the current one)."""
    ee = _visible(request, pk)
    who = actor(request)
    form = EndEntityForm(posted(request), profile=ee.end_entity_profile, who=who, instance=ee)
    done, refused = save_edit(request, who, ee, form, "ee-detail")
    if done is not None:
        return done
    return render(request, "pki/form.html", {
        "form": form, "title": f"Edit end entity {ee.username}", "cancel": reverse("ee-detail", args=[ee.pk]),
        "intro": f"End entity profile {ee.end_entity_profile.name}.",
    }, status=form_status(form, refused))


@require_POST
@requires(EDIT)
def entity_set_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the status (back to NEW resets the request counter)."""
    ee = _visible(request, pk)
    form = SetStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a status.")
        return redirect("ee-detail", ee.pk)
    try:
        ee = services.set_status(actor(request), ee.username, form.cleaned_data["status"])
    except WaitingForApproval as waiting:  # stored for approval, not done: not an error
        messages.info(request, waiting.message)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"End entity '{ee.username}' now has status {ee.get_status_display()}.")
    return redirect("ee-detail", ee.pk)


@require_POST
@requires("/ra_functionality/revoke_end_entity")
def entity_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke the end entity and every certificate it holds."""
    ee = _visible(request, pk)
    form = RevokeEntityForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a revocation reason.")
        return redirect("ee-detail", ee.pk)
    try:
        ee = services.revoke_end_entity(actor(request), ee.username, form.cleaned_data["reason"])
    except WaitingForApproval as waiting:  # stored for approval, not done: not an error
        messages.info(request, waiting.message)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"End entity '{ee.username}' and its certificates are revoked.")
    return redirect("ee-detail", ee.pk)


@require_POST
@requires("/ra_functionality/delete_end_entity")
def entity_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete the end entity (its certificates stay, revoked first when asked)."""
    ee = _visible(request, pk)
    reason = None
    if request.POST.get("revoke"):
        form = RevokeEntityForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else 0
    try:
        services.delete_end_entity(actor(request), ee.username, revoke_reason=reason)
    except WaitingForApproval as waiting:
        messages.info(request, waiting.message)
        return redirect("ee-detail", ee.pk)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("ee-detail", ee.pk)
    messages.success(request, f"End entity '{ee.username}' deleted.")
    return redirect("ee-search")
