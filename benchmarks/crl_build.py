"""Time and peak memory to build a CRL with 1,000,000 revoked entries (target: < 20 s, < 1 GiB).

The revoked rows are loaded with COPY first (set-up, not timed). Then ``pki.crl.create_crl`` runs end
to end — query, encode, sign through the token, store — and the result is checked with cryptography
and ``openssl crl -verify``.

    python benchmarks/crl_build.py [--entries 1000000] [--key P-256|RSA2048]
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

from _setup import setup_django, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--key", default="RSA2048")
    args = parser.parse_args()
    setup_django("pki_bench_crl")

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from django.db import connection

    from cryptotokens import services as token_services
    from pki.auth.access import Actor
    from pki.crl import create_crl
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    token = token_services.create_token(actor, name="crlbench", token_type="SoftCryptoToken", auth_code="bench-code",
                                        auto_activate=True)
    ca = create_ca(actor, CASettings(name="CrlBench", subject_dn="CN=CRL Bench CA", crypto_token=token,
                                     key_alias="k", key_spec=args.key))

    # Set-up: COPY the revoked certificates in (tab-separated, the table's own columns).
    started = time.perf_counter()
    buf = io.StringIO()
    reasons = [0, 1, 3, 4, 5, 9]
    for i in range(args.entries):
        serial = secrets.token_hex(20)
        serial = ("5" + serial[1:]).lstrip("0")
        buf.write(f"{ca.pk}\t{serial}\t{serial}{i:024x}\tCN=user{i}\tCN=CRL Bench CA\t\t2026-01-01 00:00:00+00\t"
                  f"2099-01-01 00:00:00+00\t\\\\x00\tREVOKED\t{reasons[i % len(reasons)]}\t"
                  f"2026-06-01 12:{i % 60:02d}:00+00\t\\N\t\t\\N\t\tf\t"
                  "2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n")
    buf.seek(0)
    with connection.cursor() as cur:
        cur.cursor.copy_expert(
            "COPY pki_certificate (ca_id, serial, fingerprint_sha256, subject_dn, issuer_dn, subject_alt_name, "
            "not_before, not_after, der, status, revocation_reason, revoked_at, unrevoked_at, username, "
            "certificate_profile_id, key_algorithm, is_ca, created_at, updated_at) FROM STDIN", buf)
        cur.execute("ANALYZE pki_certificate")
    del buf
    print(f"set-up: {args.entries:,} revoked rows loaded in {time.perf_counter() - started:.1f} s")

    tracemalloc.start()
    started = time.perf_counter()
    crl_row = create_crl(actor, ca)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Untraced second build: the time without tracemalloc's overhead.
    started = time.perf_counter()
    create_crl(actor, ca)
    elapsed_plain = time.perf_counter() - started

    der = bytes(crl_row.der)
    crl = x509.load_der_x509_crl(der)
    assert len(crl) == args.entries, len(crl)
    assert crl.is_signature_valid(ca.certificate.public_key())
    with tempfile.TemporaryDirectory() as tmp:
        open(os.path.join(tmp, "crl.der"), "wb").write(der)
        open(os.path.join(tmp, "ca.pem"), "wb").write(ca.certificate.public_bytes(Encoding.PEM))
        out = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile",
                              "ca.pem"], cwd=tmp, capture_output=True, text=True)
    verified = "verify OK" in out.stdout + out.stderr

    gib = 1024**3
    print(f"\nCRL with {args.entries:,} entries ({args.key} CA key, PostgreSQL)")
    print(table([
        ("build time (create_crl, end to end)", f"{elapsed_plain:.1f} s", "< 20 s"),
        ("build time under tracemalloc", f"{elapsed:.1f} s", ""),
        ("peak Python allocations (tracemalloc)", f"{peak / 2**20:,.0f} MiB", "< 1 GiB"),
        ("process peak RSS, set-up included (ru_maxrss)", f"{rss_after / 1024:,.0f} MiB", "< 1 GiB"),
        ("CRL size", f"{len(der) / 2**20:,.1f} MiB", ""),
        ("cryptography parse + signature", "OK", ""),
        ("openssl crl -verify", "OK" if verified else "FAILED", ""),
    ], ("figure", "measured", "target")))
    assert peak < gib and verified


if __name__ == "__main__":
    main()
