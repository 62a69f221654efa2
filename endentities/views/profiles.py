"""End entity profile pages: list, view, add, edit, clone, delete. The built-in EMPTY profile is read-only.

The editor's subject DN and alt-name field lists grow and shrink by submitting the form with an ``op``
(``add-dn``, ``remove-san-3``): the page comes back with the edited lists and nothing is saved. Saving
goes through the profile service, which validates the whole profile and writes the audit log.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pki.errors import as_pki_error
from pki.ids import parse_decimal
from pki.views.base import SERVICE_ERRORS, actor, form_error, refusal_message, requires
from pki.views.listing import sort_queryset

from .. import fields as field_table
from ..choices import TokenType
from ..forms.profiles import (
    AltNameFieldFormSet,
    DnFieldFormSet,
    EndEntityProfileForm,
    NotificationFormSet,
    posted_rows,
)
from ..models import EndEntityProfile


def _services():
    """The profile service (validation, saving, audit). Imported when used: it is another part's module."""
    from ..services import profiles

    return profiles

VIEW_RULE = "/ca_functionality/view_end_entity_profiles"
EDIT_RULE = "/ca_functionality/edit_end_entity_profiles"
# Formset prefixes of the two field lists, and the field-table kind behind each.
LISTS = {"dn": ("dn", DnFieldFormSet), "san": ("altname", AltNameFieldFormSet)}
# The profile service's field names of the lists, and where the page shows their refusals.
LIST_FIELDS = {"subject_dn_fields": "dn", "subject_alt_name_fields": "san", "notifications": "ntf"}


@requires(VIEW_RULE)
def profile_list(request: HttpRequest) -> HttpResponse:
    """Every end entity profile with its field types and default certificate profile."""
    profiles, sorting = sort_queryset(
        request, EndEntityProfile.objects.select_related("default_certificate_profile"),
        {"name": ["name"], "certificate_profile": ["default_certificate_profile__name", "name"]}, "name")
    return render(request, "endentities/profile_list.html", {"profiles": profiles, "sorting": sorting})


@requires(VIEW_RULE)
def profile_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A profile's settings and field instances, with Edit/Clone/Delete for those allowed."""
    profile = get_object_or_404(EndEntityProfile.objects.prefetch_related(
        "available_cas", "available_certificate_profiles"), pk=pk)
    tokens = [TokenType(t).label for t in profile.available_token_types if t in TokenType.values]

    def described(instances, kind):
        return [{**f, "label": getattr(field_table.field_type(f["type"], kind), "label", f["type"])}
                for f in instances]

    return render(request, "endentities/profile_detail.html", {
        "profile": profile, "tokens": tokens,
        "default_token": TokenType(profile.default_token_type).label if profile.default_token_type in
        TokenType.values else "",
        "dn_fields": described(profile.subject_dn_fields, "dn"),
        "san_fields": described(profile.subject_alt_name_fields, "altname"),
        "can_edit": actor(request).is_allowed(EDIT_RULE),
    })


def _apply_op(op: str, rows: dict[str, list[dict]], data) -> str | None:
    """Add or remove one field instance in ``rows`` as ``op`` asks; returns a message for a refused add."""
    parts = op.split("-")
    if len(parts) == 2 and parts[0] == "add" and parts[1] in LISTS:
        which = parts[1]
        ftype = field_table.field_type(data.get(f"{which}-add-type", ""), LISTS[which][0])
        if ftype is None:
            return "Choose a field type to add."
        if not ftype.repeatable and any(r["type"] == ftype.key for r in rows[which]):
            return f"{ftype.label} may appear only once."
        rows[which].append({"type": ftype.key, "required": False, "modifiable": True, "validation": "", "value": "",
                            "use_entity_email": False, "use_entity_cn": False})
    elif len(parts) == 3 and parts[0] == "remove" and parts[1] in LISTS and parse_decimal(parts[2]) is not None:
        index = parse_decimal(parts[2])
        if index < len(rows[parts[1]]):
            del rows[parts[1]][index]
    return None


