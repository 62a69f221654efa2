"""Where one SCEP RA-mode PKCSReq spends its time in a server process: the request path run in-process through
the WSGI application as gunicorn calls it (middleware, view, message layer, end entity, issuance, audit,
commit), one thread.

Prints the SQL statements of one enrollment, CPU and wall milliseconds per enrollment, and with ``--profile``
the cProfile top functions. Set-up as ``benchmarks/scep_enroll.py``'s server (tests/protocols/scep/live.py):
RSA-2048 CA on a soft token, alias ``ra-devices`` with the shared secret, a distinct client key per request.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/scep_profile.py [-n 300] [--profile]
    ... benchmarks/scep_profile.py --smoke    # CI: a few enrollments, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

from _setup import setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="timed enrollments (default 300)")
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top functions")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", help="write the cProfile statistics to this file")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (cumulative, tottime, ...)")
    parser.add_argument("--smoke", action="store_true", help="a few enrollments: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.n = 3
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    setup_django("pki_bench_scep")

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from protocols.scep.messages import PkiStatus
    from protocols.scep.messages import client as scep_client
    from tests.protocols.scep.live import RA_SECRET, SETUP
    from tests.protocols.scep.server_fixtures import make_csr, self_signed

    exec(SETUP % {"secret": RA_SECRET, "users": [], "include_ca": False})  # noqa: S102 - the live server's set-up
    client = Client()
    url = "/ejbca/publicweb/apply/scep/ra-devices/pkiclient.exe"
    ca = x509.load_der_x509_certificate(client.get(url, {"operation": "GetCACert"}).content)
    warm = 1 if args.smoke else 10
    requests = []
    for i in range(args.n + warm):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # unique keys: the CA enforces them
        csr = make_csr(key, f"CN=prof-{i:05d},O=Bench,C=SE", RA_SECRET)
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
    prof = cProfile.Profile()
    cpu, wall = time.process_time(), time.perf_counter()
    if args.profile:
        prof.enable()
    for item in timed:
        post(item)
    prof.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{len(timed)} enrollments, one thread{' (under cProfile)' if args.profile else ''}: "
          f"CPU {cpu / len(timed) * 1000:.2f} ms, wall {wall / len(timed) * 1000:.2f} ms per enrollment")
    if args.profile and args.dump:
        prof.dump_stats(args.dump)
    if args.profile:
        pstats.Stats(prof, stream=sys.stdout).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
