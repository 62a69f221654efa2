"""AWS KMS key handles refuse to decrypt, clearly: KMS decrypts only with RSAES_OAEP_SHA_1/SHA_256 and only with
ENCRYPT_DECRYPT keys, while a KMS crypto token's keys are SIGN_VERIFY. Against a moto KMS server.
Fixtures: tests/cryptotokens/test_aws.py."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cryptotokens import services
from cryptotokens.backends import aws
from cryptotokens.errors import CryptoTokenError

from . import test_aws
from .test_aws import unique

# The moto server and token fixtures of test_aws, shared by name (pytest finds module attributes).
globals().update({name: getattr(test_aws, name)
                  for name in ("moto_kms", "kms", "admin_kms", "kms_token_factory", "kms_token", "kms_calls")})

SECRET = b"a 32-byte AES content key ......"
PADDINGS = {
    "pkcs1v15": padding.PKCS1v15(),
    "oaep-sha1": padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    "oaep-sha256": padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
}


@pytest.mark.parametrize("pad", PADDINGS.values(), ids=PADDINGS.keys())
def test_kms_keys_refuse_to_decrypt_and_say_why(kms_token, actor, kms_calls, pad):
    services.generate_key_pair(actor, kms_token, alias := unique("scep-ca"), "RSA2048")
    key = services.get_private_key(kms_token, alias)
    ciphertext = key.public_key().encrypt(SECRET, pad)
    before = len(kms_calls)
    with pytest.raises(CryptoTokenError) as caught:
        key.decrypt(ciphertext, pad)
    message = str(caught.value)
    assert f"The key '{alias}' of crypto token 'KmsToken' (AWS KMS) is a signing key: it does not decrypt." in message
    for part in ("RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256", "ENCRYPT_DECRYPT", "SIGN_VERIFY", "SCEP",
                 "separate RA key pair"):
        assert part in message
    assert message.endswith(aws.NO_DECRYPT_REASON)
    assert len(kms_calls) == before  # refused here: Decrypt is not among the token's KMS rights
    # The key still signs.
    signature = key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())


def test_kms_keys_are_sign_verify(kms_token, actor, admin_kms):
    """The premise of the refusal: KMS holds the token's keys as SIGN_VERIFY, with no encryption algorithms.
    (moto does not check key usage on Decrypt, so KMS's own refusal is not shown here.)"""
    entry = services.generate_key_pair(actor, kms_token, unique("scep-ca"), "RSA2048")
    metadata = admin_kms.describe_key(KeyId=bytes(entry.private_data).decode())["KeyMetadata"]
    assert metadata["KeyUsage"] == "SIGN_VERIFY" and not metadata.get("EncryptionAlgorithms")
    assert metadata["SigningAlgorithms"]


def test_ec_keys_have_no_decrypt(kms_token, actor):
    services.generate_key_pair(actor, kms_token, alias := unique("scep-ec"), "P-256")
    assert not hasattr(services.get_private_key(kms_token, alias), "decrypt")