def _edit(request: HttpRequest, profile: EndEntityProfile | None) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = EndEntityProfileForm(data, initial=EndEntityProfileForm.initial_for(profile))
    formsets = {
        "dn": DnFieldFormSet(data, prefix="dn", initial=profile.subject_dn_fields if profile else []),
        "san": AltNameFieldFormSet(data, prefix="san", initial=profile.subject_alt_name_fields if profile else []),
    }
    notifications = NotificationFormSet(data, prefix="ntf", initial=profile.notifications if profile else [])
    status = 200
    list_errors: dict[str, str] = {}  # service refusals about a whole list, shown with that list
    op = request.POST.get("op", "") if data is not None else ""
    if op:
        # Add/remove a field instance: show the form again as posted, with the list changed, unsaved.
        rows = {which: posted_rows(data, which) for which in LISTS}
        refused = _apply_op(op, rows, data)
        if refused:
            messages.error(request, refused)
        form = EndEntityProfileForm(initial=form.data_as_initial())
        formsets = {which: cls(prefix=which, initial=rows[which]) for which, (_, cls) in LISTS.items()}
    elif data is not None:
        status = 400
        valid = form.is_valid() & all([f.is_valid() for f in formsets.values()]) & notifications.is_valid()
        if valid:
            values = form.profile_values()
            values["subject_dn_fields"] = formsets["dn"].instances()
            values["subject_alt_name_fields"] = formsets["san"].instances()
            values["notifications"] = notifications.notifications()
            try:
                saved = _services().save_profile(actor(request), form.cleaned_data["name"], values, profile)
            except SERVICE_ERRORS as exc:
                which = LIST_FIELDS.get(getattr(exc, "field", None) or "")
                if which:
                    status = as_pki_error(exc).http_status
                    list_errors[which] = as_pki_error(exc).message
                else:
                    status = form_error(form, exc)
            else:
                messages.success(request, f"End entity profile '{saved.name}' saved.")
                return redirect("ee-profile-detail", saved.pk)
    title = f"Edit end entity profile {profile.name}" if profile else "New end entity profile"
    return render(request, "endentities/profile_form.html", {
        "form": form, "dn_formset": formsets["dn"], "san_formset": formsets["san"], "notifications": notifications,
        "dn_choices": field_table.choices("dn"), "san_choices": field_table.choices("altname"),
        "title": title, "profile": profile, "list_errors": list_errors,
        "list_error_links": {f"{which}-errors": message for which, message in list_errors.items()},
    }, status=status)


@requires(EDIT_RULE)
def profile_create(request: HttpRequest) -> HttpResponse:
    """A new end entity profile."""
    return _edit(request, None)


@requires(EDIT_RULE)
def profile_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a profile; the built-in EMPTY profile is read-only and sends the caller back to its page."""
    profile = get_object_or_404(EndEntityProfile, pk=pk)
    if profile.builtin:
        messages.info(request, f"'{profile.name}' is the built-in profile: clone it to make your own.")
        return redirect("ee-profile-detail", profile.pk)
    return _edit(request, profile)


@require_POST
@requires(EDIT_RULE)
def profile_clone(request: HttpRequest, pk: int) -> HttpResponse:
    """Copy a profile under a new name and open the copy for editing."""
    source = get_object_or_404(EndEntityProfile, pk=pk)
    name = request.POST.get("name", "").strip() or f"{source.name} (copy)"
    try:
        clone = _services().clone_profile(actor(request), source, name)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("ee-profile-detail", source.pk)
    messages.success(request, f"Cloned '{source.name}' into '{clone.name}'.")
    return redirect("ee-profile-edit", clone.pk)


@require_POST
@requires(EDIT_RULE)
def profile_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a profile no end entity uses (the service refuses EMPTY and profiles in use)."""
    profile = get_object_or_404(EndEntityProfile, pk=pk)
    try:
        _services().delete_profile(actor(request), profile)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("ee-profile-detail", profile.pk)
    messages.success(request, f"End entity profile '{profile.name}' deleted.")
    return redirect("ee-profile-list")
