"""Admin UI: "Approval Profiles" (EJBCA's Supervision Functions ▸ Approval Profiles): the profiles (number of
approvals, approver roles, request expiry) and which action of which CA or certificate profile uses which.
Thin views over :mod:`pki.services.approvals`; deciding requests is on the RA portal's "Approve requests"."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..models import CertificateAuthority, CertificateProfile, Role
from ..models.approvals import ApprovalAction, ApprovalProfile, ApprovalSetting
from ..services import approvals
from .base import SERVICE_ERRORS, actor, form_error, form_status, posted, refusal_message, requires

VIEW_RULE = "/administrator"
EDIT_RULE = approvals.EDIT_PROFILES_RULE


class ApprovalProfileForm(forms.Form):
    name = forms.CharField(max_length=255)
    approvals_required = forms.IntegerField(min_value=1, max_value=100, initial=1,
                                            label="Number of approvals required")
    request_expiration = forms.IntegerField(min_value=60, max_value=366 * 86400, initial=8 * 3600,
                                            label="Request expiration (seconds)")
    approver_roles = forms.ModelMultipleChoiceField(queryset=Role.objects.all(), required=False,
                                                    help_text="None chosen: any administrator with the approval "
                                                              "rule of the action")


class ApprovalSettingForm(forms.Form):
    action = forms.ChoiceField(choices=ApprovalAction.choices)
    approval_profile = forms.ModelChoiceField(queryset=ApprovalProfile.objects.all(), required=False,
                                              empty_label="(no approval)")
    ca = forms.ModelChoiceField(queryset=CertificateAuthority.objects.all(), required=False, label="CA")
    certificate_profile = forms.ModelChoiceField(queryset=CertificateProfile.objects.all(), required=False)

    def clean(self):
        data = super().clean()
        if bool(data.get("ca")) == bool(data.get("certificate_profile")):
            raise forms.ValidationError("Choose either a CA or a certificate profile.")
        return data


@requires(VIEW_RULE, EDIT_RULE)
def profile_list(request: HttpRequest) -> HttpResponse:
    """The profiles, where each is used, and the form that attaches one to an action."""
    return render(request, "pki/approval_profiles.html", {
        "profiles": ApprovalProfile.objects.prefetch_related("approver_roles"),
        "settings": ApprovalSetting.objects.select_related("approval_profile", "ca", "certificate_profile")
        .order_by("approval_profile__name", "action"),
        "setting_form": ApprovalSettingForm(),
    })


def _profile_form(request: HttpRequest, profile: ApprovalProfile | None) -> HttpResponse:
    initial = ({"name": profile.name, "approvals_required": profile.approvals_required,
                "request_expiration": profile.request_expiration,
                "approver_roles": list(profile.approver_roles.all())} if profile else None)
    form = ApprovalProfileForm(posted(request), initial=initial)
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            saved = approvals.save_profile(actor(request), profile=profile, **form.cleaned_data)
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Approval profile '{saved.name}' saved.")
            return redirect("approval-profile-list")
    title = f"Edit approval profile {profile.name}" if profile else "Add approval profile"
    return render(request, "pki/form.html", {"form": form, "title": title,
                                             "cancel": reverse("approval-profile-list")},
                  status=form_status(form, refused))


@requires(VIEW_RULE, EDIT_RULE)
def profile_create(request: HttpRequest) -> HttpResponse:
    return _profile_form(request, None)


@requires(VIEW_RULE, EDIT_RULE)
def profile_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _profile_form(request, get_object_or_404(ApprovalProfile, pk=pk))


@require_POST
@requires(VIEW_RULE, EDIT_RULE)
def profile_delete(request: HttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(ApprovalProfile, pk=pk)
    try:
        approvals.delete_profile(actor(request), profile)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"Approval profile '{profile.name}' deleted.")
    return redirect("approval-profile-list")


@require_POST
@requires(VIEW_RULE)
def setting_save(request: HttpRequest) -> HttpResponse:
    """Attach an approval profile to an action of a CA or certificate profile (or detach it). The service checks
    the CA's or the certificate profiles' edit rule."""
    form = ApprovalSettingForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
        return redirect("approval-profile-list")
    data = form.cleaned_data
    try:
        approvals.set_approval(actor(request), data["action"], data["approval_profile"], ca=data["ca"],
                               certificate_profile=data["certificate_profile"])
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        target = data["ca"] or data["certificate_profile"]
        messages.success(request, f"{ApprovalAction(data['action']).label} of {target}: "
                         f"{data['approval_profile'] or 'no approval'}.")
    return redirect("approval-profile-list")
