"""Admin UI: "SCEP Configuration" (list, add, edit, delete aliases). Thin views over :mod:`.services`. (The
approval requests of SCEP enrollments are on the RA portal's "Approve requests" pages, with every other.)"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from pki.errors import NotFoundError
from pki.views.base import SERVICE_ERRORS, actor, form_error, form_status, posted, refusal_message, requires

from . import services
from .forms import ScepAliasForm

RULE = services.RULE


def _alias_or_404(name: str):
    try:
        return services.get_alias(name)
    except NotFoundError:
        raise Http404(f"No SCEP alias '{name}'") from None


@requires(RULE)
def alias_list(request: HttpRequest) -> HttpResponse:
    """Every alias with its mode and URL."""
    return render(request, "scep/alias_list.html", {"aliases": services.list_aliases()})


def _edit(request: HttpRequest, alias) -> HttpResponse:
    values = services.alias_values(alias) if alias else None
    form = ScepAliasForm(posted(request), initial=ScepAliasForm.initial_for(alias, values))
    refused = None
    if request.method == "POST" and form.is_valid():
        who = actor(request)
        name = form.cleaned_data["name"]
        try:
            if alias is None:
                saved = services.add_alias(who, name, **form.settings())
            else:
                if name != alias.name:
                    services.rename_alias(who, alias.name, name)
                saved = services.edit_alias(who, name, **form.settings())
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"SCEP alias '{saved.name}' saved.")
            return redirect("scep-alias-list")
    title = f"Edit SCEP alias {alias.name}" if alias else "Add SCEP alias"
    return render(request, "pki/form.html", {"form": form, "title": title, "submit": "Save",
                                             "cancel": "/system/scep/"}, status=form_status(form, refused))


@requires(RULE)
def alias_create(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@requires(RULE)
def alias_edit(request: HttpRequest, name: str) -> HttpResponse:
    return _edit(request, _alias_or_404(name))


@require_POST
@requires(RULE)
def alias_delete(request: HttpRequest, name: str) -> HttpResponse:
    alias = _alias_or_404(name)
    try:
        services.remove_alias(actor(request), alias.name)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"SCEP alias '{alias.name}' removed.")
    return redirect("scep-alias-list")


@require_POST
@requires(RULE)
def alias_ra_certificate(request: HttpRequest, name: str) -> HttpResponse:
    """Issue the certificate of the alias's RA key pair from the alias's CA."""
    alias = _alias_or_404(name)
    try:
        services.issue_ra_certificate(actor(request), alias.name)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"RA certificate of alias '{alias.name}' issued.")
    return redirect("scep-alias-list")
