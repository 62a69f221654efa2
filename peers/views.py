"""Admin UI: "Peer Systems" (System). On a CA node: the outgoing connectors with their state; on an RA/VA node:
the CA connectors that connected in. Interface code over :mod:`peers.services`."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from pki.views.base import SERVICE_ERRORS, actor, form_error, form_status, posted, refusal_message, requires

from . import connector as runner
from . import services
from .choices import MODIFY_RULE, VIEW_RULE
from .forms import ConnectorForm
from .models import PeerConnector
from .transport import PeerError


@requires(VIEW_RULE)
def peer_list(request):
    who = actor(request)
    return render(request, "peers/list.html", {
        "node": settings.PKI_NODE_ROLE, "connectors": list(services.list_connectors(who)),
        "incoming": list(services.list_incoming(who)), "may_modify": who.is_allowed(MODIFY_RULE)})


@requires(MODIFY_RULE)
def peer_create(request):
    form = ConnectorForm(posted(request))
    refused = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            c = services.add_connector(actor(request), name=d["name"], url=d["url"], binding=d["binding"],
                                       enabled=d["enabled"])
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Peer connector '{c.name}' added.")
            return redirect("peer-list")
    return render(request, "pki/form.html", {"form": form, "title": "New outgoing peer connector", "submit": "Add",
                                             "cancel": "/system/peers/"}, status=form_status(form, refused))


@requires(MODIFY_RULE)
def peer_edit(request, pk: int):
    c = get_object_or_404(PeerConnector.objects.select_related("binding"), pk=pk)
    form = ConnectorForm(posted(request), initial={"name": c.name, "url": c.url, "binding": c.binding,
                                                   "enabled": c.enabled})
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            services.edit_connector(actor(request), c, **form.cleaned_data)
        except SERVICE_ERRORS as exc:
            refused = form_error(form, exc)
        else:
            messages.success(request, f"Peer connector '{c.name}' saved.")
            return redirect("peer-list")
    return render(request, "pki/form.html", {"form": form, "title": f"Edit peer connector {c.name}",
                                             "submit": "Save", "cancel": "/system/peers/"},
                  status=form_status(form, refused))


@require_POST
@requires(MODIFY_RULE)
def peer_delete(request, pk: int):
    c = get_object_or_404(PeerConnector.objects.select_related("binding"), pk=pk)
    try:
        services.remove_connector(actor(request), c)
    except SERVICE_ERRORS as exc:
        messages.error(request, refusal_message(exc))
    else:
        messages.success(request, f"Peer connector '{c.name}' removed.")
    return redirect("peer-list")


@require_POST
@requires(MODIFY_RULE)
def peer_test(request, pk: int):
    c = get_object_or_404(PeerConnector.objects.select_related("binding"), pk=pk)
    try:
        hello = runner.test_connection(c)
    except PeerError as exc:
        messages.error(request, f"Peer connector '{c.name}' could not connect: {exc.text}")
    else:
        messages.success(request, f"Peer connector '{c.name}' connected: a {hello.get('node', '?').upper()} node.")
    return redirect("peer-list")
