"""The embedded scheduler: CELERY_BEAT_SCHEDULE's periodic jobs without Celery beat.

With Redis configured, Celery beat runs the schedule. Without it (``make run``'s default), ``scripts/serve.py``
starts ``manage.py scheduler``, a process of its own beside gunicorn (recycling a worker does not touch it),
which runs the same jobs by calling the same Celery task functions in-process. The job list is
CELERY_BEAT_SCHEDULE itself: nothing to keep in step.

Several schedulers may run against one database (several ``make run`` hosts, or a scheduler restarted while
the old one is still stopping). Each job has a ``ScheduledJob`` row; a scheduler runs a due job only after
moving its ``next_run_at`` forward with one conditional UPDATE (``WHERE next_run_at = <the value it read>``).
That statement is atomic on PostgreSQL (the second writer waits for the first and re-checks the condition)
and on SQLite (one writer at a time), so exactly one scheduler wins each run and the others skip it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone

from .models import ScheduledJob

logger = logging.getLogger("pki.scheduler")

DEFAULT_POLL_SECONDS = 5.0
MESSAGE_LIMIT = 2000  # of a job's result or error kept on its row


@dataclass(frozen=True)
class Job:
    """One CELERY_BEAT_SCHEDULE entry: its name, the Celery task name and the celery schedule object."""

    name: str
    task: str
    schedule: Any  # celery.schedules.schedule (an interval) or crontab

    def next_after(self, moment: datetime) -> datetime:
        """When the job is due next if it starts at ``moment``."""
        every = getattr(self.schedule, "run_every", None)
        if isinstance(every, timedelta):
            return moment + every
        return moment + self.schedule.remaining_estimate(moment)  # crontab and other calendars

    def interval(self) -> timedelta | None:
        every = getattr(self.schedule, "run_every", None)
        return every if isinstance(every, timedelta) else None


def jobs() -> list[Job]:
    """The periodic jobs, read from CELERY_BEAT_SCHEDULE (numbers are seconds, as Celery reads them)."""
    from celery.schedules import maybe_schedule

    return [Job(name=name, task=entry["task"], schedule=maybe_schedule(entry["schedule"]))
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items()]


def _task(name: str):
    """The Celery task registered under ``name`` (the Celery app discovers every app's tasks.py)."""
    from .celery import app

    app.loader.import_default_modules()
    try:
        return app.tasks[name]
    except KeyError:
        raise LookupError(f"No Celery task named '{name}' (CELERY_BEAT_SCHEDULE)") from None


def _runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


def _claim(job: Job, now: datetime) -> bool:
    """Take this run of ``job`` if it is due and no other scheduler took it first."""
    row, _ = ScheduledJob.objects.get_or_create(name=job.name, defaults={"task": job.task, "next_run_at": now})
    due_at = row.next_run_at
    interval = job.interval()
    if interval is not None and row.last_started_at is not None:
        # A shortened interval (the schedule changed since the row was written) applies at once.
        due_at = min(due_at, row.last_started_at + interval)
    if due_at > now:
        return False
    taken = ScheduledJob.objects.filter(pk=row.pk, next_run_at=row.next_run_at).update(
        next_run_at=job.next_after(now), last_started_at=now, task=job.task, claimed_by=_runner_id(),
        runs=F("runs") + 1,
    )
    return taken == 1


def _record(job: Job, outcome: str, message: str) -> None:
    ScheduledJob.objects.filter(name=job.name).update(
        last_finished_at=timezone.now(), last_outcome=outcome, last_message=message[:MESSAGE_LIMIT])


def run_job(job: Job) -> Any:
    """Run the job's task function in this process, as a Celery worker would; record how it went."""
    try:
        result = _task(job.task)()
    except Exception as exc:  # a failing job must not stop the scheduler: the next run tries again
        logger.exception("Scheduled job %s (%s) failed", job.name, job.task)
        _record(job, "FAILURE", f"{exc.__class__.__name__}: {exc}")
        return None
    logger.info("Scheduled job %s: %s", job.name, result)
    _record(job, "SUCCESS", repr(result))
    return result


def run_due(now: datetime | None = None) -> list[str]:
    """Run every job that is due and that this scheduler claimed; the names of the jobs it ran."""
    ran: list[str] = []
    for job in jobs():
        if _claim(job, now or timezone.now()):
            run_job(job)
            ran.append(job.name)
    return ran


def seconds_to_next(now: datetime | None = None, poll: float = DEFAULT_POLL_SECONDS) -> float:
    """How long to sleep: until the earliest known next run, at most ``poll`` (other schedulers may change it)."""
    now = now or timezone.now()
    earliest = ScheduledJob.objects.filter(name__in=[j.name for j in jobs()]).order_by("next_run_at").first()
    if earliest is None:
        return 0.0
    return max(0.0, min(poll, (earliest.next_run_at - now).total_seconds()))


def run_forever(stop: threading.Event, poll: float = DEFAULT_POLL_SECONDS) -> None:
    """Run due jobs until ``stop`` is set. A database error ends one round, not the scheduler."""
    names = ", ".join(f"{j.name} ({j.task})" for j in jobs()) or "none"
    logger.info("Scheduler %s started; jobs: %s", _runner_id(), names)
    while not stop.is_set():
        wait = poll
        try:
            close_old_connections()  # a connection the database dropped is replaced, as between requests
            run_due()
            wait = seconds_to_next(poll=poll)
        except Exception:
            logger.exception("Scheduler round failed; retrying in %.0f s", poll)
        stop.wait(max(wait, 0.2))
    logger.info("Scheduler %s stopped", _runner_id())
