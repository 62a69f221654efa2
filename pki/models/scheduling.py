"""The state of the embedded scheduler's periodic jobs (pki.scheduler), shared by every scheduler process."""

from __future__ import annotations

from django.db import models


class ScheduledJob(models.Model):
    """One periodic job of CELERY_BEAT_SCHEDULE: when it is next due, and how its last run went.

    A scheduler runs a job only after moving ``next_run_at`` forward in one conditional UPDATE, so of several
    schedulers (processes or hosts on one database) exactly one wins each run."""

    name = models.CharField(max_length=100, unique=True)  # the CELERY_BEAT_SCHEDULE key
    task = models.CharField(max_length=200)
    next_run_at = models.DateTimeField()
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, blank=True, default="")  # SUCCESS / FAILURE
    last_message = models.TextField(blank=True, default="")
    runs = models.PositiveIntegerField(default=0)
    claimed_by = models.CharField(max_length=255, blank=True, default="")  # host:pid of the last runner

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
