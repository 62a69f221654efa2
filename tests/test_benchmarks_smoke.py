"""Every benchmark script runs in CI: ``benchmarks/<script>.py --smoke`` (a tiny count) must exit 0 and print its
figure, so a schema or API change that breaks a benchmark fails the suite instead of waiting for the next
measurement day (crl_build.py had rotted on a new NOT NULL column).

The scripts run against the test PostgreSQL server (DATABASE_URL, as ``make test`` sets it), each in databases
of its own named with this run's suffix, copied from one database migrated once for the whole run
(PKI_BENCH_TEMPLATE, benchmarks/_setup.py; the suite's template, tests/support/templatedb.py): migrating 15
databases would cost more than running the scripts.
They run a few at a time (most of a smoke run is waiting: interpreter and Django start-up, servers coming up),
the slowest first, and each script's test then reads its own result.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.environ import child_environ

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))

# What each script prints when it measured something: a figure, not only a header.
FIGURE = {
    "audit_chain.py": r"appends/s[\s\S]*\n\s*1\s+[\d,]+\n[\s\S]*chain intact",
    "basic_auth.py": r"CPU ms/request[\s\S]*wrong password past the budget: [\d.,]+ -> [\d.,]+ ms CPU",
    "bearer_auth.py": r"requests/s[\s\S]*authentication step alone: [\d.]+ µs",
    "crl_build.py": r"create_crl end to end \(query, encode, sign, store\)\s+[\d.]+ s[\s\S]*openssl crl -verify\s+OK",
    "ee_validation.py": r"20 DN fields \+ 10 alt names\s+\d+\s+[\d.]+\s+[\d,]+",
    "issue_floor.py": r"stored/s[\s\S]*P-256\s+2\s+[\d,]+",
    "issue_throughput.py": r"pipeline/s[\s\S]*P-256\s+csr\s+2\s+[\d,]+[\s\S]*audit chain after the run: intact",
    "ocsp.py": r"ratio [\d.]+ of raw",
    "peer_scep.py": r"through the RA\s+4\s+2\s+[\d.,]+[\s\S]*ratio RA / direct: [\d.]+",
    "peer_issuance.py": r"P-256\s+4\s+[\d,]+\s+[\d,]+\s+[\d.]+x[\s\S]*audit chain intact",
    "pkcs10enroll.py": r"enrolls/s[\s\S]*new\s+2\s+2\s+6\s+[\d,]+",
    "profile_issue.py": r"[\d,]+ issuances/s without the profiler",
    "scep_default.py": r"ratio pki make run \(SQLite\) / micromdm: [\d.]+x[\s\S]*ratio pki make run \+ PostgreSQL",
    "scep_enroll.py": r"ratio pki / micromdm: [\d.]+x",
    "scep_floor.py": r"ratio floor / micromdm: [\d.]+x",
    "scep_messages.py": r"server-side message work: [\d,]+ enrollments/s",
    "scep_profile.py": r"\d+ enrollments, one thread: CPU [\d.]+ ms, wall [\d.]+ ms",
    "token_sign.py": r"through handle/s[\s\S]*PKCS#11 \(SoftHSM2\)\s+P-256\s+[\d,]+[\s\S]*AWS KMS",
}
# Seconds for one script. The smoke counts make each a few seconds of work, but scep_default.py builds two make-run
# installations (migrate, init, serve) and micromdm: 54 s alone at load 12 here, 93-137 s with two others beside
# it at load 13-16, so a slower CI machine needs the margin.
TIMEOUT = 420
AT_ONCE = 3
# Started first, so that the longest runs overlap the short ones (the rest keep their order).
SLOWEST = ["peer_scep.py", "scep_default.py", "scep_enroll.py", "pkcs10enroll.py", "ocsp.py", "token_sign.py",
           "basic_auth.py"]


def _admin(database_url: str):
    import dj_database_url
    import psycopg2

    cfg = dj_database_url.parse(database_url)
    conn = psycopg2.connect(host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"],
                            password=cfg["PASSWORD"] or None, dbname="postgres")
    conn.autocommit = True
    return conn


# Session-scoped, not module-scoped: pytest-xdist interleaves this group's tests with other modules' on the
# worker, and a module fixture is torn down at each switch, so the whole smoke run went twice (~3 min each).
@pytest.fixture(scope="session")
def bench_env(tmp_path_factory):
    """The environment of the scripts: this run's database suffix and a migrated template database (the suite's
    own, tests.support.templatedb: built once per PostgreSQL server and set of migrations, not once per run)."""
    from tests.support.templatedb import migrated_template

    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        raise AssertionError("DATABASE_URL must name the PostgreSQL server (make test sets it)")
    suffix = f"_smoke{secrets.token_hex(3)}"
    env = child_environ()
    env.update({"PKI_BENCH_DB_SUFFIX": suffix, "PKI_BENCH_TEMPLATE": migrated_template(), "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path_factory.mktemp("bench"))})
    conn = _admin(server)
    try:
        yield env
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"%{suffix}"])
            names = [name for (name,) in cur.fetchall()]
        conn.close()
        # At once, each on its own connection: every DROP DATABASE waits for a checkpoint, and drops waiting
        # together share one (one after the other, the ~15 of a run took 41 s on a busy machine).
        with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
            list(pool.map(lambda name: _drop(server, name), names))


def _drop(server: str, name: str) -> None:
    conn = _admin(server)
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def _run(env: dict[str, str], script: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    try:
        out = subprocess.run([sys.executable, script, "--smoke"], cwd=BENCHMARKS, env=env, capture_output=True,
                             text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return -1, str(exc.stdout or ""), f"timed out after {TIMEOUT} s\n{exc.stderr or ''}", TIMEOUT
    return out.returncode, out.stdout, out.stderr, time.monotonic() - started


@pytest.fixture(scope="session")
def smoke_runs(request, bench_env) -> dict[str, tuple[int, str, str, float]]:
    """Each selected script's (exit status, stdout, stderr, seconds), run AT_ONCE at a time, once per test process;
    the tests are one xdist_group, so under make test one worker runs them all (tests/test_xdist_groups.py)."""
    wanted = {item.callspec.params["script"] for item in request.session.items
              if getattr(item, "callspec", None) and item.originalname == "test_benchmark_runs_in_smoke_mode"}
    order = sorted(wanted, key=lambda s: SLOWEST.index(s) if s in SLOWEST else len(SLOWEST))
    with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
        return dict(zip(order, pool.map(lambda script: _run(bench_env, script), order), strict=True))


def test_every_script_has_a_figure_to_look_for():
    assert SCRIPTS and set(FIGURE) == set(SCRIPTS), "add the new script's figure to FIGURE"
    for name in SCRIPTS:
        assert "--smoke" in (BENCHMARKS / name).read_text(), f"{name} has no --smoke mode"


@pytest.mark.multiprocess
@pytest.mark.xdist_group("benchmarks")
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_smoke_mode(smoke_runs, script):
    returncode, stdout, stderr, took = smoke_runs[script]
    assert returncode == 0, f"{script} exited {returncode} after {took:.0f} s:\n{(stdout + stderr)[-4000:]}"
    assert re.search(FIGURE[script], stdout), f"{script} printed no figure:\n{stdout[-3000:]}"
