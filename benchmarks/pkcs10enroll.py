"""REST ``POST /v1/certificate/pkcs10enroll`` end to end: HTTP client -> gunicorn (2 workers) -> PostgreSQL.

Each request is complete: session authentication and CSRF check, JSON parsing, the CSR's signature check,
the end entity row locked and its enrollment code checked (PBKDF2, PKI_ENROLLMENT_CODE_ITERATIONS rounds),
issuance (profile rules, signing with the CA's P-256 soft-token key, the certificate row, the audit events),
the end entity set GENERATED in the same transaction, a durable commit, and the JSON answer with the chain.

Two modes: ``existing`` enrolls end entities added beforehand (username + enrollment code, the SCEP/RA
flow); ``new`` lets pkcs10enroll add each end entity first (EJBCA's behaviour for an unknown username).

    python benchmarks/pkcs10enroll.py [--count 400] [--clients 4] [--modes existing new]
    ... benchmarks/pkcs10enroll.py --smoke    # CI: a few requests, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from _setup import ROOT, load, setup_django, table

DATABASE = "pki_bench_pkcs10"
V1 = "/ejbca/ejbca-rest-api/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early; see its log")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", f"{V1}/endentity/status")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=400, help="requests per mode")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (keep-alive connections)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--modes", nargs="+", default=["existing", "new"], choices=["existing", "new"])
    parser.add_argument("--iterations", type=int, default=None,
                        help="PKI_ENROLLMENT_CODE_ITERATIONS for this run (PBKDF2 rounds of the stored codes)")
    parser.add_argument("--smoke", action="store_true", help="a few requests: check that it runs")
    args = parser.parse_args()
    warm = 20  # requests that warm up both workers before the clock starts
    if args.smoke:
        args.count, args.clients, warm = 6, 2, 2
        args.iterations = args.iterations or 1000  # the enrollment codes are hashed once each at set-up
    if args.iterations:
        os.environ["PKI_ENROLLMENT_CODE_ITERATIONS"] = str(args.iterations)
    load_before = load()
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-" + secrets.token_hex(16))
    setup_django(DATABASE)

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from cryptotokens import services as token_services
    from endentities.services import add_end_entity, ensure_empty_profile
    from endentities.validation import EndEntityInput
    from pki.auth.access import Actor
    from pki.choices import MemberMatch
    from pki.models import AccessRule, Role, RoleMember
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    ensure_empty_profile()
    token = token_services.create_token(actor, name="bench", token_type="SoftCryptoToken", auth_code="bench-code",
                                        auto_activate=True)
    create_ca(actor, CASettings(name="BenchCA", subject_dn="CN=Bench CA,O=Bench", crypto_token=token,
                                key_alias="ec", key_spec="P-256", crl_distribution_point="http://127.0.0.1/crl/b.crl"))
    # A superadmin with a session (Basic authentication would spend a full Django password hash per request).
    user = get_user_model().objects.create_user("benchadmin", password=secrets.token_urlsafe(16))
    role = Role.objects.create(name="bench-superadmin")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=user.username)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    csrf = secrets.token_hex(16)  # 32 characters: Django's unmasked CSRF secret form

    # One key per request: the CA enforces unique public keys (EJBCA's default), as devices have their own.
    csrs = [x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, f"device{n}")]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(Encoding.PEM).decode()
        for n in range(2 * args.count + warm)]  # existing, warm-up, new: no key twice
    print(f"adding {args.count + warm} end entities ...", flush=True)
    for n in range(args.count + warm):
        add_end_entity(actor, EndEntityInput(username=f"ee{n}", password=f"code-{n}", subject_dn=f"CN=ee{n},O=Bench",
                                             ca="BenchCA", certificate_profile="ENDUSER"))

    from django.db import connections

    connections.close_all()
    port = _free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"pki-bench-pkcs10-{port}.log"
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with log.open("w") as handle:
        proc = subprocess.Popen([str(gunicorn), "pki.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
                                 str(args.workers), "--worker-class", "sync", "--keep-alive", "30"],
                                cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(port, proc)
        headers = {"Content-Type": "application/json", "X-CSRFToken": csrf,
                   "Cookie": f"sessionid={session.session_key}; csrftoken={csrf}"}

        def body(mode: str, n: int) -> str:
            if mode == "existing":
                return json.dumps({"certificate_request": csrs[n], "username": f"ee{n}", "password": f"code-{n}",
                                   "include_chain": True})
            # Keys of their own: the existing-mode run and the warm-up used csrs[0:count + warm], and the CA
            # refuses a public key another end entity already has.
            return json.dumps({"certificate_request": csrs[args.count + warm + n], "username": f"new{n}",
                               "password": f"new-{n}",
                               "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "EMPTY",
                               "certificate_authority_name": "BenchCA", "include_chain": True})

        def run(mode: str, indexes: list[int]) -> tuple[float, list[float]]:
            chunks = [indexes[i::args.clients] for i in range(args.clients)]
            latencies: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()
            barrier = threading.Barrier(args.clients + 1)

            def client(chunk: list[int]) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                barrier.wait()
                for n in chunk:
                    t0 = time.perf_counter()
                    conn.request("POST", f"{V1}/certificate/pkcs10enroll", body=body(mode, n), headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    took = time.perf_counter() - t0
                    with lock:
                        latencies.append(took)
                        if resp.status != 201:
                            errors.append(f"{resp.status} {data[:200]!r}")

            threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
            for t in threads:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            if errors:
                raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
            return len(indexes) / elapsed, sorted(latencies)

        run("existing", list(range(args.count, args.count + warm)))  # warm up both workers
        rows = []
        for mode in args.modes:
            rate, lat = run(mode, list(range(args.count)))
            rows.append((mode, args.workers, args.clients, args.count, f"{rate:,.0f}",
                         f"{lat[len(lat) // 2] * 1000:.0f}", f"{lat[int(len(lat) * 0.95)] * 1000:.0f}"))
        print(table(rows, ("mode", "workers", "clients", "requests", "enrolls/s", "p50 ms", "p95 ms")))
        from django.conf import settings

        print(f"enrollment code hash: PBKDF2-SHA256, {settings.PKI_ENROLLMENT_CODE_ITERATIONS:,} rounds")
        print(f"load average before: {load_before}, after: {load()}")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


if __name__ == "__main__":
    main()
