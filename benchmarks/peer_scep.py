"""SCEP enrollments through an RA node next to the same load straight at the CA, in the same run.

Two real nodes on loopback (tests/peers/live.py sets them up): the CA node (RSA-2048 CA on a soft token, its own
PostgreSQL database) and the RA node (its own database), each served as `make run` serves it (scripts/serve.py:
nginx in front of gunicorn with the node role's defaults; the RA's HTTPS listener verifies the connector's client
certificate); the CA's connector process (`manage.py peer run`, as `make run` starts it) carries the RA's work.
Both paths get the same load: RA-mode PKCSReq messages
(shared secret, RSA-2048 client keys, a new subject each) built before the clock starts, POSTed by ``-c``
concurrent keep-alive clients; every reply is decrypted and checked (SUCCESS, the certificate is for the request's
key). Prints enrollments/s and p50/p99 for each path, the ratio and the p50 the RA adds (target: >= 0.80 and
<= 15 ms), each the median of ``--rounds`` alternating rounds.

An RA sits in a DMZ on a machine of its own; here both nodes share one. By default the CA side (its gunicorn for
the direct path, its connector for the carried one) is pinned to one core and the RA node's gunicorn to another,
so the RA's own work does not take the CA's CPU (what two machines give); ``--shared-cores`` leaves every process
on every core, where the ratio also counts the RA's CPU against the CA's.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/peer_scep.py [-n 500] [--rounds 3]
    ... benchmarks/peer_scep.py --smoke     # CI: a few enrollments, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PKI_MASTER_KEY", "benchmark-master-key")

from _setup import TEMPLATE_ENV, cpu_of, database_name, load, post_all, table  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from protocols.scep.messages import PkiStatus  # noqa: E402
from protocols.scep.messages import client as scep_client  # noqa: E402
from tests.peers.live import Node, PeerPair  # noqa: E402
from tests.protocols.scep.live import RA_SECRET, free_port  # noqa: E402
from tests.protocols.scep.server_fixtures import make_csr, self_signed  # noqa: E402
from tests.support.served import stop_serve  # noqa: E402


class BenchNode(Node):
    """A node whose database is a copy of PKI_BENCH_TEMPLATE when set (the smoke run's migrated one)."""

    def create(self) -> None:
        template = os.environ.get(TEMPLATE_ENV, "")
        if not template:
            # The suite's migrated template (tests.support.templatedb) reads the migrations through Django.
            import django

            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki.settings")
            django.setup()
            return super().create()
        self.sql(f'CREATE DATABASE "{self.db_name}" TEMPLATE "{template}"')
        self.manage("createcachetable")


def _pair(tmp: Path) -> PeerPair:
    pair = PeerPair(tmp, request_timeout=60, lease=30, workers=2)
    for attr in ("ca", "ra"):
        node = getattr(pair, attr)
        named = database_name(node.db_name)
        bench = BenchNode.__new__(BenchNode)
        bench.__dict__.update(node.__dict__)
        bench.db_name = named
        bench.env = {**node.env, "DATABASE_URL": node.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{named}",
                     "LOG_LEVEL": "WARNING"}
        setattr(pair, attr, bench)
    return pair


def _serve(node: Node, tmp: Path, name: str, port: int, tls_port: int = 0, tls: dict[str, Path] | None = None
           ) -> subprocess.Popen:
    """``node`` served as `make run` serves it: scripts/serve.py (nginx + gunicorn, the role's default pool), its
    HTTPS listener on ``tls_port`` with ``tls`` (server.pem, server.key, client-ca.pem). No OCSP responder
    processes and no scheduler: neither takes part in a SCEP enrollment."""
    var = tmp / f"{name}-var"
    (var / "tls").mkdir(parents=True)
    for target, source in (tls or {}).items():
        (var / "tls" / target).write_bytes(source.read_bytes())
    run_dir = Path(tempfile.mkdtemp(prefix=f"peer-scep-{name}-"))
    run_dir.chmod(0o755)  # nginx's workers (nobody, when run as root) keep their temporary files here
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "serve.py"), "--port", str(port), "--tls-port", str(tls_port),
         "--ocsp-workers", "0", "--no-scheduler", "--run-dir", str(run_dir)],
        cwd=ROOT, env={**node.env, "PKI_VAR_DIR": str(var), "PKI_PEER_CONNECTOR": "0"},
        stdout=(tmp / f"{name}-serve.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _RUN_DIRS[proc.pid] = run_dir
    return proc


_RUN_DIRS: dict[int, Path] = {}  # each serve.py process's run directory, removed when it is stopped


def _stop_serve(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        stop_serve(proc, _RUN_DIRS.pop(proc.pid))


def _ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"serve.py exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            urllib.request.urlopen(url + "?operation=GetCACaps", timeout=5).close()
            return
        except urllib.error.HTTPError:
            return  # serving (an RA knows its aliases once the connector has pushed them)
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer:\n{log.read_text(errors='replace')[-3000:]}")


def _new_key(_: int) -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _messages(n: int, ca: x509.Certificate, tag: str) -> tuple[list, list[bytes]]:
    """``n`` PKCSReq messages, each for a key of its own (the CA refuses a public key it has issued for). The keys
    are made on every core before any clock starts: one RSA-2048 key costs ~50 ms here, the enrollment ~10."""
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        keys = [serialization.load_der_private_key(der, None) for der in pool.map(_new_key, range(n), chunksize=8)]
    requests = []
    for i, key in enumerate(keys):
        signer = self_signed(key, "bench")
        request = scep_client.build_pkcs_req(make_csr(key, f"CN={tag}-{i},O=Bench", challenge=RA_SECRET), signer,
                                             key, ca)
        requests.append((request, key, signer))
    return requests, [r[0].data for r in requests]


def _check(requests: list, replies: list[bytes], ca: x509.Certificate) -> None:
    for (request, key, signer), body in zip(requests, replies, strict=True):
        try:
            rep = scep_client.parse_cert_rep(body, key, signer, ca_certs=[ca])
        except Exception as exc:  # noqa: BLE001 - reported
            raise SystemExit(f"enrollment {request.transaction_id}: no CertRep ({exc}): {body[:200]!r}") from None
        if rep.status != PkiStatus.SUCCESS or rep.certificates[0].public_key() != key.public_key():
            raise SystemExit(f"enrollment {request.transaction_id} was not answered with its certificate")


def _groups(pair: PeerPair, direct: subprocess.Popen, ra_web: subprocess.Popen) -> dict[str, object]:
    """The processes whose CPU is counted per enrollment: each server process group by its session (serve.py with
    its nginx and gunicorn; the connector), this process (the clients) and each node's PostgreSQL backends."""
    def session(proc):
        return lambda sid, _cmd: proc is not None and sid == proc.pid

    def backends(db):
        return lambda _sid, cmd: cmd.startswith("postgres: ") and f" {db} " in cmd

    return {"CA web (direct)": session(direct), "RA web": session(ra_web),
            "connector": session(pair.connector), "CA db": backends(pair.ca.db_name),
            "RA db": backends(pair.ra.db_name), "clients": "self"}


def _pin(session: subprocess.Popen | None, cores: set[int]) -> int:
    """Every thread of every process in ``session``'s process group on ``cores`` (sched_setaffinity acts on one
    thread: gunicorn's workers and the connector have started theirs already); returns the threads pinned."""
    if session is None:
        return 0
    pinned = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) != session.pid:
                continue
            for task in (entry / "task").iterdir():
                os.sched_setaffinity(int(task.name), cores)
                pinned += 1
        except (OSError, ValueError):
            continue  # a thread or process that ended meanwhile
    return pinned


def _cpu(groups: dict[str, object]) -> dict[str, float]:
    return {name: (time.process_time() if match == "self" else cpu_of(match)) for name, match in groups.items()}


def _breakdown(pair: PeerPair) -> None:
    """Where an RA request's time goes: medians over the carried PKIOperations, each item's times at the RA and at
    the CA joined by its idempotency key (both nodes run on this machine's one clock)."""
    lease = float(pair.ra.env["PKI_PEER_LEASE_SECONDS"])
    ra = {key: (created, leased, answered) for key, created, leased, answered in pair.ra.query(
        "SELECT idempotency_key, extract(epoch FROM created_at), extract(epoch FROM lease_until) - %s,"
        " extract(epoch FROM completed_at) FROM peers_peerworkitem"
        " WHERE kind = 'scep.pkioperation' AND completed_at IS NOT NULL", (lease,))}
    steps: dict[str, list[float]] = {"queued -> leased": [], "leased -> run starts": [], "run on the CA": [],
                                     "run ends -> answered at the RA": [], "queued -> answered": []}
    for key, claimed, finished in pair.ca.query(
            "SELECT idempotency_key, extract(epoch FROM claimed_at), extract(epoch FROM finished_at)"
            " FROM peers_carriedrequest WHERE kind = 'scep.pkioperation' AND finished_at IS NOT NULL"):
        if key not in ra:
            continue
        created, leased, answered = (float(v) for v in ra[key])
        claimed, finished = float(claimed), float(finished)
        for name, value in zip(steps, (leased - created, claimed - leased, finished - claimed, answered - finished,
                                       answered - created), strict=True):
            steps[name].append(value * 1000)
    if steps["queued -> answered"]:
        print("median per RA request (ms): " + ", ".join(f"{name} {statistics.median(values):.1f}"
                                                       for name, values in steps.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500, help="enrollments per path and round")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of -n enrollments per path; the figures are their medians")
    parser.add_argument("--smoke", action="store_true", help="a few enrollments (CI)")
    parser.add_argument("--shared-cores", action="store_true",
                        help="leave every process on every core (default: the CA side on one core, the RA's "
                             "gunicorn on another, as an RA in a DMZ runs on a machine of its own)")
    args = parser.parse_args()
    n, c, rounds = (4, 2, 1) if args.smoke else (args.n, args.c, max(1, args.rounds))
    tmp = Path(tempfile.mkdtemp(prefix="peer-scep-"))
    pair = _pair(tmp)
    direct: subprocess.Popen | None = None
    ra_web: subprocess.Popen | None = None
    done = False
    try:
        pair.start()
        # The tests' RA web side (gunicorn behind a Python mTLS listener) gives way to the RA as make run serves it,
        # on the same ports: plain HTTP for devices, HTTPS with the connector's client certificate.
        web = pair.ra_web
        web.close()
        ra_web = _serve(pair.ra, tmp, "ra", web.port, web.listener_port, {
            "server.pem": pair.out / "ra-server.pem", "server.key": pair.out / "ra-server.key",
            "client-ca.pem": pair.out / "ca.pem"})
        ra_url = pair.scep_url("ra-devices")
        _ready(ra_url, ra_web, tmp / "ra-serve.log")
        pair.start_connector(lease_wait=20, workers=None)  # `peer run`'s own number of workers, as make run starts it
        pair.wait_connected()
        port = free_port()
        direct = _serve(pair.ca, tmp, "ca", port)
        direct_url = f"http://127.0.0.1:{port}/ejbca/publicweb/apply/scep/ra-devices/pkiclient.exe"
        _ready(direct_url, direct, tmp / "ca-serve.log")
        ca = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
        cores = sorted(os.sched_getaffinity(0))
        if args.shared_cores or len(cores) < 2:
            placement = f"every process on any of {len(cores)} core(s)"
        else:
            # The CA's work runs in its direct gunicorn or, carried, in its connector: both on one core; the RA
            # node's on another. The clients and PostgreSQL stay on both, for both paths alike.
            ca_core, ra_core = {cores[0]}, {cores[1]}
            threads = _pin(direct, ca_core) + _pin(pair.connector, ca_core) + _pin(ra_web, ra_core)
            placement = (f"CA side (its nginx and gunicorn, its connector) on core {cores[0]}, the RA's nginx and "
                         f"gunicorn on core {cores[1]} ({threads} threads pinned); clients and PostgreSQL on any")
        # Warm both paths (connections, caches, each gunicorn worker's first enrollments) with enrollments of their
        # own, as many at once as the measured load: with two at a time, one worker of the CA's two could meet its
        # first enrollments in the measured run (0.5-0.9 s each, its first four requests: p99 of 300).
        for url, tag in ((direct_url, "warm-direct"), (ra_url, "warm-ra")):
            reqs, bodies = _messages(2 * c, ca, tag)
            _check(reqs, post_all(url, bodies, "application/x-pki-message", c)[2], ca)
        groups = _groups(pair, direct, ra_web)
        paths = (("straight at the CA", direct_url), ("through the RA", ra_url))
        rates: dict[str, list[float]] = {name: [] for name, _ in paths}
        p50s: dict[str, list[float]] = {name: [] for name, _ in paths}
        pooled: dict[str, list[float]] = {name: [] for name, _ in paths}
        cpu_total: dict[str, dict[str, float]] = {name: dict.fromkeys(groups, 0.0) for name, _ in paths}
        # Alternating rounds: the machine's speed drifts by ±20% over a minute here, and a ratio of two paths
        # measured minutes apart measured the drift as much as the RA.
        for round_no in range(rounds):
            for name, url in paths:
                reqs, bodies = _messages(n, ca, f"{name.split()[-1]}-{round_no}")
                before = _cpu(groups)
                seconds, latencies, replies = post_all(url + "?operation=PKIOperation", bodies,
                                                       "application/x-pki-message", c)
                after = _cpu(groups)
                _check(reqs, replies, ca)
                rates[name].append(n / seconds)
                p50s[name].append(statistics.median(latencies))
                pooled[name] += latencies
                for g in groups:
                    cpu_total[name][g] += after[g] - before[g]
        rows, cpu_rows, cpu_used = [], [], {}
        for name, _ in paths:
            ordered = sorted(pooled[name])
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            rows.append((name, n * rounds, c, f"{statistics.median(rates[name]):,.1f}",
                         " / ".join(f"{r:.1f}" for r in rates[name]), f"{statistics.median(p50s[name]) * 1000:.1f}",
                         f"{p99 * 1000:.1f}"))
            used = cpu_used[name] = {g: cpu_total[name][g] * 1000 / (n * rounds) for g in groups}
            cpu_rows.append((name, *(f"{used[g]:.1f}" for g in groups), f"{sum(used.values()):.1f}"))
        print(f"SCEP enrollments (RA mode, RSA-2048), load average {load()}; {placement}")
        print(table(rows, ("path", "n", "clients", "enrolls/s (median)", "rounds", "p50 ms (median)", "p99 ms")))
        direct_rate, ra_rate = (statistics.median(rates[name]) for name, _ in paths)
        direct_p50, ra_p50 = (statistics.median(p50s[name]) for name, _ in paths)
        per_round = ", ".join(f"{r / d:.2f}" for d, r in zip(*rates.values(), strict=True))
        print(f"ratio RA / direct: {ra_rate / direct_rate:.2f} (target >= 0.80; rounds {per_round}); "
              f"p50 added by the RA: {(ra_p50 - direct_p50) * 1000:.1f} ms (target <= 15 ms)")
        print("CPU ms per enrollment by process (this machine's other work not included):")
        print(table(cpu_rows, ("path", *groups, "total")))
        # In a deployment the RA is another machine (the DMZ): the CA's own CPU per enrollment bounds the ratio.
        ca_direct = cpu_used["straight at the CA"]["CA web (direct)"] + cpu_used["straight at the CA"]["CA db"]
        ca_carried = cpu_used["through the RA"]["connector"] + cpu_used["through the RA"]["CA db"]
        bound = f"{ca_direct / ca_carried:.2f}" if ca_carried else "-"  # a smoke run may count no clock tick
        print(f"CA-side CPU per enrollment: {ca_direct:.1f} ms direct, {ca_carried:.1f} ms carried from the RA "
              f"(ratio with the RA on its own machine and the CA's CPU the limit: {bound})")
        _breakdown(pair)
        done = True
    finally:
        try:
            try:
                _stop_serve(direct)
            finally:
                _stop_serve(ra_web)
        finally:
            pair.close()  # the connector, both databases
            if done:  # the nodes' logs stay for a run that failed
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
