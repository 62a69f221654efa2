"""CRL pages: the latest CRLs per CA, and building a new one on Celery with its progress in the page."""

from __future__ import annotations

import logging

from celery.result import AsyncResult
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..choices import RevocationReason
from ..models import CRL, Certificate, CertificateAuthority
from ..services.health import latest_crls
from ..tasks import create_crl_task
from ..x509.crl_entries import CrlEntry, CrlFormatError, crl_entries
from .base import SERVICE_ERRORS, actor, paginate, refusal_message, requires
from .display import crl_timing

HISTORY = 5
logger = logging.getLogger(__name__)


@requires("/ca_functionality/view_ca")
def crl_list(request: HttpRequest) -> HttpResponse:
    """Each local CA the caller may see with its latest CRLs and the buttons to make new ones."""
    who = actor(request)
    cas = [ca for ca in CertificateAuthority.objects.local() if who.is_allowed(f"/ca/{ca.pk}")]
    full, delta = latest_crls(cas), latest_crls(cas, delta=True)
    rows = [{"ca": ca, "full": full.get(ca.pk), "delta": delta.get(ca.pk), "timing": crl_timing(ca),
             "history": CRL.objects.filter(ca=ca).defer("der").order_by("-crl_number")[:HISTORY]} for ca in cas]
    return render(request, "pki/crl_list.html", {
        "rows": rows, "can_create": who.is_allowed("/ca_functionality/create_crl"),
        "task_id": request.GET.get("task", "")[:64],
    })


class _Entries:
    """A CRL's entries as the paginator sees them: the count stored with the CRL, and slices read from
    the DER one page at a time (pki.x509.crl_entries), never all entries at once."""

    def __init__(self, crl: CRL):
        self._der = bytes(crl.der)
        self._count = crl.entries

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, item: slice) -> list[CrlEntry]:
        return crl_entries(self._der, item.start or 0, (item.stop or self._count) - (item.start or 0))


@requires("/ca_functionality/view_ca")
def crl_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One CRL and its entries (serial, revocation date, reason), 50 to a page, each serial linked to the
    certificate when it is stored here."""
    crl = get_object_or_404(CRL.objects.select_related("ca"), pk=pk)
    actor(request).require(f"/ca/{crl.ca_id}")
    try:
        page = paginate(request, _Entries(crl))
        entries = list(page.object_list)
    except CrlFormatError as exc:
        logger.warning("CRL %s of %s is not readable: %s", crl.pk, crl.ca.name, exc)
        return render(request, "pki/error.html", {"message": "This CRL's stored bytes cannot be read."},
                      status=500)
    certs = dict(Certificate.objects.filter(ca=crl.ca, serial__in=[e.serial for e in entries])
                 .values_list("serial", "pk"))
    reasons = {r.value: r.label for r in RevocationReason}
    rows = [{"entry": e, "reason": reasons.get(e.reason, str(e.reason)) if e.reason is not None else "",
             "cert_pk": certs.get(e.serial)} for e in entries]
    return render(request, "pki/crl_detail.html", {"crl": crl, "page": page, "rows": rows, "params": ""})


@require_POST
@requires("/ca_functionality/create_crl")
def crl_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a CRL (or delta CRL) for the CA. With a broker the page then follows the task's progress;
    without one the task ran inside this request, so its outcome is shown at once."""
    ca = get_object_or_404(CertificateAuthority, pk=pk)
    who = actor(request)
    who.require(f"/ca/{ca.pk}")
    delta = request.POST.get("delta") == "1"
    kind = "delta CRL" if delta else "CRL"
    try:
        result = create_crl_task.delay(ca.pk, delta=delta, actor_name=who.name)
    except SERVICE_ERRORS as exc:  # an eager task raises the service's refusal here
        messages.error(request, f"No {kind} for {ca.name}: {refusal_message(exc)}")
        return redirect("crl-list")
    title = kind[0].upper() + kind[1:]
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if not result.successful():
            messages.error(request, f"No {kind} for {ca.name}: {result.result}")
        else:
            n = result.result["entries"]
            messages.success(request, f"{title} #{result.result['crl_number']} for {ca.name} created "
                                      f"({n} {'entry' if n == 1 else 'entries'}).")
        return redirect("crl-list")
    messages.info(request, f"{title} for {ca.name} queued.")
    return redirect(f"{reverse('crl-list')}?task={result.id}")


@requires("/administrator")
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """A queued task for a page's progress bar: ``state``, ``done`` and ``total`` (work units so far and in
    all, when the task reports them), ``result`` once it succeeded and ``error`` if it failed."""
    result = AsyncResult(task_id)
    state = result.state
    info = result.info if isinstance(result.info, dict) else {}
    body: dict = {"state": state, "done": info.get("done"), "total": info.get("total"), "result": None}
    if state == "SUCCESS":
        body["result"] = result.result
        if isinstance(result.result, dict) and "entries" in result.result:
            body["done"] = body["total"] = result.result["entries"]
    elif state == "FAILURE":
        body["error"] = str(result.result)
    return JsonResponse(body)
