"""Certificate profile pages: list, view, create, edit, clone, delete. Built-in profiles are read-only."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..forms.profiles import CustomExtensionFormSet, ProfileForm, custom_extensions
from ..models import CertificateAuthority, CertificateProfile
from ..services import profiles as profile_services
from ..x509.extensions import EKU_NAMES
from .base import SERVICE_ERRORS, actor, form_error, refusal_message, requires
from .listing import sort_queryset


@requires("/ca_functionality/view_certificate_profiles")
def profile_list(request: HttpRequest) -> HttpResponse:
    """All certificate profiles, the built-in ones marked; sorted by name or type (``?o=``)."""
    profiles, sorting = sort_queryset(request, CertificateProfile.objects.all(),
                                      {"name": ["name"], "type": ["profile_type", "name"]}, "name")
    return render(request, "pki/profile_list.html", {"profiles": profiles, "sorting": sorting})


@requires("/ca_functionality/view_certificate_profiles")
def profile_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A profile's settings, with Edit/Delete for editable profiles and Clone for every profile."""
    profile = get_object_or_404(CertificateProfile, pk=pk)
    return render(request, "pki/profile_detail.html", {
        "profile": profile,
        "eku": [EKU_NAMES.get(o, o) for o in profile.extended_key_usage],  # built-in profiles keep names
        "used_by": CertificateAuthority.objects.filter(certificate_profile=profile).values_list("name", flat=True),
    })


def _edit(request: HttpRequest, profile: CertificateProfile | None) -> HttpResponse:
    form = ProfileForm(request.POST if request.method == "POST" else None, initial=ProfileForm.initial_for(profile))
    formset = CustomExtensionFormSet(request.POST if request.method == "POST" else None,
                                     initial=profile.custom_extensions if profile else [], prefix="ext")
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid() and formset.is_valid():
            values = form.profile_values()
            values["custom_extensions"] = custom_extensions(formset)
            try:
                saved = profile_services.save_profile(actor(request), form.cleaned_data["name"], values, profile)
            except SERVICE_ERRORS as exc:
                status = form_error(form, exc)
            else:
                messages.success(request, f"Certificate profile '{saved.name}' saved.")
                return redirect("profile-detail", saved.pk)
    title = f"Edit certificate profile {profile.name}" if profile else "New certificate profile"
    return render(request, "pki/profile_form.html", {"form": form, "formset": formset, "title": title,
                                                     "profile": profile}, status=status)


@requires("/ca_functionality/edit_certificate_profiles")
def profile_create(request: HttpRequest) -> HttpResponse:
    """A new certificate profile."""
    return _edit(request, None)


@requires("/ca_functionality/edit_certificate_profiles")
def profile_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a profile; a built-in one is read-only and sends the caller back to its page."""
    profile = get_object_or_404(CertificateProfile, pk=pk)
    if profile.builtin:
        messages.info(request, f"'{profile.name}' is a fixed profile: clone it to make your own.")
        return redirect("profile-detail", profile.pk)
    return _edit(request, profile)


@require_POST
@requires("/ca_functionality/edit_certificate_profiles")
def profile_clone(request: HttpRequest, pk: int) -> HttpResponse:
    """Copy a profile under a new name and open the copy for editing."""
    source = get_object_or_404(CertificateProfile, pk=pk)
    name = request.POST.get("name", "").strip() or f"{source.name} (copy)"
    try:
        clone = profile_services.clone_profile(actor(request), source, name)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("profile-detail", source.pk)
    messages.success(request, f"Cloned '{source.name}' into '{clone.name}'.")
    return redirect("profile-edit", clone.pk)


@require_POST
@requires("/ca_functionality/edit_certificate_profiles")
def profile_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a profile no CA uses (certificates issued under it keep their data)."""
    profile = get_object_or_404(CertificateProfile, pk=pk)
    try:
        profile_services.delete_profile(actor(request), profile)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("profile-detail", profile.pk)
    messages.success(request, f"Certificate profile '{profile.name}' deleted.")
    return redirect("profile-list")
