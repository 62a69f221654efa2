"""CRL pages: the latest CRLs per CA and building a new one with progress shown in the page."""

from __future__ import annotations

from celery.result import AsyncResult
from django.conf import settings
from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..crl import latest_crl
from ..models import CRL, CertificateAuthority
from ..tasks import create_crl_task
from .base import actor, requires


@requires("/ca_functionality/view_ca")
def crl_list(request):
    who = actor(request)
    cas = [ca for ca in CertificateAuthority.objects.local() if who.is_allowed(f"/ca/{ca.pk}")]
    rows = [{"ca": ca, "full": latest_crl(ca), "delta": latest_crl(ca, delta=True),
             "history": CRL.objects.filter(ca=ca).defer("der")[:5]} for ca in cas]
    return render(request, "pki/crl_list.html", {
        "rows": rows, "can_create": who.is_allowed("/ca_functionality/create_crl"),
        "task_id": request.GET.get("task"),
    })


@require_POST
@requires("/ca_functionality/create_crl")
def crl_create(request, pk: int):
    ca = get_object_or_404(CertificateAuthority, pk=pk)
    who = actor(request)
    who.require(f"/ca/{ca.pk}")
    delta = request.POST.get("delta") == "1"
    result = create_crl_task.delay(ca.pk, delta=delta, actor_name=who.name)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # No broker: the task already ran in this request; show its outcome right away.
        if result.successful():
            r = result.result
            messages.success(request, f"CRL #{r['crl_number']} for {ca.name} created ({r['entries']} entries).")
        else:
            messages.error(request, f"CRL for {ca.name} failed: {result.result}")
        return redirect("crl-list")
    return redirect(f"{request.path.rsplit('/', 3)[0]}/?task={result.id}")


@requires("/administrator")
def task_status(request, task_id: str):
    """State of a queued task for the page's progress bar: state, done, total and the result."""
    result = AsyncResult(task_id)
    body = {"state": result.state}
    if result.state == "PROGRESS" and isinstance(result.info, dict):
        body.update(done=result.info.get("done", 0), total=result.info.get("total", 0))
    elif result.successful():
        body["result"] = result.result
    elif result.failed():
        body["error"] = str(result.result)
    return JsonResponse(body)
