"""Certificates per second through the issuance pipeline vs raw cryptography signing.

The pipeline call is complete: access check, profile rules, signing through the token's key handle
(the token's activation state read from the database first), the certificate row (serial uniqueness
enforced by PostgreSQL), the HMAC-chained audit event and a durable commit. The raw figure is
CertificateBuilder + sign alone, with similar extensions and no database. Keys, CSRs and subject
strings are made before the timed loops.

    python benchmarks/issue_throughput.py [--count 2000] [--threads 1 2 4] [--requests public-key csr]
    ... benchmarks/issue_throughput.py --smoke   # CI: a few certificates, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta

from _setup import load, setup_django, table, timed_threads

TARGETS = {"RSA-2048": 0.60, "P-256": 0.25}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="certificates per P-256 run (RSA runs do half)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4],
                        help="thread counts for the pipeline runs (one process)")
    parser.add_argument("--requests", nargs="+", default=["public-key", "csr"], choices=["public-key", "csr"],
                        help="public-key: public_key + subject_dn; csr: a pre-built PKCS#10 request")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per figure, the best one kept (the machine is shared: others' load only slows)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for the run (CPython's default is 0.005 s)")
    parser.add_argument("--no-group-commit", action="store_true",
                        help="store every certificate in its own transaction (for comparison)")
    parser.add_argument("--smoke", action="store_true", help="a few certificates: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.threads = 20, [1, 2]
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    load_before = load()
    setup_django()

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cryptotokens import services as token_services
    from cryptotokens.models import CryptoToken
    from pki import issuance, issuance_store
    from pki.auth.access import Actor
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    profile = CertificateProfile.objects.get(name="ENDUSER")
    token = token_services.create_token(actor, name="bench", token_type="SoftCryptoToken", auth_code="bench-code",
                                        auto_activate=True)
    cas = {
        "RSA-2048": create_ca(actor, CASettings(name="BenchRSA", subject_dn="CN=Bench RSA CA", crypto_token=token,
                                                key_alias="rsa", key_spec="RSA2048",
                                                crl_distribution_point="http://127.0.0.1/crl/BenchRSA.crl")),
        "P-256": create_ca(actor, CASettings(name="BenchEC", subject_dn="CN=Bench EC CA", crypto_token=token,
                                             key_alias="ec", key_spec="P-256",
                                             crl_distribution_point="http://127.0.0.1/crl/BenchEC.crl")),
    }

    # Requests are made up front: 200 end-entity keys reused, a distinct subject and SAN per certificate.
    most = max(args.count, (5 if args.smoke else 40) * max(args.threads))
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(20 if args.smoke else 200)]
    public_keys = [k.public_key() for k in keys]
    subjects = [f"CN=user{n},O=Bench" for n in range(most)]
    sans = [f"DNSNAME=user{n}.example.com" for n in range(most)]
    csrs = [x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string(f"CN=user{n},O=Bench"))
            .sign(keys[n % len(keys)], hashes.SHA256()) for n in range(most)] if "csr" in args.requests else []

    def raw_rate(ca, n: int) -> float:
        key = token_services.get_private_key(CryptoToken.objects.get(pk=token.pk), ca.key_alias)
        ca_cert = ca.certificate
        hash_alg = hashes.SHA256()
        names = [x509.Name.from_rfc4514_string(s) for s in subjects[:n]]
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
        start = time.perf_counter()
        for i in range(n):
            pub = public_keys[i % len(public_keys)]
            now = datetime.now(UTC)
            (x509.CertificateBuilder()
             .subject_name(names[i])
             .issuer_name(ca_cert.subject).public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(now + timedelta(days=730))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.KeyUsage(True, True, True, False, False, False, False, False, False), True)
             .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False)
             .add_extension(aki, False)
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"user{i}.example.com")]), False)
             .sign(key, hash_alg))
        return n / (time.perf_counter() - start)

    def request(ca, kind: str, n: int) -> IssuanceRequest:
        if kind == "csr":
            return IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csrs[n], subject_alt_name=sans[n])
        return IssuanceRequest(ca=ca, actor=actor, profile=profile, public_key=public_keys[n % len(public_keys)],
                               subject_dn=subjects[n], subject_alt_name=sans[n])

    # Certificates per storing transaction: one thread stores one at a time; concurrent threads' certificates
    # share a group commit (pki.group_commit.GroupCommit).
    stored = {"transactions": 0, "certificates": 0}
    plain_store = issuance_store.store

    def counting_store(items):
        stored["transactions"] += 1
        stored["certificates"] += len(items)
        return plain_store(items)

    issuance_store.store = counting_store
    if args.no_group_commit:
        issuance._group.submit = lambda item: False

    def pipeline_rate(ca, kind: str, n: int, threads: int) -> float:
        per_thread = n // threads

        def work(t: int) -> None:
            try:
                for i in range(t * per_thread, (t + 1) * per_thread):
                    issue(request(ca, kind, i))
            finally:
                connection.close()

        return per_thread * threads / timed_threads(work, threads)

    # Warm up (open the keys, fill caches, first connections), then count the statements of one issuance.
    for ca in cas.values():
        pipeline_rate(ca, args.requests[0], 2 if args.smoke else 20, 1)
        raw_rate(ca, 2 if args.smoke else 20)
    issue(request(cas["P-256"], args.requests[0], 0))  # this thread's session prepares its statements
    with CaptureQueriesContext(connection) as queries:
        issue(request(cas["P-256"], args.requests[0], 1))
    statements = [q["sql"].split(" ")[0] for q in queries.captured_queries]

    rows = []
    for name, ca in cas.items():
        n = args.count if name == "P-256" else args.count // 2
        raw = max(raw_rate(ca, n) for _ in range(args.repeat))
        for kind in args.requests:
            for threads in args.threads:
                stored.update(transactions=0, certificates=0)
                rate = max(pipeline_rate(ca, kind, n, threads) for _ in range(args.repeat))
                per_commit = stored["certificates"] / max(stored["transactions"], 1)
                rows.append((name, kind, threads, f"{rate:,.0f}", f"{raw:,.0f}", f"{rate / raw:.0%}",
                             f"{TARGETS[name]:.0%}", f"{per_commit:.1f}"))
    print(f"\nIssuance throughput (PostgreSQL, one process, {args.count} P-256 / {args.count // 2} RSA certificates "
          f"per run, best of {args.repeat}; load average {load_before} before, {load()} after)")
    print(table(rows, ("CA key", "request", "threads", "pipeline/s", "raw/s", "ratio", "target", "certs/commit")))
    print(f"\nSQL round trips per issuance: {len(statements)} ({', '.join(statements)})")
    from pki.audit import verify_chain

    report = verify_chain()
    print(f"audit chain after the run: {'intact' if report.ok else 'BROKEN'}, {report.checked} events")
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
