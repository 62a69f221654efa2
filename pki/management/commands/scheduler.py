"""``python manage.py scheduler``: run CELERY_BEAT_SCHEDULE's periodic jobs without Celery beat (pki.scheduler).

``make run`` starts it through scripts/serve.py when no REDIS_URL is set; with Redis, Celery beat does the same.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from pki import scheduler


class Command(BaseCommand):
    help = ("Run the periodic jobs of CELERY_BEAT_SCHEDULE (CRL renewal, SCEP transaction purge, ...) in this "
            "process; several schedulers on one database run each job once.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run the jobs that are due now, then exit")
        parser.add_argument("--list", action="store_true", help="List the jobs and their state, then exit")
        parser.add_argument("--poll", type=float, default=scheduler.DEFAULT_POLL_SECONDS,
                            help="Longest sleep between two looks at the job table, in seconds")

    def handle(self, *args, once: bool = False, list: bool = False, poll: float = 5.0, **options):  # noqa: A002
        if list:
            self._list()
            return
        if once:
            for name in scheduler.run_due():
                self.stdout.write(f"ran {name}")
            return
        stop = threading.Event()
        # SIGTERM (serve.py, systemd) and Ctrl-C: finish the job that is running, then leave.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        scheduler.run_forever(stop, poll=max(poll, 0.2))

    def _list(self) -> None:
        from pki.models import ScheduledJob

        rows = {row.name: row for row in ScheduledJob.objects.all()}
        for job in scheduler.jobs():
            row = rows.get(job.name)
            state = (f"next {row.next_run_at:%Y-%m-%d %H:%M:%S}, runs {row.runs}, last {row.last_outcome or '-'}"
                     if row else "not run yet")
            self.stdout.write(f"{job.name}: {job.task} every {job.schedule} ({state})")
