"""Crypto token pages of the admin UI: list, create, view with key pairs, activate, generate (queued,
with progress), test, remove and export keys, delete. Interface code over :mod:`cryptotokens.services`."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pki.errors import PkiError, as_pki_error
from pki.views.base import actor, form_error, posted, requires

from . import services
from .errors import CryptoTokenError
from .forms import ActivateForm, CryptoTokenCreateForm, CryptoTokenEditForm, ExportForm, GenerateKeyForm
from .models import CryptoToken
from .tasks import queue_key_generation


def _visible(request, pk: int) -> CryptoToken:
    token = get_object_or_404(CryptoToken, pk=pk)
    actor(request).require(f"/cryptotoken/view/{token.pk}")
    return token


def _refusal(request, exc: Exception) -> None:
    messages.error(request, as_pki_error(exc).message if isinstance(exc, CryptoTokenError) else str(exc))


@requires("/cryptotoken/view")
def token_list(request):
    who = actor(request)
    tokens = [t for t in CryptoToken.objects.prefetch_related("key_pairs")
              if who.is_allowed(f"/cryptotoken/view/{t.pk}")]
    return render(request, "cryptotokens/list.html", {"tokens": tokens})


@requires("/cryptotoken/modify")
def token_create(request):
    form = CryptoTokenCreateForm(posted(request))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            token = services.create_token(
                actor(request), name=d["name"], token_type=d["token_type"], auth_code=d["auth_code"],
                auto_activate=d["auto_activate"], allow_export=d["allow_export"],
                explicit_ecc_parameters=d["explicit_ecc_parameters"], properties=form.properties())
        except CryptoTokenError as exc:
            form_error(form, as_pki_error(exc))
        except PkiError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Crypto token '{token.name}' created and active.")
            return redirect("cryptotoken-detail", token.pk)
    return render(request, "cryptotokens/create.html", {"form": form}, status=400 if form.errors else 200)


@requires("/cryptotoken/view")
def token_edit(request, pk: int):
    token = _visible(request, pk)
    form = CryptoTokenEditForm(token, posted(request))
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.edit_token(actor(request), token, name=d["name"], auth_code=d["auth_code"] or None,
                                auto_activate=d["auto_activate"], allow_export=d["allow_export"],
                                explicit_ecc_parameters=d["explicit_ecc_parameters"], properties=form.properties())
        except (CryptoTokenError, PkiError) as exc:
            form_error(form, as_pki_error(exc) if isinstance(exc, CryptoTokenError) else exc)
        else:
            messages.success(request, f"Crypto token '{token.name}' saved.")
            return redirect("cryptotoken-detail", token.pk)
    return render(request, "pki/form.html", {"form": form, "title": f"Edit crypto token {token.name}",
                                             "submit": "Save"}, status=400 if form.errors else 200)


@requires("/cryptotoken/view")
def token_detail(request, pk: int):
    token = _visible(request, pk)
    who = actor(request)

    def may(rule: str) -> bool:
        return who.is_allowed(f"/cryptotoken/{rule}/{token.pk}")

    from .backends import registry
    from .usage import users_of

    device_keys, device_error = None, ""
    if token.is_active:
        try:
            device_keys = services.list_device_keys(who, token)
        except (CryptoTokenError, PkiError) as exc:
            device_error = as_pki_error(exc).message if isinstance(exc, CryptoTokenError) else str(exc)
    return render(request, "cryptotokens/detail.html", {
        "token": token, "key_pairs": token.key_pairs.all(), "users": users_of(token),
        "device_keys": device_keys, "device_error": device_error,
        # Plain values: a template would call the backend class (it is callable) instead of reading it.
        "backend_label": registry.get(token.token_type).label,
        "supports_export": registry.get(token.token_type).supports_export, "generate_form": GenerateKeyForm(),
        "activate_form": ActivateForm(), "export_form": ExportForm(), "task_id": request.GET.get("task"),
        "can": {r: may(r) for r in ("activate", "deactivate", "generate_keys", "remove_keys", "test_keys", "delete",
                                    "modify")},
    })


def _post_action(request, pk: int, action) -> HttpResponse:
    token = _visible(request, pk)
    try:
        note = action(token)
    except (CryptoTokenError, PkiError) as exc:
        _refusal(request, exc)
    else:
        if note:
            messages.success(request, note)
    return redirect("cryptotoken-detail", token.pk)


@require_POST
@requires("/cryptotoken/view")
def token_activate(request, pk: int):
    form = ActivateForm(request.POST)
    code = request.POST.get("auth_code", "") if form.is_valid() else ""
    return _post_action(request, pk, lambda t: services.activate(actor(request), t, code) or "Token activated.")


@require_POST
@requires("/cryptotoken/view")
def token_deactivate(request, pk: int):
    def run(t):
        services.deactivate(actor(request), t)
        return "Token deactivated." + (" It is auto-activated, so its keys stay usable." if t.auto_activate else "")

    return _post_action(request, pk, run)


@require_POST
@requires("/cryptotoken/view")
def key_generate(request, pk: int):
    token = _visible(request, pk)
    form = GenerateKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a key pair alias and a key specification.")
        return redirect("cryptotoken-detail", token.pk)
    try:
        result = queue_key_generation(actor(request), token, form.cleaned_data["alias"], form.cleaned_data["key_spec"])
    except (CryptoTokenError, PkiError) as exc:
        _refusal(request, exc)
        return redirect("cryptotoken-detail", token.pk)
    if result.ready():  # no broker: it ran in this request
        if result.successful():
            messages.success(request, f"Key pair '{result.result['alias']}' generated.")
        else:
            _refusal(request, result.result)
        return redirect("cryptotoken-detail", token.pk)
    return redirect(f"/cryptotokens/{token.pk}/?task={result.id}")


@require_POST
@requires("/cryptotoken/view")
def key_adopt(request, pk: int):
    """Register a key found on the device under its alias (its private key stays on the device)."""
    alias = request.POST.get("alias", "")
    return _post_action(request, pk, lambda t: services.adopt_key_pair(actor(request), t, alias)
                        and f"Key '{alias}' on the device is registered as a key pair of this token.")


@require_POST
@requires("/cryptotoken/view")
def key_test(request, pk: int):
    alias = request.POST.get("alias", "")
    return _post_action(request, pk, lambda t: services.test_key_pair(actor(request), t, alias)
                        and f"Key pair '{alias}' signed and verified a test challenge.")


@require_POST
@requires("/cryptotoken/view")
def key_remove(request, pk: int):
    alias = request.POST.get("alias", "")
    return _post_action(request, pk, lambda t: services.remove_key_pair(actor(request), t, alias)
                        or f"Key pair '{alias}' removed.")


@require_POST
@requires("/cryptotoken/view")
def key_export(request, pk: int):
    token = _visible(request, pk)
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a password of at least 8 characters for the PKCS#12 file.")
        return redirect("cryptotoken-detail", token.pk)
    try:
        data = services.export_key_pair(actor(request), token, form.cleaned_data["alias"],
                                        form.cleaned_data["password"])
    except (CryptoTokenError, PkiError) as exc:
        _refusal(request, exc)
        return redirect("cryptotoken-detail", token.pk)
    response = HttpResponse(data, content_type="application/x-pkcs12")
    response["Content-Disposition"] = f'attachment; filename="{form.cleaned_data["alias"]}.p12"'
    return response


@require_POST
@requires("/cryptotoken/view")
def token_delete(request, pk: int):
    token = _visible(request, pk)
    try:
        services.delete_token(actor(request), token)
    except (CryptoTokenError, PkiError) as exc:
        _refusal(request, exc)
        return redirect("cryptotoken-detail", token.pk)
    messages.success(request, f"Crypto token '{token.name}' deleted.")
    return redirect("cryptotoken-list")
