"""Signatures per second through each crypto token backend's key handle, next to raw cryptography.

Soft RSA-3072 and P-256 (target: within 10% of raw cryptography), AWS KMS through boto3 against a
local moto server (moto closes the connection after every request, so this mostly measures moto).
The PKCS#11 rows appear once that backend is installed (SoftHSM2).

    python benchmarks/token_sign.py [--seconds 3]
    ... benchmarks/token_sign.py --smoke      # CI: a few signatures each, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _setup import ROOT, setup_django, table


def rate(sign, seconds: float) -> float:
    sign()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sign()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--smoke", action="store_true", help="a few signatures each: check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 0.05
    setup_django("pki_bench_tokens")

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from django.conf import settings

    from cryptotokens import services
    from cryptotokens.backends import KeySpec
    from pki.auth.access import Actor

    actor = Actor.system_actor("bench")
    data = os.urandom(512)

    def signer(key):
        if isinstance(key, rsa.RSAPrivateKey):
            return lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return lambda: key.sign(data, ec.ECDSA(hashes.SHA256()))

    rows = []
    soft = services.create_token(actor, name="soft", token_type="SoftCryptoToken", auth_code="bench-code",
                                 auto_activate=True)
    for spec in ("RSA3072", "P-256"):
        services.generate_key_pair(actor, soft, spec, spec)
        raw = rate(signer(KeySpec.parse(spec).generate_software_key()), args.seconds)
        handle_rate = rate(signer(services.get_private_key_by_id(soft.pk, spec)), args.seconds)
        rows.append(("soft", spec, f"{handle_rate:,.0f}", f"{raw:,.0f}", f"{handle_rate / raw:.0%}", ">= 90%"))
        # As issuance does it: the token's activation state is read from the database before each signature.
        checked = rate(lambda spec=spec: signer(services.get_private_key_by_id(soft.pk, spec))(), args.seconds)
        rows.append(("soft + state check", spec, f"{checked:,.0f}", f"{raw:,.0f}", f"{checked / raw:.0%}", "—"))

    rows.extend(_pkcs11_rows(actor, signer, rate, args.seconds))

    sys.path.insert(0, str(ROOT))
    from tests.cryptotokens.aws_moto import MotoServer

    moto = MotoServer().start()
    try:
        settings.AWS_KMS_ENDPOINT_URL = moto.url
        kms = services.create_token(actor, name="kms", token_type="AWSKMSCryptoToken", auth_code="testing",
                                    auto_activate=True, properties={"auth_method": "ACCESS_KEY",
                                                                     "region": "us-east-1", "access_key_id": "testing"})
        for spec in ("RSA3072", "P-256"):
            services.generate_key_pair(actor, kms, f"kms-{spec}", spec)
            raw = rate(signer(KeySpec.parse(spec).generate_software_key()), args.seconds)
            handle = services.get_private_key_by_id(kms.pk, f"kms-{spec}")
            kms_rate = rate(signer(handle), args.seconds)
            rows.append(("AWS KMS (moto)", spec, f"{kms_rate:,.0f}", f"{raw:,.0f}", f"{kms_rate / raw:.1%}", "—"))
    finally:
        moto.stop()

    print(f"\nSignatures per second (SHA-256 over 512 bytes, {args.seconds:g} s each)")
    print(table(rows, ("backend", "key", "through handle/s", "raw cryptography/s", "ratio", "target")))


def _pkcs11_rows(actor, signer, rate, seconds: float) -> list[tuple]:
    """SoftHSM2 through the backend's handle, next to python-pkcs11 alone on one reused session."""
    import secrets
    import subprocess
    import tempfile

    import pkcs11
    from django.conf import settings
    from pkcs11 import Mechanism, ObjectClass

    from cryptotokens import services

    module = "/usr/lib/softhsm/libsofthsm2.so"
    if not os.path.exists(module):
        return [("PKCS#11", "-", "SoftHSM2 not installed", "", "", "")]
    root = tempfile.mkdtemp()
    os.makedirs(f"{root}/tokens")
    with open(f"{root}/softhsm2.conf", "w") as fh:
        fh.write(f"directories.tokendir = {root}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = f"{root}/softhsm2.conf"
    label = "bench" + secrets.token_hex(3)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "1234", "--so-pin",
                    "12345678"], check=True, capture_output=True)
    settings.PKCS11_LIBRARIES = {"SoftHSM2": module}
    token = services.create_token(actor, name="hsm", token_type="PKCS11CryptoToken", auth_code="1234",
                                  auto_activate=True, properties={"library": "SoftHSM2",
                                                                  "reference_type": "SLOT_LABEL", "reference": label})
    rows = []
    data = os.urandom(512)
    for spec, mech in (("RSA3072", Mechanism.SHA256_RSA_PKCS), ("P-256", Mechanism.ECDSA)):
        services.generate_key_pair(actor, token, spec, spec)
        handle = services.get_private_key_by_id(token.pk, spec)
        through = rate(signer(handle), seconds)
        # python-pkcs11 alone, on a session that shares the backend's login, no wrapper around it.
        session = pkcs11.lib(module).get_token(token_label=label).open()  # shares the backend's login
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=spec)
        if mech == Mechanism.ECDSA:
            import hashlib

            alone = rate(lambda key=key, mech=mech: key.sign(hashlib.sha256(data).digest(), mechanism=mech), seconds)
        else:
            alone = rate(lambda key=key, mech=mech: key.sign(data, mechanism=mech), seconds)
        rows.append(("PKCS#11 (SoftHSM2)", spec, f"{through:,.0f}", f"{alone:,.0f} (python-pkcs11)",
                     f"{through / alone:.0%}", ">= 75%"))
    pkcs11.lib(module)  # keep the library loaded until the process ends
    return rows


if __name__ == "__main__":
    main()
