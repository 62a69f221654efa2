"""OCSP responses per second through the HTTP endpoint, next to raw ``cryptography`` building and signing.

The server is gunicorn as ``make run`` starts it (2 workers of 4 threads) on PostgreSQL, with a P-256 CA
and an active P-256 OCSP key binding that signs the answers. The requests (one certificate each, SHA-1
CertID, a nonce, as OpenSSL sends them) are built before the clock starts and POSTed by 8 keep-alive
clients; every answer is then parsed and checked (successful, signed by the binding, status good, the
nonce echoed). The raw rate is ``cryptography``'s OCSPResponseBuilder signing one good answer with a
P-256 key in this process, the least any responder does per request. Prints both, the ratio and the
load average.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/ocsp.py [-n 2000] [-c 8]
    ... benchmarks/ocsp.py --smoke        # CI: a few requests, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _setup import ROOT, load, post_all, setup_django, table

DATABASE = "pki_bench_ocsp"
TARGET = 0.40


def prepare(n: int):
    """A P-256 CA, an OCSP binding and ``n`` certificates; returns (CA certificate, certificates)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from cryptotokens import services as tokens
    from keybindings.models import InternalKeyBinding
    from pki.auth.access import Actor
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    token = tokens.create_token(actor, name="OcspBench", token_type="SoftCryptoToken", auth_code="foo123",
                                auto_activate=True)
    ca = create_ca(actor, CASettings(name="OcspBenchCA", subject_dn="CN=OCSP Bench CA,O=Bench,C=SE",
                                     crypto_token=token, key_alias="caKey", key_spec="P-256"))
    tokens.generate_key_pair(actor, token, "ocspKey", "P-256")
    responder = issue(IssuanceRequest(
        ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="OCSPSIGNER"),
        public_key=tokens.get_private_key(token, "ocspKey").public_key(),
        subject_dn="CN=OCSP Bench Responder,O=Bench,C=SE", username="ocsp-bench")).row
    InternalKeyBinding.objects.create(name="ocsp-bench", binding_type="OcspKeyBinding", crypto_token=token,
                                      key_pair_alias="ocspKey", certificate=responder)
    profile = CertificateProfile.objects.get(name="ENDUSER")
    certs = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        certs.append(issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, public_key=key,
                                           subject_dn=f"CN=ocsp-bench-{i},O=Bench,C=SE",
                                           username=f"ocsp-bench-{i}")).row.certificate)
    return ca.certificate, responder.certificate, certs


def build_requests(ca_cert, certs) -> list[tuple[bytes, bytes]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    out = []
    for cert in certs:
        nonce = secrets.token_bytes(16)
        req = (ocsp.OCSPRequestBuilder().add_certificate(cert, ca_cert, hashes.SHA1())
               .add_extension(x509.OCSPNonce(nonce), critical=False).build())
        out.append((req.public_bytes(Encoding.DER), nonce))
    return out


def check(requests, replies, responder) -> int:
    """How many replies are not a good answer signed by the binding with the request's nonce."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    bad = 0
    key = responder.public_key()
    for (_, nonce), body in zip(requests, replies, strict=True):
        try:
            r = ocsp.load_der_ocsp_response(body)
            key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(r.signature_hash_algorithm))
            ok = (r.certificate_status == ocsp.OCSPCertStatus.GOOD
                  and r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce)
        except Exception:  # noqa: BLE001 - every unreadable reply counts as a failure
            ok = False
        bad += not ok
    return bad


def raw_rate(ca_cert, certs, seconds: float) -> float:
    """Responses per second that cryptography builds and signs with a P-256 key on one thread."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name.from_rfc4514_string("CN=raw responder")
    signer = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
              .sign(key, hashes.SHA256()))
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        cert = certs[done % len(certs)]
        (ocsp.OCSPResponseBuilder()
         .add_response(cert=cert, issuer=ca_cert, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
                       this_update=now, next_update=now + timedelta(minutes=5), revocation_time=None,
                       revocation_reason=None)
         .responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
         .sign(key, hashes.SHA256()))
        done += 1
    return done / (time.perf_counter() - started)


def start_gunicorn(tmp: Path) -> tuple[subprocess.Popen, str]:
    from tests.protocols.scep.live import free_port

    port = free_port()
    env = {**os.environ, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    log = (tmp / "gunicorn.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "pki.wsgi", "--bind",
                             f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited: {(tmp / 'gunicorn.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(base + "/ocsp", timeout=5).close()  # noqa: S310 - loopback
            return proc, base
        except urllib.error.HTTPError:
            return proc, base
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="requests (one certificate each)")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--smoke", action="store_true", help="a few requests: check that it runs")
    args = parser.parse_args()
    n = 16 if args.smoke else args.n
    setup_django(DATABASE)
    import tempfile

    ca_cert, responder, certs = prepare(min(n, 200))
    requests = build_requests(ca_cert, [certs[i % len(certs)] for i in range(n)])
    raw = raw_rate(ca_cert, certs, 0.2 if args.smoke else 3.0)
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_gunicorn(Path(tmp))
        try:
            post_all(base + "/ocsp", [r[0] for r in requests[: args.c]], "application/ocsp-request", args.c)  # warm
            seconds, latencies, replies = post_all(base + "/ocsp", [r[0] for r in requests],
                                                   "application/ocsp-request", args.c)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    failed = check(requests, replies, responder)
    rate = n / seconds
    latencies.sort()
    print(f"OCSP responder, P-256 binding, gunicorn 2x4, PostgreSQL, {n} requests, concurrency {args.c}, "
          f"load {load()}")
    print(table([
        ("pki /ocsp (HTTP)", f"{rate:.0f}", f"{statistics.median(latencies) * 1000:.1f}",
         f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f}", failed),
        ("cryptography build+sign (1 thread)", f"{raw:.0f}", "", "", ""),
    ], ("", "responses/s", "p50 ms", "p99 ms", "failed")))
    print(f"ratio {rate / raw:.2f} of raw (target {TARGET:.2f})")
    if failed:
        raise SystemExit(f"{failed} answers were wrong")


if __name__ == "__main__":
    main()
