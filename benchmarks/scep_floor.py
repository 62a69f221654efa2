"""The ceiling under ``scep_enroll.py``'s ratio: a bare Python SCEP responder against micromdm, same load.

``_scep_floor_app.py`` does only what no SCEP server can skip: this project's message layer (parse and verify,
decrypt, read the CSR, CertRep), a string compare of the challenge, the certificate signed with ``cryptography``,
and one INSERT with a durable COMMIT over psycopg2 (no Django, no end entity, no profile, no audit). It runs
under gunicorn with 2 workers, as ``scep_enroll.py``'s server, and gets the same load as there: pre-built
PKCSReq messages (RSA-2048 client keys, AES-256, SHA-256) POSTed by 8 concurrent clients, every reply
decrypted and checked. micromdm's Debian ``scepserver`` runs in the same run. If this ratio is below 1.0, no
Python server built on this message layer and a durable database can reach 1.0 on this machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/scep_floor.py [-n 400]
    ... benchmarks/scep_floor.py --smoke      # CI: a few enrollments, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _setup import database_name
from scep_enroll import (
    ROOT,
    _ca_cert,
    build,
    check,
    client_keys,
    figures,
    print_results,
    run,
    start_micromdm,
    stop_micromdm,
)

from tests.protocols.scep.live import RA_SECRET, free_port


def _ca(tmp: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name.from_rfc4514_string("CN=SCEP Floor CA")
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp / "ca.key").write_bytes(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))
    (tmp / "ca.der").write_bytes(cert.public_bytes(Encoding.DER))


def _database(base: str, name: str) -> str:
    import dj_database_url
    import psycopg2

    cfg = dj_database_url.parse(base)
    params = {"host": cfg["HOST"] or "127.0.0.1", "port": cfg["PORT"] or 5432, "user": cfg["USER"],
              "password": cfg["PASSWORD"] or None}
    conn = psycopg2.connect(dbname="postgres", **params)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    conn = psycopg2.connect(dbname=name, **params)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE floor_cert (serial text PRIMARY KEY, subject text NOT NULL, der bytea NOT NULL, "
                    "created_at timestamptz NOT NULL DEFAULT now())")
    conn.commit()
    conn.close()
    return " ".join(f"{k}={v}" for k, v in {**params, "dbname": name}.items() if v is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=400, help="enrollments per server (default 400)")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="a few enrollments per server: check that it runs")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    args = parser.parse_args()
    if args.smoke:
        args.n, args.warmup, args.concurrency = 6, 2, 2
    if not shutil.which("scepserver"):
        raise SystemExit("scepserver is missing: scripts/install-test-deps.sh installs Debian 'scep'")
    dsn = _database(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
                    database_name("pki_bench_scepfloor"))
    keys = client_keys(args.warmup + args.n)
    warm_keys, run_keys = keys[:args.warmup], keys[args.warmup:]
    with tempfile.TemporaryDirectory(prefix="scep-floor-") as tmpdir:
        tmp = Path(tmpdir)
        _ca(tmp)
        port = free_port()
        env = {**os.environ, "SCEP_FLOOR_DIR": str(tmp), "SCEP_FLOOR_DSN": dsn, "SCEP_FLOOR_SECRET": RA_SECRET,
               "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}"}
        log = (tmp / "gunicorn.log").open("w")
        floor = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "_scep_floor_app:app", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--threads", str(args.threads), "--worker-class", "gthread"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        floor_url = f"http://127.0.0.1:{port}/scep"
        proc, mdm_url = start_micromdm(tmp)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(floor_url + "?operation=GetCACert", timeout=2).close()
                    break
                except OSError:
                    if floor.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"floor server did not start:\n{(tmp / 'gunicorn.log').read_text()}") from None
                    time.sleep(0.2)
            results = []
            for name, url in (("bare Python floor", floor_url), ("micromdm scepserver", mdm_url)):
                ca = _ca_cert(url)
                run(url, build(args.warmup, ca, warm_keys, f"w{len(results)}"), args.concurrency)
                reqs = build(args.n, ca, run_keys, f"r{len(results)}")
                seconds, latencies, bodies = run(url, reqs, args.concurrency)
                results.append(figures(name, seconds, latencies, check(reqs, bodies, ca)))
        finally:
            os.killpg(floor.pid, signal.SIGINT)
            try:
                floor.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(floor.pid, signal.SIGKILL)
                floor.wait()
            stop_micromdm(proc)
    print_results(results, args)
    print(f"ratio floor / micromdm: {results[0][1] / results[1][1]:.2f}x")


if __name__ == "__main__":
    main()
