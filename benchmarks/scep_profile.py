"""Where one SCEP RA-mode PKCSReq spends its time in a server process: the request path run in-process through
the WSGI application as gunicorn calls it (middleware, view, message layer, end entity, issuance, audit,
commit), one thread.

Prints the SQL statements of one enrollment, CPU and wall milliseconds per enrollment, and with ``--profile``
the cProfile top functions. Set-up as ``benchmarks/scep_enroll.py``'s server (tests/protocols/scep/live.py):
RSA-2048 CA on a soft token, alias ``ra-devices`` with the shared secret, a distinct client key per request.

``--sqlite``: make run's own installation instead (SQLite, made by ``benchmarks/scep_default.py``'s commands), and
how long each write transaction held SQLite's one write lock (``pki.sqlite``'s queue: from taking it to the end of
COMMIT; every other writer waits that long), with the holder thread's CPU in it. ``--threads`` runs the requests
from several threads of this process, as a gunicorn worker's threads share it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/scep_profile.py [-n 300] [--profile]
    .venv/bin/python benchmarks/scep_profile.py --sqlite [--threads 4]
    ... benchmarks/scep_profile.py --smoke    # CI: a few enrollments, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _setup import setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="timed enrollments (default 300)")
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top functions")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", help="write the cProfile statistics to this file")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (cumulative, tottime, ...)")
    parser.add_argument("--sqlite", action="store_true", help="make run's installation (SQLite), with the write "
                        "lock's hold per transaction")
    parser.add_argument("--threads", type=int, default=1, help="client threads in this process (default 1)")
    parser.add_argument("--smoke", action="store_true", help="a few enrollments: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.n = 3
    tmp = None
    if args.sqlite:
        tmp = Path(tempfile.mkdtemp(prefix="scep-profile-"))
        url, secret = _sqlite_installation(tmp)
    else:
        os.environ.setdefault("ALLOWED_HOSTS", "testserver")
        setup_django("pki_bench_scep")
        url, secret = "/ejbca/publicweb/apply/scep/ra-devices/pkiclient.exe", None
    try:
        _run(args, url, secret)
    finally:
        if tmp is not None:
            from django.db import connections

            connections.close_all()
            shutil.rmtree(tmp, ignore_errors=True)
    if args.smoke and not args.sqlite:  # the SQLite installation's path runs in CI too
        out = subprocess.run([sys.executable, __file__, "--sqlite", "--smoke"], capture_output=True, text=True,
                             timeout=600)
        print(out.stdout, end="")
        if out.returncode != 0 or "write lock held" not in out.stdout:
            raise SystemExit(f"--sqlite --smoke failed:\n{out.stdout}\n{out.stderr[-3000:]}")


def _sqlite_installation(tmp: Path) -> tuple[str, str]:
    """make run's installation in ``tmp`` (scep_default.py's commands), Django set up on it; (alias URL, secret)."""
    import scep_default

    inst = scep_default.Installation("profile", tmp, None)
    inst.set_up()
    for name in [k for k in os.environ if k.startswith(("PKI_TEST_", "REDIS_URL", "DATABASE_URL"))]:
        del os.environ[name]
    os.environ.update(inst.env)
    os.environ.update({"DJANGO_SETTINGS_MODULE": "pki.settings", "ALLOWED_HOSTS": "testserver"})
    import django

    django.setup()
    return f"/ejbca/publicweb/apply/scep/{scep_default.ALIAS}/pkiclient.exe", scep_default.RA_SECRET


def _lock_holds() -> list[tuple[float, float]]:
    """(wall, holder thread's CPU) seconds of each write transaction's hold of SQLite's write lock from now on."""
    from pki.sqlite.base import DatabaseWrapper

    holds: list[tuple[float, float]] = []
    start, leave = DatabaseWrapper._start_transaction_under_autocommit, DatabaseWrapper._leave_queue

    def timed_start(self) -> None:
        start(self)
        self._bench_taken = (time.perf_counter(), time.thread_time())

    def timed_leave(self) -> None:
        taken = getattr(self, "_bench_taken", None)
        if self._queue_held and taken is not None:
            holds.append((time.perf_counter() - taken[0], time.thread_time() - taken[1]))
            self._bench_taken = None
        leave(self)

    DatabaseWrapper._start_transaction_under_autocommit, DatabaseWrapper._leave_queue = timed_start, timed_leave
    return holds


def _run(args: argparse.Namespace, url: str, secret: str | None) -> None:

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from protocols.scep.messages import PkiStatus, parse_degenerate
    from protocols.scep.messages import client as scep_client
    from tests.protocols.scep.live import RA_SECRET, SETUP
    from tests.protocols.scep.server_fixtures import make_csr, self_signed

    if secret is None:
        exec(SETUP % {"secret": RA_SECRET, "users": [], "include_ca": False})  # noqa: S102 - the live server's set-up
    secret = secret or RA_SECRET
    client = Client()
    body = client.get(url, {"operation": "GetCACert"}).content
    try:
        ca = x509.load_der_x509_certificate(body)
    except ValueError:  # an intermediate CA (make run's IssuingCA): its chain, the CA first
        ca = parse_degenerate(body)[0][0]
    warm = 1 if args.smoke else 10
    requests = []
    for i in range(args.n + warm):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # unique keys: the CA enforces them
        csr = make_csr(key, f"CN=prof-{i:05d},O=Bench,C=SE", secret)
        signer = self_signed(key, f"prof-{i}")
        requests.append((scep_client.build_pkcs_req(csr, signer, key, ca, cipher="aes256", digest="sha256",
                                                    transaction_id=f"PROF{i:08d}"), key, signer))

    # The WSGI application itself, called as gunicorn calls it (the test client adds work of its own).
    app = get_wsgi_application()

    def post(item) -> bytes:
        body = item[0].data
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": url, "QUERY_STRING": "operation=PKIOperation",
            "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "testserver", "CONTENT_TYPE": "application/x-pki-message",
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        status: list[str] = []
        chunks = app(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            content = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise SystemExit(f"HTTP {status[0]}: {content[:300]!r}")
        return content

    for item in requests[:warm]:
        rep = scep_client.parse_cert_rep(post(item), item[1], item[2], ca_certs=[ca])
        if rep.status != PkiStatus.SUCCESS:
            raise SystemExit(f"enrollment failed: {rep.fail_info}")
    with CaptureQueriesContext(connection) as queries:
        post(requests[warm])
    print(f"SQL statements per enrollment: {len(queries.captured_queries)}")
    for q in queries.captured_queries:
        print("   ", q["sql"][:150])
    timed = requests[warm + 1:]
    holds = _lock_holds() if connection.vendor == "sqlite" else None
    pending = iter(timed)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                return
            post(item)

    prof = cProfile.Profile()
    cpu, wall = time.process_time(), time.perf_counter()
    if args.profile:
        prof.enable()
    if args.threads == 1:
        work()
    else:
        workers = [threading.Thread(target=work) for _ in range(args.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    prof.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    threads = "one thread" if args.threads == 1 else f"{args.threads} threads"
    print(f"{len(timed)} enrollments, {threads}{' (under cProfile)' if args.profile else ''}: "
          f"CPU {cpu / len(timed) * 1000:.2f} ms, wall {wall / len(timed) * 1000:.2f} ms per enrollment")
    if holds:
        held, busy = sorted(h[0] * 1000 for h in holds), sorted(h[1] * 1000 for h in holds)
        print(f"SQLite write lock held per write transaction ({len(held)}): median {held[len(held) // 2]:.2f} ms, "
              f"mean {sum(held) / len(held):.2f} ms, p99 {held[int(len(held) * 0.99)]:.2f} ms; the holder's CPU "
              f"in it: median {busy[len(busy) // 2]:.2f} ms")
    if args.profile and args.dump:
        prof.dump_stats(args.dump)
    if args.profile:
        pstats.Stats(prof, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
