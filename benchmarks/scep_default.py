"""SCEP enrollment on the configuration a user gets, next to micromdm's ``scepserver``, alternating in one run.

Each installation is made the way the README tells a user: ``migrate``, ``init``, ``ca init`` for an RSA-2048
IssuingCA signed by ManagementCA, and an RA-mode alias on the ``EMPTY`` end entity profile uploaded with
``config scep uploadfile``; then the Makefile's own ``run`` line (scripts/serve.py: nginx in front of gunicorn
2x4, the scheduler beside them). Two installations:

* **default** — ``make run`` as it is: the embedded SQLite database in ``var/``;
* **postgres** — the same with ``DATABASE_URL`` naming a fresh PostgreSQL database (skipped without one).

The load is the same for all: PKCSReq messages built before the clock starts (RSA-2048 client keys, AES-256,
SHA-256, a new subject each) POSTed by ``-c`` keep-alive clients. Rounds alternate between the servers; each
server's figure is its median round. Every reply is decrypted and checked, and every enrollment of ours must be
a certificate, an end entity and a CERT_CREATION audit event in that server's database. Also printed: the CPU
each server's processes, its PostgreSQL backends and the clients spent per enrollment (medians of the rounds, from
/proc): the machine is shared, and CPU per enrollment moves less with its load than the rates do.

    .venv/bin/python benchmarks/scep_default.py [-n 200] [-c 8] [--rounds 3]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/scep_default.py   # + postgres
    .venv/bin/python benchmarks/scep_default.py --smoke      # CI: a few enrollments, checks it runs and prints
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scep_enroll as se  # noqa: E402
from _setup import cpu_of  # noqa: E402

from protocols.scep.messages import ScepError, parse_pki_message  # noqa: E402
from tests.support.served import stop_serve  # noqa: E402

ALIAS = "ra-devices"
RA_SECRET = se.RA_SECRET
PROPERTIES = f"""\
{ALIAS}.operationmode=ra
{ALIAS}.ra.authPwd={RA_SECRET}
{ALIAS}.ra.defaultCA=IssuingCA
{ALIAS}.ra.certificateProfile=ENDUSER
{ALIAS}.ra.entityProfile=EMPTY
{ALIAS}.ra.namegenerationscheme=DN
{ALIAS}.ra.namegenerationparameters=CN
{ALIAS}.includeca=false
"""


def makefile_run_line() -> list[str]:
    from tests.deploy.test_serving import _makefile_run_line

    return _makefile_run_line()


class Installation:
    """A fresh installation made with the README's commands and served by the Makefile's run line."""

    def __init__(self, name: str, tmp: Path, database_url: str | None):
        self.name, self.tmp, self.database_url = name, tmp, database_url
        self.var = tmp / "var"
        self.db_name = urlsplit(database_url).path.lstrip("/") if database_url else ""
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PYTEST_", "PKI_TEST_", "REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS"))}
        self.env.update({"PKI_VAR_DIR": str(self.var), "PKI_MASTER_KEY": f"bench-{secrets.token_urlsafe(24)}",
                         "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                         "PKI_TOKEN_AUTHCODE": "bench-token-code"})
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.process: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.url = ""

    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"{self.name}: manage.py {' '.join(args[:2])} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start(self) -> Installation:
        self.set_up()
        return self.serve()

    def set_up(self) -> None:
        """The README's commands: migrate, init, an RSA-2048 IssuingCA, the RA-mode alias."""
        self.var.mkdir(parents=True)
        self.manage("migrate", "--noinput", "-v0")
        self.manage("init")
        self.manage("ca", "init", "--caname", "IssuingCA", "--dn", "CN=IssuingCA,O=Bench,C=SE",
                    "--keyspec", "RSA2048", "--signedby", "ManagementCA")
        props = self.tmp / "scep.properties"
        props.write_text(PROPERTIES)
        self.manage("config", "scep", "uploadfile", "--alias", ALIAS, "--file", str(props))

    def serve(self) -> Installation:
        """The Makefile's run line, until the alias answers GetCACaps."""
        port = se.free_port()
        self.run_dir = run_dir = Path(tempfile.mkdtemp(prefix="pki-bench-serve-"))
        run_dir.chmod(0o755)  # nginx's workers (nobody, as root) must traverse it
        values = {"$(PY)": sys.executable, "$(HOST)": "127.0.0.1", "$(PORT)": str(port)}
        argv = [*(values.get(a, a) for a in makefile_run_line()), "--run-dir", str(run_dir), "--tls-port", "0"]
        log = (self.tmp / "serve.log").open("w")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.url = f"http://127.0.0.1:{port}/ejbca/publicweb/apply/scep/{ALIAS}/pkiclient.exe"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name}: serve.py exited:\n{(self.tmp / 'serve.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url + "?operation=GetCACaps", timeout=5).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        raise SystemExit(f"{self.name}: no answer within 60 s")

    def cpu_groups(self) -> dict[str, object]:
        """The processes whose CPU an enrollment costs, by ``cpu_of`` match: the Makefile's run line's session
        (the server: gunicorn; nginx; the rest: serve.py, the scheduler) and this installation's PostgreSQL backends."""
        sid = self.process.pid if self.process is not None else -1
        groups: dict[str, object] = {
            "server": lambda s, cmd: s == sid and "gunicorn" in cmd,
            "nginx": lambda s, cmd: s == sid and cmd.startswith("nginx"),
            "other": lambda s, cmd: s == sid and "gunicorn" not in cmd and not cmd.startswith("nginx"),
        }
        if self.db_name:
            groups["database"] = lambda _s, cmd: cmd.startswith("postgres: ") and f" {self.db_name} " in cmd
        return groups

    def counts(self) -> tuple[int, int, int]:
        """(certificates, CERT_CREATION events of the alias, end entities) of the benchmark's subjects."""
        out = self.manage("shell", "-c", (
            "from pki.models import Certificate, AuditEvent; from endentities.models import EndEntity; "
            "print(Certificate.objects.filter(username__startswith='bench-').count(), "
            f"AuditEvent.objects.filter(event_type='CERT_CREATION', actor='scep:{ALIAS}', outcome='SUCCESS').count(), "
            "EndEntity.objects.filter(username__startswith='bench-').count())"))
        a, b, c = (int(x) for x in out.split()[-3:])
        return a, b, c

    def close(self) -> None:
        """Stop the run line (serve.py stops what it started) and remove its run directory (one was left in /tmp
        per run)."""
        if self.process is not None and self.run_dir is not None:
            stop_serve(self.process, self.run_dir)


CPU_COLUMNS = ("server", "nginx", "other", "database", "clients")


def _cpu(groups: dict[str, object]) -> dict[str, float]:
    """CPU seconds so far of each group; ``clients`` is this process (the clients' threads)."""
    return {**{name: cpu_of(match) for name, match in groups.items()}, "clients": time.process_time()}


def _admin_sql(server_url: str, statement: str) -> None:
    import dj_database_url
    import psycopg2

    s = dj_database_url.parse(server_url)
    conn = psycopg2.connect(dbname="postgres", user=s["USER"], password=s["PASSWORD"] or None,
                            host=s["HOST"] or None, port=s["PORT"] or None)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _readable(body: bytes, ca) -> bool:
    try:
        parse_pki_message(body, signer_certificates=[ca], max_size=1 << 24)
    except ScepError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="enrollments per server and round (default 200)")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="a few enrollments per server: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.warmup, args.concurrency, args.rounds = 4, 2, 2, 1
    if not shutil.which("scepserver"):
        raise SystemExit("scepserver is missing: scripts/install-test-deps.sh installs Debian 'scep'")
    pg_server = os.environ.get("DATABASE_URL", "")
    pg_url = ""
    per_server = args.warmup + args.n * args.rounds
    keys = se.client_keys(per_server)
    with tempfile.TemporaryDirectory(prefix="scep-default-") as tmpdir:
        tmp = Path(tmpdir)
        servers: list[tuple[str, str, Installation | None]] = []
        installs: list[Installation] = []
        proc = None
        try:
            default = Installation("default", tmp / "default", None).start()
            installs.append(default)
            servers.append(("pki make run (SQLite)", default.url, default))
            if pg_server.startswith("postgres"):
                # Named after DATABASE_URL's own database: runs on one server with different URLs never collide.
                db = f"{urlsplit(pg_server).path.lstrip('/') or 'pki'}_scep_default_{secrets.token_hex(4)}"
                template = os.environ.get("PKI_BENCH_TEMPLATE", "")  # the smoke run's migrated database
                _admin_sql(pg_server, f'CREATE DATABASE "{db}"' + (f' TEMPLATE "{template}"' if template else ""))
                pg_url = urlsplit(pg_server)._replace(path=f"/{db}").geturl()
                pg = Installation("postgres", tmp / "postgres", pg_url).start()
                installs.append(pg)
                servers.append(("pki make run + PostgreSQL", pg.url, pg))
            (tmp / "mdm").mkdir()
            proc, mdm_url = se.start_micromdm(tmp / "mdm")
            servers.append(("micromdm scepserver", mdm_url, None))
            rounds: dict[str, list[tuple[float, list[float]]]] = {name: [] for name, _, _ in servers}
            cpu: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in servers}
            depot = str(tmp / "mdm" / "depot")
            mdm_groups = {"server": lambda _s, cmd: cmd.startswith("scepserver ") and depot in cmd}
            cas = {url: se._ca_cert(url) for _, url, _ in servers}
            for i, (_name, url, _inst) in enumerate(servers):  # warm each server up (imports, caches)
                se.run(url, se.build(args.warmup, cas[url], keys[:args.warmup], f"w{i}"), args.concurrency)
            for r in range(args.rounds):
                for i, (name, url, _inst) in enumerate(servers):
                    part = keys[args.warmup + r * args.n: args.warmup + (r + 1) * args.n]
                    reqs = se.build(args.n, cas[url], part, f"r{r}s{i}")
                    groups = _inst.cpu_groups() if _inst is not None else mdm_groups
                    before = _cpu(groups)
                    seconds, latencies, bodies = se.run(url, reqs, args.concurrency)
                    after = _cpu(groups)
                    cpu[name].append({g: (after[g] - before[g]) * 1000 / args.n for g in after})
                    try:
                        failed = se.check(reqs, bodies, cas[url])
                    except ScepError as exc:  # which server sent an unreadable reply, and how it ended
                        bad = next((b for b in bodies if not _readable(b, cas[url])), b"")
                        raise SystemExit(f"{name}: an unreadable CertRep ({exc}); {len(bad)} bytes, ending "
                                         f"{bad[-64:].hex()}") from exc
                    if failed and _inst is not None:
                        raise SystemExit(f"{failed} enrollments failed on {name}")
                    rounds[name].append(((len(latencies) - failed) / seconds, latencies))
            stored = {inst.name: inst.counts() for inst in installs}
        finally:
            if proc is not None:
                se.stop_micromdm(proc)
            for inst in installs:
                inst.close()
            if pg_url:
                with contextlib.suppress(Exception):
                    _admin_sql(pg_server, f'DROP DATABASE IF EXISTS "{urlsplit(pg_url).path.lstrip("/")}" WITH (FORCE)')
    print(f"SCEP PKCSReq on make run's configuration (nginx + gunicorn 2x4, RA alias on EMPTY), RSA-2048 client "
          f"keys, AES-256/SHA-256, {args.rounds} alternating rounds of {args.n}, concurrency {args.concurrency}, "
          f"load {os.getloadavg()[0]:.1f}")
    width = max(len(name) for name, _, _ in servers)
    print(f"{'server':<{width}}  {'enroll/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  rounds enroll/s")
    medians: dict[str, float] = {}
    for name, _, _ in servers:
        rates = [rate for rate, _ in rounds[name]]
        latencies = sorted(x for _, lat in rounds[name] for x in lat)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        medians[name] = statistics.median(rates)
        print(f"{name:<{width}}  {medians[name]:9.1f}  {statistics.median(latencies) * 1000:7.1f}  {p99:7.1f}  "
              + " ".join(f"{x:.1f}" for x in rates))
    print("CPU ms per enrollment (medians of the rounds; server: gunicorn's processes or scepserver; other: serve.py "
          "and the scheduler; database: PostgreSQL's backends; clients: this process):")
    print(f"{'server':<{width}}  " + "  ".join(f"{c:>8}" for c in CPU_COLUMNS) + f"  {'total':>8}")
    for name, _, _ in servers:
        cols = [statistics.median(r.get(c, 0.0) for r in cpu[name]) for c in CPU_COLUMNS]
        total = statistics.median(sum(r.values()) for r in cpu[name])
        print(f"{name:<{width}}  " + "  ".join(f"{x:8.2f}" for x in cols) + f"  {total:8.2f}")
    mdm = medians["micromdm scepserver"]
    for name, _, inst in servers:
        if inst is not None:
            print(f"ratio {name} / micromdm: {medians[name] / mdm:.2f}x")
    expected = per_server
    for inst in installs:
        certs, events, entities = stored[inst.name]
        print(f"{inst.name}: {certs} certificates, {events} CERT_CREATION audit events, {entities} end entities "
              f"(expected {expected} each)")
        if not (certs == events == entities == expected):
            raise SystemExit(f"{inst.name}: not every enrollment was stored and audited")


if __name__ == "__main__":
    main()
