"""Audit chain: appends per second under concurrency, and a correctness check of the chain afterwards.

Every append is a durable commit that holds the chain's head row from its append to the end of its
commit, so appends from every process queue there: this figure is the ceiling of anything that audits
each operation in its own transaction (issuance included).

The check mixes, from several threads and processes at once: appends in their own transaction, two
appends in one transaction, appends rolled back with their transaction, and failure events; then
``verify_chain`` must pass and the number of events must equal the number of committed appends.

    python benchmarks/audit_chain.py [--count 3000] [--threads 1 2 4 8] [--processes 2]
    ... benchmarks/audit_chain.py --smoke     # CI: a few appends, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading

from _setup import setup_django, table, timed_threads

DATABASE = "pki_bench_audit"


class Rollback(Exception):
    pass


def mixed_work(n: int, tag: str) -> int:
    """``n`` rounds of mixed appends; returns how many events were committed."""
    from django.db import connection, transaction

    from pki import audit

    committed = 0
    try:
        for i in range(n):
            kind = i % 5
            if kind == 0:  # its own transaction
                audit.record("BENCH", tag, object_type="n", object_id=i, details={"i": i})
                committed += 1
            elif kind == 1:  # two appends in one transaction: the second finds the head held by itself
                with transaction.atomic():
                    audit.record("BENCH", tag, object_id=i, details={"first": True}, in_transaction=True)
                    audit.record("BENCH", tag, object_id=i, details={"first": False}, in_transaction=True)
                committed += 2
            elif kind == 2:  # rolled back after the append: the process's expected head is now wrong
                try:
                    with transaction.atomic():
                        audit.record("BENCH", tag, object_id=i, details={"rolled_back": True}, in_transaction=True)
                        raise Rollback
                except Rollback:
                    pass
            elif kind == 3:  # inside a caller's transaction, as issuance does it
                with transaction.atomic():
                    audit.record("BENCH", tag, object_id=i, details={"caller": "tx"}, in_transaction=True)
                committed += 1
            else:
                audit.record_failure("BENCH", tag, "refused", object_id=i)
                committed += 1
    finally:
        connection.close()
    return committed


def run_threads(threads: int, per_thread: int, target) -> tuple[float, int]:
    results: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        done = target(per_thread, f"t{t}")
        with lock:
            results.append(done)

    return timed_threads(work, threads), sum(results)


def plain_appends(n: int, tag: str) -> int:
    """As issuance appends: inside the caller's transaction, last, then commit."""
    from django.db import connection, transaction

    from pki import audit

    try:
        for i in range(n):
            with transaction.atomic():
                audit.record("BENCH", tag, object_type="n", object_id=i, details={"i": i}, in_transaction=True)
    finally:
        connection.close()
    return n


def quiet() -> None:
    import logging

    logging.getLogger("pki.audit").setLevel(logging.ERROR)  # the failure events would log a warning each


def worker_main(args) -> None:
    setup_django(DATABASE, fresh=False)
    quiet()
    _, committed = run_threads(args.threads[0], args.count, mixed_work)
    print(committed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="appends per throughput run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--processes", type=int, default=2, help="extra processes in the correctness check")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a few appends: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.threads, args.processes = 40, [1, 2], 1
    if args.worker:
        worker_main(args)
        return
    setup_django(DATABASE)
    quiet()
    from pki.audit import verify_chain
    from pki.models import AuditEvent

    rows = []
    for threads in args.threads:
        elapsed, n = run_threads(threads, args.count // threads, plain_appends)
        rows.append((threads, f"{n / elapsed:,.0f}"))
    print(f"\nAudit appends, one durable transaction each (PostgreSQL, one process, {args.count} appends)")
    print(table(rows, ("threads", "appends/s")))

    before = AuditEvent.objects.count()
    rounds = 10 if args.smoke else 200
    env = {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--threads", "3", "--count", str(rounds)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(args.processes)]
    _, committed = run_threads(4, rounds, mixed_work)
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker process failed ({p.returncode})")
        committed += int(out.strip().splitlines()[-1])
    added = AuditEvent.objects.count() - before
    report = verify_chain()
    print(f"\nMixed appends from 4 threads here and {args.processes} processes x 3 threads: "
          f"{committed} committed, {added} stored; chain {'intact' if report.ok else 'BROKEN: ' + report.problem}, "
          f"{report.checked} events verified")
    if not report.ok or added != committed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
