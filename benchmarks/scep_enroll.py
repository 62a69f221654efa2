"""SCEP enrollment throughput: this server (RA mode, shared-secret challenge, RSA-2048 CA key on a soft token,
PostgreSQL, gunicorn with 2 workers of 4 threads, as ``make run``) against micromdm's ``scepserver`` (Debian
``scep``, ``-challenge``, its own RSA-2048 depot) on the same machine in the same run.

Both get the same load: PKCSReq messages pre-built before the clock starts (RSA-2048 client keys, AES-256,
SHA-256, a new subject each), POSTed by 8 concurrent clients. Every reply is then decrypted and checked
(SUCCESS, the certificate is for the request's key), and for this server every enrollment must be a row in the
database with its CERT_CREATION audit event. Prints enrollments/s, p50/p99 latency, the ratio, and the CPU per
enrollment of the gunicorn workers, their PostgreSQL backends, micromdm and the load generator (Linux /proc).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/scep_enroll.py [-n 400] [-c 8]
    ... benchmarks/scep_enroll.py --smoke     # CI: a few enrollments, checks that it runs and prints its figures

micromdm's server listens on every interface: it gets a free port and is stopped by its PID.
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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PKI_MASTER_KEY", "benchmark-master-key")

from _setup import TEMPLATE_ENV, post_all  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from protocols.scep.messages import PkiStatus, parse_degenerate  # noqa: E402
from protocols.scep.messages import client as scep_client  # noqa: E402
from tests.protocols.scep.live import RA_SECRET, LiveScepServer, free_port  # noqa: E402
from tests.protocols.scep.server_fixtures import make_csr, self_signed  # noqa: E402


def _new_key_der(_: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


class BenchScepServer(LiveScepServer):
    """The tests' live server; its database a copy of PKI_BENCH_TEMPLATE when set (the smoke run's migrated one)."""

    def create_database(self) -> None:
        # Not the suite's template (tests.support.templatedb reads the migrations through Django, not set up here).
        template = os.environ.get(TEMPLATE_ENV, "")
        self._sql(f'CREATE DATABASE "{self.db_name}"' + (f' TEMPLATE "{template}"' if template else ""))
        if not template:
            self.manage("migrate", "--noinput", "-v0")


def client_keys(n: int) -> list:
    """``n`` distinct RSA-2048 keys, one per request: a CA enforcing unique public keys (EJBCA's default, and
    this server's) refuses a second certificate for a key another end entity holds."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2) as pool:
        return [load_der_private_key(der, None) for der in pool.map(_new_key_der, range(n), chunksize=16)]


def _ca_cert(url: str) -> x509.Certificate:
    body = urllib.request.urlopen(url + "?operation=GetCACert", timeout=30).read()
    try:
        return x509.load_der_x509_certificate(body)
    except ValueError:
        return parse_degenerate(body)[0][0]


def build(n: int, ca: x509.Certificate, keys: list, tag: str) -> list:
    out = []
    for i in range(n):
        key = keys[i]
        csr = make_csr(key, f"CN=bench-{tag}-{i:05d},O=Bench,C=SE", RA_SECRET)
        signer = self_signed(key, f"bench-{tag}-{i}")
        req = scep_client.build_pkcs_req(csr, signer, key, ca, cipher="aes256", digest="sha256",
                                         transaction_id=f"{tag.upper()}{i:08d}{os.urandom(6).hex().upper()}")
        out.append((req, key, signer))
    return out


def run(url: str, requests: list, concurrency: int) -> tuple[float, list[float], list[bytes]]:
    """POST every request with ``concurrency`` keep-alive clients; (seconds, latencies, bodies)."""
    return post_all(url + "?operation=PKIOperation", [r[0].data for r in requests], "application/x-pki-message",
                    concurrency)


def _cpu_of(stat: Path) -> tuple[int, float]:
    """(parent pid, CPU seconds user + system) of one /proc/<pid>/stat."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_cpu(master: int) -> float:
    """CPU seconds (user + system) used so far by the gunicorn workers of ``master`` (Linux /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid, cpu = _cpu_of(stat)
        except OSError:
            continue
        if ppid == master:
            total += cpu
    return total


def process_cpu(pid: int) -> float:
    try:
        return _cpu_of(Path(f"/proc/{pid}/stat"))[1]
    except OSError:
        return 0.0


def backends_cpu(database: str) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend connected to ``database`` (by pid; readable when the
    benchmark runs as root or as the server's user, else empty)."""
    out: dict[int, float] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if not cmdline.startswith(b"postgres: ") or f" {database} ".encode() not in cmdline:
                continue
            out[int(proc.name)] = _cpu_of(proc / "stat")[1]
        except OSError:
            continue
    return out


def backends_cpu_since(database: str, before: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in backends_cpu(database).items())


def check(requests: list, bodies: list[bytes], ca: x509.Certificate) -> int:
    """Decrypt and check every reply; the number of failed enrollments (a SUCCESS must carry a certificate for
    the request's key and answer the request's nonce)."""
    failed = 0
    for (req, key, signer), body in zip(requests, bodies, strict=True):
        rep = scep_client.parse_cert_rep(body, key, signer, ca_certs=[ca])
        if rep.recipient_nonce != req.sender_nonce or rep.transaction_id != req.transaction_id:
            raise SystemExit(f"reply for {req.transaction_id} answers another request")
        if rep.status != PkiStatus.SUCCESS:
            failed += 1
            continue
        if not any(c.public_key() == key.public_key() for c in rep.certificates):
            raise SystemExit(f"reply for {req.transaction_id} has no certificate for the request's key")
    return failed


def figures(name: str, seconds: float, latencies: list[float], failed: int) -> tuple[str, float, float, float, int]:
    """Successful enrollments per second, p50 and p99 latency (ms) over every request, failures."""
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return name, (len(lat) - failed) / seconds, statistics.median(lat) * 1000, p99 * 1000, failed


def start_micromdm(tmp: Path) -> tuple[subprocess.Popen, str]:
    depot = tmp / "depot"
    subprocess.run(["scepserver", "ca", "-init", "-depot", str(depot), "-keySize", "2048"], check=True,
                   capture_output=True, cwd=tmp)
    port = free_port()
    log = (tmp / "scepserver.log").open("w")
    proc = subprocess.Popen(["scepserver", "-depot", str(depot), "-port", str(port), "-challenge", RA_SECRET,
                             "-allowrenew", "0"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}/scep"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "?operation=GetCACaps", timeout=2).close()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"scepserver exited: {(tmp / 'scepserver.log').read_text()}") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("scepserver did not start")


def stop_micromdm(proc: subprocess.Popen) -> None:
    proc.terminate()  # by its PID: it listens on every interface
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def print_results(results: list[tuple[str, float, float, float, int]], args: argparse.Namespace) -> None:
    """The run's settings and one line per server (the rows of :func:`figures`)."""
    print(f"SCEP PKCSReq enrollments, RSA-2048 client keys, AES-256/SHA-256, {args.n} per server, "
          f"concurrency {args.concurrency}, gunicorn 2x{args.threads}, load {os.getloadavg()[0]:.1f}")
    width = max(len(r[0]) for r in results)
    print(f"{'server':<{width}}  {'enroll/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'failed':>6}")
    for name, rate, p50, p99, failed in results:
        print(f"{name:<{width}}  {rate:9.1f}  {p50:7.1f}  {p99:7.1f}  {failed:6d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=400, help="enrollments per server (default 400)")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="a few enrollments per server: check that it runs")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4, as make run)")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.warmup, args.concurrency = 6, 2, 2
    if not shutil.which("scepserver"):
        raise SystemExit("scepserver is missing: scripts/install-test-deps.sh installs Debian 'scep'")
    keys = client_keys(args.warmup + args.n)  # the same keys for both servers (their CAs are unrelated)
    warm_keys, run_keys = keys[:args.warmup], keys[args.warmup:]
    with tempfile.TemporaryDirectory(prefix="scep-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "pki").mkdir()
        proc, mdm_url = start_micromdm(tmp)
        try:
            with BenchScepServer(tmp / "pki", workers=2, threads=args.threads) as ours:
                our_url = ours.url("ra-devices")
                results = []
                client_cpu_ms: dict[str, float] = {}
                for name, url in (("pki (RA mode)", our_url), ("micromdm scepserver", mdm_url)):
                    ca = _ca_cert(url)
                    warm = build(args.warmup, ca, warm_keys, f"w{len(results)}")
                    run(url, warm, args.concurrency)
                    reqs = build(args.n, ca, run_keys, f"r{len(results)}")
                    cpu_before = workers_cpu(ours.process.pid) if url == our_url else process_cpu(proc.pid)
                    pg_before = backends_cpu(ours.db_name)
                    client_before = time.process_time()
                    seconds, latencies, bodies = run(url, reqs, args.concurrency)
                    client_cpu_ms[url] = (time.process_time() - client_before) * 1000 / args.n
                    if url == our_url:
                        server_cpu_ms = (workers_cpu(ours.process.pid) - cpu_before) * 1000 / args.n
                        pg_cpu_ms = backends_cpu_since(ours.db_name, pg_before) * 1000 / args.n
                    else:
                        mdm_cpu_ms = (process_cpu(proc.pid) - cpu_before) * 1000 / args.n
                    failed = check(reqs, bodies, ca)
                    if failed and url == our_url:
                        raise SystemExit(f"{failed} enrollments failed on this server")
                    results.append(figures(name, seconds, latencies, failed))
                expected = args.n + args.warmup
                counts = ours.manage("shell", "-c", (
                    "from pki.models import Certificate, AuditEvent; from endentities.models import EndEntity; "
                    "print(Certificate.objects.filter(username__startswith='bench-').count(), "
                    "AuditEvent.objects.filter(event_type='CERT_CREATION', actor='scep:ra-devices', "
                    "outcome='SUCCESS').count(), EndEntity.objects.filter(username__startswith='bench-').count())"))
                stored, audited, entities = (int(x) for x in counts.split()[-3:])
        finally:
            stop_micromdm(proc)
    print_results(results, args)
    if results[1][4]:
        print("(micromdm's file depot loses serial numbers under concurrent requests: \"could not convert  to serial"
              " number\"; its rate counts successful enrollments only)")
    print(f"ratio pki / micromdm: {results[0][1] / results[1][1]:.2f}x")
    print(f"CPU per enrollment, ms: pki gunicorn workers {server_cpu_ms:.1f} + its PostgreSQL backends {pg_cpu_ms:.1f}"
          f" (load generator {client_cpu_ms[our_url]:.1f}); micromdm {mdm_cpu_ms:.1f} "
          f"(load generator {client_cpu_ms[mdm_url]:.1f})")
    print(f"database: {stored} certificates, {audited} CERT_CREATION audit events, {entities} end entities "
          f"(expected {expected} each)")
    if not (stored == audited == entities == expected):
        raise SystemExit("not every enrollment was stored and audited")


if __name__ == "__main__":
    main()
