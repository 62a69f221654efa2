"""Running this installation's periodic jobs on demand (EJBCA's ``v1/system/service/{service_name}/run``).

The services are CELERY_BEAT_SCHEDULE's jobs (``regenerate-crls``: the CRL updater, ``purge-scep-transactions``,
...), named by their schedule name or their task name; they run in this process through
:func:`pki.scheduler.run_job`, exactly as the embedded scheduler runs them, and the run is audited.
"""

from __future__ import annotations

from typing import Any

from .. import audit
from ..auth.access import Actor
from ..errors import NotFoundError, PkiError
from ..scheduler import Job, jobs, run_job

RULE = "/administrator"


class ServiceFailed(PkiError):
    """The job ran and failed (its error is on the ScheduledJob row and in the log)."""

    http_status = 503
    error_code = "SERVICE_FAILED"


def service_names() -> list[str]:
    return [job.name for job in jobs()]


def _find(name: str) -> Job:
    for job in jobs():
        if name in (job.name, job.task):
            return job
    raise NotFoundError(f"No service named '{name}'. Services here: {', '.join(service_names())}.")


def run_service(actor: Actor, name: str) -> Any:
    """Run the periodic job ``name`` now; refuses unknown names (404) and reports a failed run (503)."""
    actor.require(RULE)
    job = _find(name)
    from django.utils import timezone

    from ..models import ScheduledJob

    # The row run_job records the outcome on (a job the scheduler has never run has none yet).
    ScheduledJob.objects.get_or_create(name=job.name, defaults={"task": job.task, "next_run_at": timezone.now()})
    ScheduledJob.objects.filter(name=job.name).update(last_outcome="", last_message="")
    result = run_job(job)
    row = ScheduledJob.objects.filter(name=job.name).values("last_outcome", "last_message").first() or {}
    outcome = row.get("last_outcome") or "SUCCESS"
    audit.record("SERVICE_RUN", actor.name, object_type="service", object_id=job.name,
                 outcome="SUCCESS" if outcome == "SUCCESS" else "FAILURE",
                 details={"task": job.task, "result": str(result)[:500] if outcome == "SUCCESS" else
                          str(row.get("last_message") or "")[:500]})
    if outcome != "SUCCESS":
        raise ServiceFailed(f"Service '{job.name}' failed: {row.get('last_message') or 'see the server log'}.")
    return result
