""""Roles and Access Rules" pages: the role list, a role's members tab and its access rules tab.

Viewing needs ``/system_functionality/view_administrator_privileges``, every change
``/system_functionality/edit_administrator_privileges`` (checked again by :mod:`pki.services.roles`).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..forms.roles import MemberForm, RoleForm, RulesForm
from ..forms.users import RoleFromTemplateForm
from ..models import Role
from ..services import role_templates
from ..services import roles as role_services
from ..services.roles import EDIT_RULE, VIEW_RULE
from .base import SERVICE_ERRORS, actor, form_error, form_status, posted, refusal_message, requires


@requires(VIEW_RULE)
def role_list(request: HttpRequest) -> HttpResponse:
    """Every role with its member and rule counts."""
    return render(request, "pki/role_list.html", {"roles": role_services.list_roles(actor(request))})


@requires(EDIT_RULE)
def role_create(request: HttpRequest) -> HttpResponse:
    """A new, empty role; then its members and rules are set on its page."""
    form = RoleForm(posted(request))
    refused = None
    if form.is_bound and form.is_valid():
        try:
            d = form.cleaned_data
            role = role_services.create_role(actor(request), d["name"], d["description"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Role '{role.name}' created. Add its members and access rules.")
            return redirect("role-rules", role.pk)
    return render(request, "pki/form.html", {"form": form, "title": "New role", "submit": "Create role",
                                             "cancel": "/roles/"}, status=form_status(form, refused))


@requires(EDIT_RULE)
def role_from_template(request: HttpRequest) -> HttpResponse:
    """EJBCA's basic mode: a new role from a template (Super Administrator, CA Administrator, RA Administrator,
    Auditor, Supervisor) for the chosen CAs and end entity profiles; the rules tab shows what it filled in."""
    form = RoleFromTemplateForm(posted(request))
    refused = None
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        try:
            role = role_templates.create_role_from_template(actor(request), d["name"], d["template"], d["description"],
                                                            d["cas"], d["profiles"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Role '{role.name}' created from the {d['template']} template. "
                                      "Add its members; the rules below can be refined.")
            return redirect("role-detail", role.pk)
    return render(request, "pki/form.html", {
        "form": form, "title": "New role from a template", "submit": "Create role", "cancel": "/roles/",
        "intro": "The basic mode of the roles editor: choose what the role is for; its access rules are filled in "
                 "(the rules tab is the advanced view). You can give only rights you hold yourself.",
    }, status=form_status(form, refused))


@requires(EDIT_RULE)
def role_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename a role or change its description."""
    role = get_object_or_404(Role, pk=pk)
    form = RoleForm(posted(request), initial={"name": role.name, "description": role.description})
    refused = None
    if form.is_bound and form.is_valid():
        try:
            role_services.edit_role(actor(request), role, form.cleaned_data["name"], form.cleaned_data["description"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Role '{role.name}' saved.")
            return redirect("role-detail", role.pk)
    return render(request, "pki/form.html", {"form": form, "title": f"Edit role {role.name}", "submit": "Save",
                                             "cancel": f"/roles/{role.pk}/"}, status=form_status(form, refused))


@require_POST
@requires(EDIT_RULE)
def role_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a role with its members and rules (never the last super administrator's)."""
    role = get_object_or_404(Role, pk=pk)
    try:
        role_services.delete_role(actor(request), role)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
        return redirect("role-detail", role.pk)
    messages.success(request, f"Role '{role.name}' deleted.")
    return redirect("role-list")


@requires(VIEW_RULE)
def role_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The members tab: who belongs to the role, with the form to add one."""
    role = get_object_or_404(Role, pk=pk)
    return _members_page(request, role, MemberForm())


def _members_page(request: HttpRequest, role: Role, form: MemberForm, status: int = 200) -> HttpResponse:
    return render(request, "pki/role_members.html", {
        "role": role, "tab": "members", "form": form, "can_edit": actor(request).is_allowed(EDIT_RULE),
        "cn_warning": role_services.CN_MEMBER_WARNING, "claim_warning": role_services.MUTABLE_CLAIM_WARNING,
        "members": role.members.select_related("issuer_ca").order_by("match_type", "match_value"),
    }, status=status)


@require_POST
@requires(EDIT_RULE)
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a member: a local user, an OAuth provider claim, or a client certificate (CA + serial or CN)."""
    role = get_object_or_404(Role, pk=pk)
    form = MemberForm(request.POST)
    refused = None
    if form.is_valid():
        try:
            role_services.add_member(actor(request), role, form.spec())
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, "Member added.")
            for warning in role_services.member_warnings(form.spec()):
                messages.warning(request, warning)
            return redirect("role-detail", role.pk)
    return _members_page(request, role, form, status=form_status(form, refused))


@require_POST
@requires(EDIT_RULE)
def member_remove(request: HttpRequest, pk: int, member_id: int) -> HttpResponse:
    """Remove a member (never the last one of the last super administrator role)."""
    role = get_object_or_404(Role, pk=pk)
    try:
        role_services.remove_member(actor(request), role, member_id)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, "Member removed.")
    return redirect("role-detail", role.pk)


@requires(VIEW_RULE)
def role_rules(request: HttpRequest, pk: int) -> HttpResponse:
    """The access rules tab: every known resource with Inherit / Allow / Deny; saved in one transaction."""
    role = get_object_or_404(Role, pk=pk)
    who = actor(request)
    if request.method == "POST":
        who.require(EDIT_RULE)
    form = RulesForm(role, posted(request))
    refused = None
    if form.is_bound and form.is_valid():
        try:
            changes = role_services.set_rules(who, role, form.rules())
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            if changes:
                messages.success(request, f"Access rules saved: {len(changes.added)} added, "
                                          f"{len(changes.removed)} removed, {len(changes.changed)} changed.")
            else:
                messages.info(request, "No change to the access rules.")
            return redirect("role-rules", role.pk)
    return render(request, "pki/role_rules.html", {
        "role": role, "tab": "rules", "form": form, "groups": form.groups(), "can_edit": who.is_allowed(EDIT_RULE),
    }, status=form_status(form, refused))
