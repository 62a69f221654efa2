"""Common set-up of the benchmark scripts: Django on its own PostgreSQL database (pki_bench)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Set by tests/test_benchmarks_smoke.py: a suffix for every database name (so runs at the same time on one server
# do not drop each other's databases) and a migrated database to copy instead of migrating each one again.
DB_SUFFIX_ENV = "PKI_BENCH_DB_SUFFIX"
TEMPLATE_ENV = "PKI_BENCH_TEMPLATE"


def database_name(database: str) -> str:
    """``database`` with this run's suffix (PKI_BENCH_DB_SUFFIX), if any."""
    return database + os.environ.get(DB_SUFFIX_ENV, "")


def setup_django(database: str = "pki_bench", fresh: bool = True) -> None:
    """Point Django at ``database`` on the server of DATABASE_URL, recreate it when ``fresh``, migrate.

    With PKI_BENCH_TEMPLATE set, a fresh database is a copy of that (migrated) database: migrate has nothing
    left to do, which keeps the smoke runs short."""
    import dj_database_url
    import psycopg2

    database = database_name(database)
    template = os.environ.get(TEMPLATE_ENV, "")
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    cfg = dj_database_url.parse(base)
    conn = psycopg2.connect(host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"],
                            password=cfg["PASSWORD"] or None, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        if fresh:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{database}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()
    os.environ["DATABASE_URL"] = base.rsplit("/", 1)[0] + "/" + database
    os.environ.setdefault("PKI_MASTER_KEY", "benchmark-master-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # Without REDIS_URL the cache is a database table that migrate does not make (`manage.py init` does).
    call_command("createcachetable", verbosity=0)


def table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([line.format(*headers), line.format(*("-" * w for w in widths))]
                     + [line.format(*r) for r in rows])


def load() -> str:
    """The 1-minute load average: this machine is shared, and the figures move with it."""
    return f"{os.getloadavg()[0]:.1f}"


def cpu_of(match: Callable[[int, str], bool]) -> float:
    """CPU seconds (user + system) of the live processes for which ``match(session_id, cmdline)`` is true (Linux
    /proc). A process that ended is not counted: measure servers whose processes live through the run."""
    from tests.support.procs import processes

    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields, cmdline in processes()
                if match(int(fields[3]), cmdline))
    return ticks / os.sysconf("SC_CLK_TCK")


def timed_threads(work: Callable[[int], None], threads: int) -> float:
    """Run ``work(0)`` ... ``work(threads - 1)`` each in its own thread, released together once all are started;
    the seconds from the release to the end of the last one. The first exception of a thread is raised here."""
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def run(t: int) -> None:
        barrier.wait()
        try:
            work(t)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def post_all(url: str, bodies: list[bytes], content_type: str, concurrency: int,
             ) -> tuple[float, list[float], list[bytes]]:
    """POST every body to ``url`` with ``concurrency`` keep-alive clients; (seconds, latencies, replies).

    A reply other than HTTP 200 stops the run: a benchmark measures answers, not errors."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies = [0.0] * len(bodies)
    replies: list[bytes] = [b""] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            started = time.perf_counter()
            conn.request("POST", path, body=bodies[i], headers={"Content-Type": content_type})
            resp = conn.getresponse()
            replies[i] = resp.read()
            latencies[i] = time.perf_counter() - started
            if resp.status != 200:
                raise SystemExit(f"{url}: HTTP {resp.status}: {replies[i][:300]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, replies
