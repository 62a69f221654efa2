"""Where one issuance spends its time: SQL statements per call and a cProfile of N calls.

    python benchmarks/profile_issue.py [--count 500] [--key P-256|RSA2048] [--csr]
    ... benchmarks/profile_issue.py --smoke   # CI: a few issuances, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

from _setup import setup_django


def backend_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a local PostgreSQL backend process so far; None when it is not readable
    (a server on another host or in a container)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--key", default="P-256")
    parser.add_argument("--csr", action="store_true", help="send pre-built CSRs instead of public keys")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--cpu", action="store_true", help="profile CPU time (time.process_time), not wall time")
    parser.add_argument("--no-profile", action="store_true", help="the figures only, no cProfile run")
    parser.add_argument("--smoke", action="store_true", help="a few issuances: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.top = 10, 5
    rounds = 10 if args.smoke else 200  # statement timings, and below the COMMIT timings
    setup_django("pki_bench_profile")

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cryptotokens import services as token_services
    from pki.auth.access import Actor
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    profile = CertificateProfile.objects.get(name="ENDUSER")
    token = token_services.create_token(actor, name="prof", token_type="SoftCryptoToken", auth_code="bench-code",
                                        auto_activate=True)
    ca = create_ca(actor, CASettings(name="Prof", subject_dn="CN=Profile CA", crypto_token=token, key_alias="k",
                                     key_spec=args.key, crl_distribution_point="http://127.0.0.1/crl/Prof.crl"))
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(50)]
    csrs = [x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string(f"CN=user{i},O=Bench"))
            .sign(k, hashes.SHA256()) for i, k in enumerate(keys)]

    def one(n: int) -> None:
        if args.csr:
            req = IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csrs[n % len(csrs)],
                                  subject_alt_name=f"DNSNAME=user{n}.example.com")
        else:
            req = IssuanceRequest(ca=ca, actor=actor, profile=profile, public_key=keys[n % len(keys)].public_key(),
                                  subject_dn=f"CN=user{n},O=Bench", subject_alt_name=f"DNSNAME=user{n}.example.com")
        issue(req)

    for i in range(3 if args.smoke else 20):
        one(i)
    with CaptureQueriesContext(connection) as ctx:
        one(10_000)
    print(f"SQL statements per issuance: {len(ctx.captured_queries)}")
    for q in ctx.captured_queries:
        print("  ", q["sql"][:150])

    timings: dict[str, list[float]] = {}

    def timed(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.setdefault(sql.split("(")[0][:60], []).append(time.perf_counter() - t0)

    with connection.execute_wrapper(timed):
        for i in range(rounds):
            one(40_000 + i)
    print("\nmean time per statement (client side, ms):")
    for sql, ts in timings.items():
        print(f"  {sum(ts) / len(ts) * 1000:6.3f}  {sql}")
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_commit (n int)")  # not TEMP: its commits are flushed
    raw = connection.connection
    raw.autocommit = False  # Django's connection is in autocommit mode: COMMIT would have nothing to flush
    commit_t = []
    for i in range(rounds + 100):
        with raw.cursor() as cur:
            cur.execute("INSERT INTO bench_commit VALUES (%s)", [i])
        t0 = time.perf_counter()
        raw.commit()
        commit_t.append(time.perf_counter() - t0)
    print(f"  {sorted(commit_t)[len(commit_t) // 2] * 1000:6.3f}  COMMIT of a one-row insert (median)")
    raw.autocommit = True
    with connection.cursor() as cur:
        cur.execute("DROP TABLE bench_commit")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    server_before = backend_cpu(backend)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(args.count):
        one(20_000 + i)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    server_after = backend_cpu(backend)
    server = (f"{(server_after - server_before) / args.count * 1000:.2f} ms CPU of its PostgreSQL backend"
              if server_before is not None and server_after is not None else "PostgreSQL's CPU not readable here")
    print(f"\n{args.count / wall:,.0f} issuances/s without the profiler; per issuance "
          f"{wall / args.count * 1000:.2f} ms wall, {cpu / args.count * 1000:.2f} ms CPU of this process, {server}")

    if args.no_profile:
        return
    prof = cProfile.Profile(time.process_time) if args.cpu else cProfile.Profile()
    prof.enable()
    for i in range(args.count):
        one(30_000 + i)
    prof.disable()
    stats = pstats.Stats(prof).sort_stats("tottime")
    stats.print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
