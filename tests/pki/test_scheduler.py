"""The embedded scheduler (pki/scheduler.py, ``manage.py scheduler``): CELERY_BEAT_SCHEDULE's jobs without Celery
beat, each run once however many schedulers share the database, and ``make run`` (scripts/serve.py on SQLite,
no Redis) renewing a 1-minute CRL within its period."""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from celery import shared_task
from cryptography import x509
from django.db import connection
from django.utils import timezone

from pki import scheduler
from pki.crl import latest_crl
from pki.models import CRL, ScheduledJob
from tests.protocols.scep.live import free_port
from tests.support.environ import child_environ
from tests.support.served import stop_serve

ROOT = Path(__file__).resolve().parents[2]
PROBE_RUNS: list[str] = []
PROBE_LOCK = threading.Lock()


@shared_task(name="tests.pki.scheduler_probe")
def scheduler_probe() -> str:
    """A job that takes a moment, so that concurrent schedulers overlap while it runs."""
    time.sleep(0.3)
    with PROBE_LOCK:
        PROBE_RUNS.append(threading.current_thread().name)
    return "probed"


@shared_task(name="tests.pki.scheduler_broken")
def scheduler_broken() -> None:
    raise RuntimeError("the job broke")


@pytest.fixture
def probe_schedule(settings):
    PROBE_RUNS.clear()
    settings.CELERY_BEAT_SCHEDULE = {"probe": {"task": "tests.pki.scheduler_probe", "schedule": 60.0}}
    yield
    PROBE_RUNS.clear()


