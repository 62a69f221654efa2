"""The floor under ``issue_throughput.py``: what signing plus the least possible storage costs on this machine.

For each CA key: raw ``cryptography`` CertificateBuilder + sign (the same certificate shape as
``issue_throughput.py``'s raw figure), then the same plus ONE INSERT of the certificate row into the real
``pki_certificate`` table (its indexes and constraints) and a durable COMMIT, over psycopg2 directly: no Django,
no profile rules, no uniqueness checks, no audit event. No issuance pipeline can be faster than the second
figure; the ratio to the first is the best ratio ``issue_throughput.py`` could print.

    python benchmarks/issue_floor.py [--count 1000] [--threads 1 8]
    ... benchmarks/issue_floor.py --smoke     # CI: a few certificates, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from _setup import load, setup_django, table, timed_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="certificates per P-256 run (RSA runs do half)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--smoke", action="store_true", help="a few certificates: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.threads = 20, [1, 2]
    load_before = load()
    setup_django("pki_bench_floor")

    import psycopg2
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding
    from django.db import connection

    from pki.auth.access import Actor
    from pki.models import CertificateAuthority

    actor = Actor.system_actor("bench")  # noqa: F841 - the import sets up the access layer like the others
    # A CA row for the foreign key; the keys below are plain cryptography keys.
    ca_row = CertificateAuthority.objects.create(name="Floor", subject_dn="CN=Floor")
    dsn = connection.get_connection_params()
    keys = {"RSA-2048": rsa.generate_private_key(65537, 2048), "P-256": ec.generate_private_key(ec.SECP256R1())}
    ee_keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(200)]
    ca_name = x509.Name.from_rfc4514_string("CN=Floor CA")

    def build(key, i: int) -> x509.Certificate:
        pub = ee_keys[i % len(ee_keys)]
        now = datetime.now(UTC)
        return (x509.CertificateBuilder()
                .subject_name(x509.Name.from_rfc4514_string(f"CN=user{i},O=Bench"))
                .issuer_name(ca_name).public_key(pub).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + timedelta(days=730))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(x509.KeyUsage(True, True, True, False, False, False, False, False, False), True)
                .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"user{i}.example.com")]), False)
                .sign(key, hashes.SHA256()))

    insert = ("INSERT INTO pki_certificate (ca_id, serial, fingerprint_sha256, subject_dn, issuer_dn, "
              "subject_alt_name, not_before, not_after, der, status, username, key_algorithm, public_key_sha256, "
              "is_ca, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, '', %s, %s, %s, 'ACTIVE', '', 'EC', '', "
              "false, now(), now())")

    def raw(key, n: int) -> float:
        start = time.perf_counter()
        for i in range(n):
            build(key, i)
        return n / (time.perf_counter() - start)

    def stored(key, n: int, threads: int, offset: int) -> float:
        per = n // threads
        conns = [psycopg2.connect(**dsn) for _ in range(threads)]

        def work(t: int) -> None:
            conn = conns[t]
            with conn.cursor() as cur:
                for i in range(offset + t * per, offset + (t + 1) * per):
                    cert = build(key, i)
                    cur.execute(insert, [ca_row.pk, format(cert.serial_number, "x"),
                                         cert.fingerprint(hashes.SHA256()).hex(), f"CN=user{i},O=Bench",
                                         "CN=Floor CA", cert.not_valid_before_utc, cert.not_valid_after_utc,
                                         cert.public_bytes(Encoding.DER)])
                    conn.commit()

        try:
            return per * threads / timed_threads(work, threads)
        finally:
            for conn in conns:
                conn.close()

    rows, offset = [], 0
    for name, key in keys.items():
        n = args.count if name == "P-256" else args.count // 2
        raw(key, 20)
        raw_rate = raw(key, n)
        for threads in args.threads:
            rate = stored(key, n, threads, offset)
            offset += n
            rows.append((name, threads, f"{rate:,.0f}", f"{raw_rate:,.0f}", f"{rate / raw_rate:.0%}"))
    print(f"\nSign + one INSERT + COMMIT, no pipeline (PostgreSQL, one process; load average {load_before} before, "
          f"{load()} after)")
    print(table(rows, ("CA key", "threads", "stored/s", "raw/s", "ratio")))


if __name__ == "__main__":
    main()
