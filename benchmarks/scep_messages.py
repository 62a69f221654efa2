"""Cost of the SCEP message layer per enrollment, without database or HTTP: what the server spends on a
PKCSReq before and after the issuance pipeline (parse + verify the client's signature, decrypt the envelope,
read the CSR and verify its self-signature, build and sign the CertRep with the certificate encrypted to the
client). RSA-2048 keys everywhere, AES-256, SHA-256, as in ``scep_enroll.py``.

Two of these steps are RSA-2048 private-key operations (decrypt, sign); the table puts the raw cost of one
next to the figures so the layer's own overhead is visible.

    python benchmarks/scep_messages.py [--count 500] [--cipher aes256] [--digest sha256]
    ... benchmarks/scep_messages.py --smoke   # CI: a few messages, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.x509.oid import AttributeOID, NameOID  # noqa: E402

from protocols.scep.messages import (  # noqa: E402
    PkiStatus,
    build_cert_rep,
    decrypt_envelope,
    parse_csr,
    parse_pki_message,
)
from protocols.scep.messages.client import build_pkcs_req, parse_cert_rep  # noqa: E402


def _cert(key, subject: str, issuer_key=None, issuer: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or subject)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .sign(issuer_key or key, hashes.SHA256()))


def _table(rows: list[tuple], headers: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([line.format(*headers), line.format(*("-" * w for w in widths)), *(line.format(*r) for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="enrollments to process")
    parser.add_argument("--clients", type=int, default=8, help="distinct client keys (key generation is slow)")
    parser.add_argument("--cipher", default="aes256")
    parser.add_argument("--digest", default="sha256")
    parser.add_argument("--smoke", action="store_true", help="a few messages: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.clients = 10, 2

    ca_key = rsa.generate_private_key(65537, 2048)
    ca_cert = _cert(ca_key, "Bench SCEP CA")
    clients = []
    for i in range(args.clients):
        key = rsa.generate_private_key(65537, 2048)
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"device{i}")]))
               .add_attribute(AttributeOID.CHALLENGE_PASSWORD, b"secret").sign(key, hashes.SHA256()))
        clients.append((key, _cert(key, f"device{i}"), csr, _cert(key, f"device{i}", ca_key, "Bench SCEP CA")))
    requests = [build_pkcs_req(c[2], c[1], c[0], ca_cert, cipher=args.cipher, digest=args.digest).data
                for c in (clients[i % len(clients)] for i in range(args.count))]

    steps = {"parse + verify signature": [], "decrypt envelope": [], "read CSR + verify it": [],
             "build CertRep (sign, encrypt)": [], "total server side": []}
    raw = {"raw RSA-2048 sign": [], "raw RSA-2048 decrypt": []}
    data = os.urandom(256)
    ciphertext = ca_key.public_key().encrypt(os.urandom(32), padding.PKCS1v15())
    replies = []
    for n, body in enumerate(requests):
        # the raw private-key operations, timed in the same iteration so the machine's load hits both alike
        r0 = time.perf_counter()
        ca_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r1 = time.perf_counter()
        ca_key.decrypt(ciphertext, padding.PKCS1v15())
        r2 = time.perf_counter()
        raw["raw RSA-2048 sign"].append(r1 - r0)
        raw["raw RSA-2048 decrypt"].append(r2 - r1)
        issued = clients[n % len(clients)][3]
        t0 = time.perf_counter()
        message = parse_pki_message(body)
        t1 = time.perf_counter()
        inner = decrypt_envelope(message, ca_key, ca_cert)
        t2 = time.perf_counter()
        parse_csr(inner.content, message=message)
        t3 = time.perf_counter()
        reply = build_cert_rep(request=message, envelope=inner, status=PkiStatus.SUCCESS,
                               issued_certs=[issued, ca_cert], signer_cert=ca_cert, signer_key=ca_key)
        t4 = time.perf_counter()
        for name, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            steps[name].append(value)
        replies.append(reply)

    # every reply is checked, outside the timing
    for n, reply in enumerate(replies):
        key, cert, _csr, issued = clients[n % len(clients)]
        result = parse_cert_rep(reply, key, cert, ca_certs=[ca_cert])
        assert result.status == PkiStatus.SUCCESS and result.certificates[0] == issued

    rows = [(name, f"{statistics.median(v) * 1000:.3f}", f"{statistics.quantiles(v, n=100)[98] * 1000:.3f}")
            for name, v in (*steps.items(), *raw.items())]
    total = statistics.median(steps["total server side"])
    raw_sign, raw_decrypt = (statistics.median(v) for v in raw.values())
    print(f"SCEP message layer, {args.count} PKCSReq, RSA-2048, {args.cipher}, {args.digest}, "
          f"load {os.getloadavg()[0]:.1f}")
    print(_table(rows, ("step", "p50 ms", "p99 ms")))
    print(f"\nserver-side message work: {1 / total:,.0f} enrollments/s on one core; "
          f"layer overhead beyond the two RSA private operations: {(total - raw_sign - raw_decrypt) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