def test_the_jobs_are_celery_beats_schedule():
    from django.conf import settings

    jobs = scheduler.jobs()
    assert [j.name for j in jobs] == list(settings.CELERY_BEAT_SCHEDULE)
    assert {"pki.tasks.regenerate_due_crls", "protocols.scep.tasks.purge_transactions"} <= {j.task for j in jobs}
    for job in jobs:
        assert scheduler._task(job.task).name == job.task  # every task resolves in this process
        expected = settings.CELERY_BEAT_SCHEDULE[job.name]["schedule"]
        assert job.interval() == timedelta(seconds=expected)


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_run_a_job_once(probe_schedule, monkeypatch):
    # Every scheduler reads the job row, then waits, so that all of them have read it before any of them tries to
    # take the run: the worst interleaving, every time.
    manager = ScheduledJob.objects
    real_get_or_create = manager.get_or_create

    def slow_get_or_create(**kwargs):
        found = real_get_or_create(**kwargs)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(manager, "get_or_create", slow_get_or_create)
    ScheduledJob.objects.create(name="probe", task="tests.pki.scheduler_probe", next_run_at=timezone.now())

    def round_of(schedulers: int, now) -> list[list[str]]:
        barrier = threading.Barrier(schedulers)
        ran: list[list[str]] = [[] for _ in range(schedulers)]

        def one(i: int) -> None:
            try:
                barrier.wait()
                ran[i] = scheduler.run_due(now)
            finally:
                connection.close()  # each thread has its own database connection

        threads = [threading.Thread(target=one, args=(i,), name=f"scheduler-{i}") for i in range(schedulers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return ran

    start = timezone.now()
    ran = round_of(4, start)
    assert sorted(len(r) for r in ran) == [0, 0, 0, 1] and len(PROBE_RUNS) == 1
    # Not due again within the period, whoever asks.
    assert round_of(2, start + timedelta(seconds=30)) == [[], []] and len(PROBE_RUNS) == 1
    # Due again after it: once more, once.
    ran = round_of(3, start + timedelta(seconds=61))
    assert sorted(len(r) for r in ran) == [0, 0, 1] and len(PROBE_RUNS) == 2
    row = ScheduledJob.objects.get(name="probe")
    assert row.runs == 2 and row.last_outcome == "SUCCESS" and row.last_message == "'probed'"
    assert row.next_run_at == start + timedelta(seconds=121)


def test_a_failing_job_is_recorded_and_the_others_still_run(db, settings):
    PROBE_RUNS.clear()
    settings.CELERY_BEAT_SCHEDULE = {
        "broken": {"task": "tests.pki.scheduler_broken", "schedule": timedelta(minutes=1)},
        "missing": {"task": "tests.pki.no_such_task", "schedule": 30},
        "probe": {"task": "tests.pki.scheduler_probe", "schedule": 60.0},
    }
    assert scheduler.run_due() == ["broken", "missing", "probe"]
    rows = {r.name: r for r in ScheduledJob.objects.all()}
    assert (rows["broken"].last_outcome, rows["broken"].last_message) == ("FAILURE", "RuntimeError: the job broke")
    assert rows["missing"].last_outcome == "FAILURE" and "No Celery task named" in rows["missing"].last_message
    assert rows["probe"].last_outcome == "SUCCESS" and len(PROBE_RUNS) == 1
    assert scheduler.run_due() == []  # none of them is due again yet, the failed ones included


def test_a_shortened_interval_applies_at_once(db, settings, probe_schedule):
    now = timezone.now()
    ScheduledJob.objects.create(name="probe", task="tests.pki.scheduler_probe", last_started_at=now,
                                next_run_at=now + timedelta(hours=1))  # written under a 1-hour schedule
    assert scheduler.run_due(now + timedelta(seconds=59)) == []
    assert scheduler.run_due(now + timedelta(seconds=60)) == ["probe"]


def test_the_crl_job_renews_a_crl_before_it_expires(ca_factory, settings):
    settings.CELERY_BEAT_SCHEDULE = {"regenerate-crls": {"task": "pki.tasks.regenerate_due_crls", "schedule": 60.0}}
    ca = ca_factory("Scheduled", crl_period=timedelta(minutes=1), crl_overlap=timedelta(seconds=20))
    first = latest_crl(ca)
    assert scheduler.run_due(first.this_update + timedelta(seconds=10)) == ["regenerate-crls"]
    assert latest_crl(ca).crl_number == first.crl_number  # not within nextUpdate - overlap yet
    ScheduledJob.objects.update(next_run_at=timezone.now())
    CRL.objects.filter(pk=first.pk).update(next_update=timezone.now() + timedelta(seconds=15))  # in the overlap
    assert scheduler.run_due() == ["regenerate-crls"]
    assert latest_crl(ca).crl_number == first.crl_number + 1


@pytest.mark.parametrize(("no_scheduler", "environ", "expected"), [
    (False, {}, True),
    (False, {"REDIS_URL": ""}, True),
    (False, {"REDIS_URL": "redis://127.0.0.1:6379/0"}, False),  # Celery beat runs the jobs
    (True, {}, False),
])
def test_serve_starts_the_scheduler_without_redis(no_scheduler, environ, expected):
    from tests.deploy.test_serving import serve

    assert serve.wants_scheduler(no_scheduler, environ) is expected
    assert serve.scheduler_argv()[-2:] == [str(ROOT / "manage.py"), "scheduler"]


# --- make run: SQLite, no Redis --------------------------------------------------------------------------------

MAKE_CA = """
from datetime import timedelta
from cryptotokens import services as tokens
from pki.auth.access import Actor
from pki.services.cas import CASettings, create_ca

a = Actor.system_actor("setup")
token = tokens.create_token(a, name="MinuteToken", token_type="SoftCryptoToken", auth_code="foo123",
                            auto_activate=True)
create_ca(a, CASettings(name="MinuteCA", subject_dn="CN=MinuteCA,O=Test,C=SE", crypto_token=token,
                        key_alias="signKey", key_spec="P-256", crl_period=timedelta(minutes=1),
                        crl_overlap=timedelta(seconds=55)))
"""


def _crl(base: str, name: str) -> x509.CertificateRevocationList | None:
    try:
        with urllib.request.urlopen(f"{base}/crl/{name}.crl", timeout=10) as reply:
            return x509.load_der_x509_crl(reply.read())
    except urllib.error.HTTPError:
        return None


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


@pytest.mark.multiprocess
@pytest.mark.xdist_group("serve")
def test_make_run_renews_a_one_minute_crl_within_its_period_without_redis(tmp_path):
    from tests.deploy.test_serving import _makefile_run_line, serve

    assert serve.nginx_binary(), "nginx is not installed: scripts/install-test-deps.sh installs it"
    env = child_environ("DATABASE_URL", "DJANGO_SETTINGS")
    env.update({"PKI_VAR_DIR": str(tmp_path / "var"), "PKI_MASTER_KEY": f"run-{secrets.token_urlsafe(24)}",
                "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
                # The CRL check runs every minute by default: a 1-minute CRL needs it more often. With a 55 s
                # overlap the CRL is due 5 s into its minute, so the test waits ~5 s rather than ~45 s, and
                # still sees the real scheduler renew it before the first one's nextUpdate.
                "PKI_CRL_CHECK_INTERVAL": "2"})

    def manage(*args: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    # make run's steps: migrate the embedded SQLite database, bootstrap, then its scripts/serve.py line.
    (tmp_path / "var").mkdir()
    manage("migrate", "--noinput", "-v0")
    manage("init")
    assert (tmp_path / "var" / "pki.sqlite3").exists()
    manage("shell", "-c", MAKE_CA)
    port = free_port()
    run_dir = Path(tempfile.mkdtemp(prefix="pki-serve-"))
    run_dir.chmod(0o755)  # nginx's workers (nobody, when the tests run as root) must traverse it
    values = {"$(PY)": sys.executable, "$(HOST)": "127.0.0.1", "$(PORT)": str(port)}
    argv = [*(values.get(a, a) for a in _makefile_run_line()), "--run-dir", str(run_dir)]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        management = None
        while management is None and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-4000:]
            try:
                management = _crl(base, "ManagementCA")
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        # ManagementCA's CRL is there from the first answer, made by `init` with the CA.
        assert management is not None and _number(management) == 1, log.read_text()[-4000:]

        first = _crl(base, "MinuteCA")
        assert first is not None and first.next_update_utc - first.last_update_utc == timedelta(minutes=1)
        renewed = first
        while _number(renewed) == _number(first) and time.time() < first.next_update_utc.timestamp():
            time.sleep(1)
            renewed = _crl(base, "MinuteCA")
        assert _number(renewed) > _number(first), log.read_text()[-4000:]
        # Renewed before the first one expired: a relying party never sees an expired CRL.
        assert renewed.last_update_utc < first.next_update_utc
        assert "scheduler" in log.read_text()
    finally:
        stop_serve(proc, run_dir)  # and the scheduler stopped with the rest
