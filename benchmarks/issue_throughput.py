"""Certificates per second through the issuance pipeline vs raw cryptography signing.

The pipeline call is complete: access check, profile rules, signing through the token's key handle,
the certificate row (serial uniqueness enforced by PostgreSQL), the HMAC-chained audit event and the
commit. The raw figure is CertificateBuilder + sign alone, with similar extensions and no database.

    python benchmarks/issue_throughput.py [--count 2000] [--threads 1 4]
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import UTC, datetime, timedelta

from _setup import setup_django, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="certificates per P-256 run (RSA runs do half)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4],
                        help="thread counts for the pipeline runs (one process)")
    args = parser.parse_args()
    setup_django()

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from django.db import connection

    from cryptotokens import services as token_services
    from cryptotokens.models import CryptoToken
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
    keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(200)]

    def raw_rate(ca, n: int) -> float:
        key = token_services.get_private_key(CryptoToken.objects.get(pk=token.pk), ca.key_alias)
        ca_cert = ca.certificate
        hash_alg = hashes.SHA256()
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
        start = time.perf_counter()
        for i in range(n):
            pub = keys[i % len(keys)]
            now = datetime.now(UTC)
            (x509.CertificateBuilder()
             .subject_name(x509.Name.from_rfc4514_string(f"CN=user{i},O=Bench"))
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

    def pipeline_rate(ca, n: int, threads: int) -> float:
        per_thread = n // threads
        barrier = threading.Barrier(threads + 1)

        def work(offset: int) -> None:
            barrier.wait()
            try:
                for i in range(per_thread):
                    n = offset + i
                    issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, public_key=keys[n % len(keys)],
                                          subject_dn=f"CN=user{n},O=Bench",
                                          subject_alt_name=f"DNSNAME=user{n}.example.com"))
            finally:
                connection.close()

        workers = [threading.Thread(target=work, args=(t * per_thread,)) for t in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        return per_thread * threads / (time.perf_counter() - start)

    # Warm up: open the keys, fill caches, first connections.
    for ca in cas.values():
        pipeline_rate(ca, 20, 1)
        raw_rate(ca, 20)

    rows = []
    targets = {"RSA-2048": 0.60, "P-256": 0.25}
    for name, ca in cas.items():
        n = args.count if name == "P-256" else args.count // 2
        raw = raw_rate(ca, n)
        for threads in args.threads:
            rate = pipeline_rate(ca, n, threads)
            rows.append((name, threads, f"{rate:,.0f}", f"{raw:,.0f}", f"{rate / raw:.0%}", f"{targets[name]:.0%}"))
    print(f"\nIssuance throughput (PostgreSQL, one process, {args.count} P-256 / {args.count // 2} RSA certificates)")
    print(table(rows, ("CA key", "threads", "pipeline/s", "raw/s", "ratio", "target")))
    from pki.audit import verify_chain

    report = verify_chain()
    print(f"\naudit chain after the run: {'intact' if report.ok else 'BROKEN'}, {report.checked} events")


if __name__ == "__main__":
    main()
