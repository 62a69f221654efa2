"""Certificate profile pages: list, view, create, edit, clone, delete."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..errors import PkiError
from ..forms.profiles import CustomExtensionFormSet, ProfileForm, custom_extensions
from ..models import CertificateProfile
from ..services import profiles as profile_services
from .base import actor, form_error, posted, requires


@requires("/ca_functionality/view_certificate_profiles")
def profile_list(request):
    return render(request, "pki/profile_list.html", {"profiles": CertificateProfile.objects.all()})


@requires("/ca_functionality/view_certificate_profiles")
def profile_detail(request, pk: int):
    profile = get_object_or_404(CertificateProfile, pk=pk)
    return render(request, "pki/profile_detail.html", {"profile": profile, "values": ProfileForm.initial_for(profile)})


def _edit(request, profile: CertificateProfile | None):
    if profile is not None:
        initial = ProfileForm.initial_for(profile)
        ext_initial = profile.custom_extensions
    else:
        initial = {"profile_type": "ENDENTITY", "validity": "2y", "allowed_key_algorithms": ["RSA", "EC"],
                   "allowed_rsa_sizes": [2048, 3072, 4096], "allowed_curves": ["secp256r1", "secp384r1"],
                   "key_usage": ["digitalSignature", "keyEncipherment"]}
        ext_initial = []
    form = ProfileForm(posted(request), initial=initial)
    formset = CustomExtensionFormSet(posted(request), initial=ext_initial, prefix="ext")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        values = form.profile_values()
        values["custom_extensions"] = custom_extensions(formset)
        try:
            saved = profile_services.save_profile(actor(request), form.cleaned_data["name"], values, profile)
        except PkiError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Certificate profile '{saved.name}' saved.")
            return redirect("profile-detail", saved.pk)
    title = f"Edit certificate profile {profile.name}" if profile else "New certificate profile"
    return render(request, "pki/profile_form.html", {"form": form, "formset": formset, "title": title},
                  status=400 if request.method == "POST" else 200)


@requires("/ca_functionality/edit_certificate_profiles")
def profile_create(request):
    return _edit(request, None)


@requires("/ca_functionality/edit_certificate_profiles")
def profile_edit(request, pk: int):
    profile = get_object_or_404(CertificateProfile, pk=pk)
    if profile.builtin:
        messages.info(request, f"'{profile.name}' is a fixed profile: clone it to make your own.")
        return redirect("profile-detail", profile.pk)
    return _edit(request, profile)


@require_POST
@requires("/ca_functionality/edit_certificate_profiles")
def profile_clone(request, pk: int):
    source = get_object_or_404(CertificateProfile, pk=pk)
    name = request.POST.get("name", "").strip() or f"{source.name} (copy)"
    try:
        clone = profile_services.clone_profile(actor(request), source, name)
    except PkiError as exc:
        messages.error(request, exc.message)
        return redirect("profile-detail", source.pk)
    messages.success(request, f"Cloned into '{clone.name}'.")
    return redirect("profile-edit", clone.pk)


@require_POST
@requires("/ca_functionality/edit_certificate_profiles")
def profile_delete(request, pk: int):
    profile = get_object_or_404(CertificateProfile, pk=pk)
    try:
        profile_services.delete_profile(actor(request), profile)
    except PkiError as exc:
        messages.error(request, exc.message)
        return redirect("profile-detail", profile.pk)
    messages.success(request, f"Certificate profile '{profile.name}' deleted.")
    return redirect("profile-list")
