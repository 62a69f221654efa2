"""The global search box of the admin UI header: straight to the object when exactly one matches, else a
page of what was found with links to the filtered lists."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from ..services.search import global_search
from .base import actor, requires

DETAIL_VIEWS = {"ca": "ca-detail", "certificate": "certificate-detail"}


@requires("/administrator")
def search(request: HttpRequest) -> HttpResponse:
    """``?q=``: a serial number (hex, colons, ``0x`` or decimal), a SHA-256 fingerprint, part of a subject, a
    username or a CA name; only what the caller's roles let it see is looked at."""
    who = actor(request)
    result = global_search(who, request.GET.get("q", ""))
    if (hit := result.single) is not None:
        return redirect(DETAIL_VIEWS[hit.kind], hit.pk)
    q = urlencode({"q": result.query})
    links = []
    if result.query and who.is_allowed("/ca_functionality/view_certificate"):
        links.append(("Certificates matching it", f"{reverse('certificate-list')}?{q}"))
    if result.query and who.is_allowed("/ra_functionality/view_end_entity"):
        links.append(("End entities matching it", f"{reverse('ee-search')}?{urlencode({'text': result.query})}"))
    return render(request, "pki/search.html", {"result": result, "links": links})
