"""Certificate issuance against django-ca 3.2, side by side: the same pre-built CSRs, each system on a PostgreSQL
database of its own, runs alternating in one invocation (issue 17, target 2).

This project: ``pki.issuance.issue`` — the pipeline every interface calls — on CAs made as ``init`` makes them
(a soft crypto token, the ENDUSER profile): access check, CSR signature verified, profile rules, signing through
the token's key handle, the certificate row with the CA's uniqueness checks, the HMAC-chained audit event, a
durable commit. django-ca: ``Certificate.objects.create_cert`` with its default key backend (the CA key in a file
storage) and its ``client`` profile, in a process of its own (benchmarks/_djangoca_worker.py) run by the
interpreter of ``.venv-peers`` (scripts/install-peer-bench.sh; PKI_PEER_BENCH_PYTHON overrides). django-ca
writes no audit event, checks no uniqueness and does not verify the CSR's signature.

Each figure is certificates per second over a run, the median of the rounds; threads share one process (as a
gunicorn worker's threads do). Targets: P-256 >= 1.5x django-ca at 4 threads and >= 1.0x at 1 thread; RSA-2048
>= 5x at both.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/peer_issuance.py [-n 600]
    ... benchmarks/peer_issuance.py --smoke     # CI: a few certificates, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from _setup import database_name, load, setup_django, table, timed_threads

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {("P-256", 1): 1.0, ("P-256", 4): 1.5, ("RSA-2048", 1): 5.0, ("RSA-2048", 4): 5.0}
NOT_DONE_BY_PEER = "django-ca writes no audit event, checks no uniqueness and does not verify the CSR signature"


def peer_python() -> str:
    python = os.environ.get("PKI_PEER_BENCH_PYTHON") or str(ROOT / ".venv-peers" / "bin" / "python")
    if not Path(python).exists():
        raise SystemExit(f"{python} is missing: scripts/install-peer-bench.sh installs django-ca into .venv-peers")
    return python


class Peer:
    """The django-ca worker process: one JSON command a line, one JSON answer a line."""

    def __init__(self, python: str):
        self.proc = subprocess.Popen([python, str(ROOT / "benchmarks" / "_djangoca_worker.py")], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def call(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the django-ca worker stopped (exit {self.proc.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise SystemExit(f"django-ca: {answer['error']}")
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _admin_sql(statement: str) -> None:
    import dj_database_url
    import psycopg2

    cfg = dj_database_url.parse(os.environ["DATABASE_URL"])
    conn = psycopg2.connect(host=cfg["HOST"] or "127.0.0.1", port=cfg["PORT"] or 5432, user=cfg["USER"],
                            password=cfg["PASSWORD"] or None, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=600, help="certificates per run (default 600)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--smoke", action="store_true", help="a few certificates: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.rounds = 8, 1
    python = peer_python()
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    os.environ["DATABASE_URL"] = server
    peer_db = database_name("pki_bench_peer_djangoca")
    load_before = load()

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    runs = [(name, threads) for name in ("RSA-2048", "P-256") for threads in args.threads]
    total = args.count * args.rounds * len(runs) + 2 * args.count  # + a warm-up run per CA
    # One distinct key and subject per CSR: both CAs refuse or flag nothing, and no shortcut is taken on repeats.
    csrs = []
    for n in range(total):
        key = ec.generate_private_key(ec.SECP256R1())
        csrs.append(x509.CertificateSigningRequestBuilder()
                    .subject_name(x509.Name.from_rfc4514_string(f"CN=host{n}.example.com,O=Bench"))
                    .sign(key, hashes.SHA256()))

    setup_django("pki_bench_peer")
    from django.db import connection

    from cryptotokens import services as token_services
    from pki.audit import verify_chain
    from pki.auth.access import Actor
    from pki.issuance import IssuanceRequest, issue
    from pki.models import Certificate, CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    profile = CertificateProfile.objects.get(name="ENDUSER")
    token = token_services.create_token(actor, name="peerbench", token_type="SoftCryptoToken",
                                        auth_code="bench-code", auto_activate=True)
    cas = {name: create_ca(actor, CASettings(name=f"Peer{name}", subject_dn=f"CN=Peer {name} CA", crypto_token=token,
                                             key_alias=name, key_spec=name.replace("-", "")))
           for name in ("RSA-2048", "P-256")}

    # Process CPU per certificate (ms) of each run, by (system, CA key, threads): on a shared machine a steadier
    # figure than the rates (the other sessions' load stretches wall time, much less the work done).
    cpu_ms: dict[tuple[str, str, int], list[float]] = collections.defaultdict(list)

    def ours(name: str, first: int, count: int, threads: int) -> float:
        per_thread = count // threads

        def work(t: int) -> None:
            try:
                for csr in csrs[first + t * per_thread:first + (t + 1) * per_thread]:
                    issue(IssuanceRequest(ca=cas[name], actor=actor, profile=profile, csr=csr))
            finally:
                connection.close()

        cpu = time.process_time()
        rate = per_thread * threads / timed_threads(work, threads)
        cpu_ms[("pki", name, threads)].append((time.process_time() - cpu) / (per_thread * threads) * 1000)
        return rate

    with tempfile.TemporaryDirectory(prefix="peer-issuance-") as tmp:
        csr_file = Path(tmp) / "csrs.pem"
        csr_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in csrs))
        (Path(tmp) / "store").mkdir()
        _admin_sql(f'DROP DATABASE IF EXISTS "{peer_db}" WITH (FORCE)')
        _admin_sql(f'CREATE DATABASE "{peer_db}"')
        peer = Peer(python)
        try:
            peer.call(op="setup", database_url=urlsplit(server)._replace(path=f"/{peer_db}").geturl(),
                      storage=str(Path(tmp) / "store"))
            for name in cas:
                peer.call(op="ca", name=name)

            def theirs(name: str, first: int, count: int, threads: int) -> float:
                answer = peer.call(op="run", ca=name, csrs=str(csr_file), first=first, count=count,
                                   threads=threads)
                cpu_ms[("django-ca", name, threads)].append(answer["cpu"] / answer["issued"] * 1000)
                return answer["issued"] / answer["seconds"]

            at = 0
            for name in cas:  # warm-up: keys opened, caches filled, connections made, on both sides
                ours(name, at, args.count, 1)
                theirs(name, at, args.count, 1)
                at += args.count
            figures: dict[tuple[str, int], dict[str, list[float]]] = {run: {"pki": [], "django-ca": []}
                                                                        for run in runs}
            cpu_ms.clear()  # the warm-up's figures include first-use costs
            for _ in range(args.rounds):
                for name, threads in runs:
                    figures[(name, threads)]["pki"].append(ours(name, at, args.count, threads))
                    figures[(name, threads)]["django-ca"].append(theirs(name, at, args.count, threads))
                    at += args.count
        finally:
            peer.close()
            _admin_sql(f'DROP DATABASE IF EXISTS "{peer_db}" WITH (FORCE)')

    rows = []
    for (name, threads), by in figures.items():
        mine, peer_rate = statistics.median(by["pki"]), statistics.median(by["django-ca"])
        ratio = mine / peer_rate
        target = TARGETS.get((name, threads))
        cpu = (f"{statistics.median(cpu_ms[('pki', name, threads)]):.2f}/"
               f"{statistics.median(cpu_ms[('django-ca', name, threads)]):.2f}")
        rows.append((name, threads, f"{mine:,.0f}", f"{peer_rate:,.0f}", f"{ratio:.2f}x",
                     f">= {target:.1f}x" if target else "", ("met" if ratio >= target else "MISSED") if target else "",
                     " ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(by["pki"], by["django-ca"], strict=True)), cpu))
    print(f"\nIssuance against django-ca 3.2 (PostgreSQL each, the same CSRs, {args.rounds} alternating rounds of "
          f"{args.count}, median; load average {load_before} before, {load()} after)")
    print(table(rows, ("CA key", "threads", "pki/s", "django-ca/s", "ratio", "target", "", "rounds pki/django-ca",
                       "CPU ms/cert pki/django-ca")))
    print("CPU ms/cert: each system's own process (median of the rounds); the PostgreSQL backends' CPU is not in it.")
    print(f"pki: audit event, uniqueness checks and CSR signature verification in every issuance; {NOT_DONE_BY_PEER}.")
    issued = Certificate.objects.filter(ca__in=cas.values(), is_ca=False).count()
    report = verify_chain()
    print(f"pki stored {issued} certificates (expected {at}); audit chain {'intact' if report.ok else 'BROKEN'}")
    if issued != at or not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
