"""CRL pages: the latest CRLs per CA, and building a new one on Celery with its progress in the page."""

from __future__ import annotations

from celery.result import AsyncResult
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ..models import CRL, CertificateAuthority
from ..services.health import latest_crls
from ..tasks import create_crl_task
from .base import SERVICE_ERRORS, actor, refusal_message, requires
from .display import crl_timing

HISTORY = 5


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
