"""Time and peak memory to build a CRL with 1,000,000 revoked entries (target: < 5 s, < 300 MiB).

The revoked rows are loaded with COPY first (set-up, not timed; in chunks, so the set-up's own memory
stays small and the build's RSS growth can be read from ru_maxrss). Then ``pki.crl.create_crl`` runs end
to end — rows streamed by COPY and encoded as they arrive, signed through the token, stored — once plain (time,
RSS growth) and once under tracemalloc (peak Python allocations). The rows alone (COPY out, nothing kept) and the
streamed encoding are then timed on their own. The result is checked with cryptography (entry count, signature,
sample serials) and ``openssl crl -verify``.

    python benchmarks/crl_build.py [--entries 1000000] [--key RSA2048|P-256]
    ... benchmarks/crl_build.py --smoke       # CI: 1,000 entries, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import secrets
import subprocess
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from _setup import load, setup_django, table

COPY_CHUNK = 50_000
REASONS = [0, 1, 3, 4, 5, 9]  # unspecified, keyCompromise, affiliationChanged, superseded, cessation, withdrawn


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_revoked(ca, profile_id: int, entries: int) -> list[str]:
    """COPY ``entries`` revoked certificates of ``ca`` in; returns a few of their serials to look up later."""
    from django.db import connection

    columns = ("ca_id, serial, fingerprint_sha256, subject_dn, issuer_dn, subject_alt_name, not_before, not_after, "
               "der, status, revocation_reason, revoked_at, unrevoked_at, username, certificate_profile_id, "
               "key_algorithm, public_key_sha256, revocation_recorded_at, is_ca, created_at, updated_at")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    samples: list[str] = []
    with connection.cursor() as cur:
        for first in range(0, entries, COPY_CHUNK):
            buf = io.StringIO()
            for i in range(first, min(first + COPY_CHUNK, entries)):
                # 20 random bytes, positive, no leading zero nibble (the stored form of a serial).
                serial = format(secrets.randbits(159) | (1 << 155), "x")
                # Distinct revocation times (one per 10 s over four months): no shortcut from repeated values.
                revoked = (start + timedelta(seconds=10 * i)).strftime("%Y-%m-%d %H:%M:%S+00")
                buf.write(f"{ca.pk}\t{serial}\t{secrets.token_hex(32)}\tCN=user{i}\tCN=CRL Bench CA\t\t"
                          f"2026-01-01 00:00:00+00\t2099-01-01 00:00:00+00\t\\\\x00\tREVOKED\t"
                          f"{REASONS[i % len(REASONS)]}\t{revoked}\t\\N\t\t{profile_id}\tEC P-256\t"
                          f"{secrets.token_hex(32)}\t{revoked}\tf\t"
                          "2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n")
                if i % (entries // 5 or 1) == 0:
                    samples.append(serial)
            buf.seek(0)
            cur.cursor.copy_expert(f"COPY pki_certificate ({columns}) FROM STDIN", buf)
        # As a database whose revocations are days old: statistics, visibility map and hint bits set (the first
        # scan after a bulk load would otherwise write every page it reads).
        cur.execute("VACUUM ANALYZE pki_certificate")
    return samples


def openssl_verify(der: bytes, ca_pem: bytes) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "crl.der"), "wb") as f:
            f.write(der)
        with open(os.path.join(tmp, "ca.pem"), "wb") as f:
            f.write(ca_pem)
        out = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify",
                              "-CAfile", "ca.pem"], cwd=tmp, capture_output=True, text=True)
    return out.returncode == 0 and "verify OK" in out.stdout + out.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--key", default="RSA2048", help="CA key: RSA2048 or P-256")
    parser.add_argument("--smoke", action="store_true", help="1,000 entries: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.entries = 1000
    load_before = load()
    setup_django("pki_bench_crl")

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from django.db import connection, transaction

    from cryptotokens import services as token_services
    from pki import crl as crl_module
    from pki.auth.access import Actor
    from pki.choices import CertificateStatus
    from pki.models import Certificate, CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    token = token_services.create_token(actor, name="crlbench", token_type="SoftCryptoToken", auth_code="bench-code",
                                        auto_activate=True)
    ca = create_ca(actor, CASettings(name="CrlBench", subject_dn="CN=CRL Bench CA", crypto_token=token,
                                     key_alias="k", key_spec=args.key))
    profile_id = CertificateProfile.objects.get(name="ENDUSER").pk

    started = time.perf_counter()
    samples = load_revoked(ca, profile_id, args.entries)
    print(f"set-up: {args.entries:,} revoked rows loaded with COPY in {time.perf_counter() - started:.1f} s")
    connection.close()  # the build starts on a fresh connection, as a worker's would

    # 1. End to end, plain: time and growth of the process's peak RSS.
    rss_before = maxrss_mib()
    started = time.perf_counter()
    crl_row = crl_module.create_crl(actor, ca)
    elapsed = time.perf_counter() - started
    rss_growth = maxrss_mib() - rss_before
    der = bytes(crl_row.der)
    del crl_row

    # 2. End to end under tracemalloc: peak of Python's own allocations (slower: every allocation is traced).
    tracemalloc.start()
    started = time.perf_counter()
    traced_row = crl_module.create_crl(actor, ca)
    elapsed_traced = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del traced_row

    # 3. The steps on their own: the rows alone (the same COPY into a sink that keeps nothing: the server's scan
    # and the transfer), the rows streamed and encoded as create_crl does it (the encoding overlaps the scan), and
    # the signature over the finished TBSCertList.
    revoked = Certificate.objects.filter(ca=ca).exclude(status=CertificateStatus.ACTIVE)
    with transaction.atomic():
        started = time.perf_counter()
        with connection.cursor() as cur:
            cur.cursor.copy_expert(crl_module.entry_copy_sql(revoked, cur.cursor),
                                   type("Null", (), {"write": staticmethod(len)})())
        query_time = time.perf_counter() - started
    with transaction.atomic():
        started = time.perf_counter()
        entries_der, count = crl_module.copy_entries(revoked)
        stream_time = time.perf_counter() - started
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    crl_module.build_crl_der(ca, 999, now, now + timedelta(days=1), entries_der)
    assemble_sign_time = time.perf_counter() - started
    del entries_der

    crl = x509.load_der_x509_crl(der)
    ca_cert = ca.certificate
    parsed_ok = (len(crl) == args.entries and count == args.entries
                 and crl.is_signature_valid(ca_cert.public_key())
                 and all(crl.get_revoked_certificate_by_serial_number(int(s, 16)) is not None for s in samples))
    openssl_ok = openssl_verify(der, ca_cert.public_bytes(Encoding.PEM))

    print(f"\nCRL with {args.entries:,} entries ({args.key} CA key, PostgreSQL; load average "
          f"{load_before} before, {load()} after)")
    print(table([
        ("create_crl end to end (query, encode, sign, store)", f"{elapsed:.1f} s", "< 5 s"),
        ("  the rows alone (COPY out, nothing kept)", f"{query_time:.1f} s", ""),
        ("  rows streamed and encoded as they arrive", f"{stream_time:.1f} s", ""),
        ("  assembling and signing the TBSCertList", f"{assemble_sign_time:.2f} s", ""),
        ("create_crl under tracemalloc", f"{elapsed_traced:.1f} s", ""),
        ("peak Python allocations (tracemalloc)", f"{peak / 2**20:,.0f} MiB", "< 300 MiB"),
        ("process peak RSS growth during create_crl (ru_maxrss)", f"{rss_growth:,.0f} MiB", "< 300 MiB"),
        ("process peak RSS before the build (set-up included)", f"{rss_before:,.0f} MiB", ""),
        ("CRL size", f"{len(der) / 2**20:,.1f} MiB", ""),
        ("cryptography: entries, signature, sample serials", "OK" if parsed_ok else "FAILED", ""),
        ("openssl crl -verify", "OK" if openssl_ok else "FAILED", ""),
    ], ("figure", "measured", "target")))
    if not (parsed_ok and openssl_ok and peak < 2**30 and rss_growth < 1024):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
