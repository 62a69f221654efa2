"""RSA decryption through Azure Key Vault key handles (CryptographyClient decrypt with RSA1_5, RSA-OAEP,
RSA-OAEP-256), against the local Key Vault test server, which decrypts with the real RSA key.
Fixtures: tests/cryptotokens/test_azure.py."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cryptotokens import services
from cryptotokens.errors import CryptoTokenError, UnsupportedKeySpecError
from tests.cryptotokens.keyvault_server import unb64url

from . import test_azure
from .test_azure import unique

# The Key Vault server and token fixtures of test_azure, shared by name (pytest finds module attributes).
globals().update({name: getattr(test_azure, name)
                  for name in ("kv_tls", "binding_pem", "kv_server", "kv", "kv_token_factory", "kv_token")})

SECRET = b"a 32-byte AES content key ......"
PKCS1 = padding.PKCS1v15()


def oaep(hash_algorithm: hashes.HashAlgorithm, mgf_hash: hashes.HashAlgorithm | None = None,
         label: bytes | None = None) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(mgf_hash or hash_algorithm), algorithm=hash_algorithm, label=label)


@pytest.fixture
def vault_rsa(kv_token, actor, kv):
    """(alias, handle) of a 2048-bit RSA key generated in the vault through the service."""
    alias = unique("scep-ca")
    services.generate_key_pair(actor, kv_token, alias, "RSA2048")
    return alias, services.get_private_key(kv_token, alias)


@pytest.mark.parametrize(
    ("pad", "alg"),
    [(PKCS1, "RSA1_5"), (oaep(hashes.SHA1()), "RSA-OAEP"), (oaep(hashes.SHA256()), "RSA-OAEP-256")],
    ids=["pkcs1v15", "oaep-sha1", "oaep-sha256"],
)
def test_round_trip(vault_rsa, kv, pad, alg):
    alias, key = vault_rsa
    ciphertext = key.public_key().encrypt(SECRET, pad)
    assert key.decrypt(ciphertext, pad) == SECRET
    (sent,) = kv.requests_to("POST", rf"/keys/{alias}/\w+/decrypt")
    assert sent["body"]["alg"] == alg and unb64url(sent["body"]["value"]) == ciphertext
    assert "decrypt" in kv.keys[alias][-1].key_ops


@pytest.mark.parametrize("pad", [PKCS1, oaep(hashes.SHA1()), oaep(hashes.SHA256())],
                         ids=["pkcs1v15", "oaep-sha1", "oaep-sha256"])
def test_wrong_ciphertext_behaves_as_a_local_key(vault_rsa, kv, pad):
    """The handle answers as a local ``cryptography`` key: OAEP raises ValueError (the SCEP layer's
    badMessageCheck); PKCS#1 v1.5 uses implicit rejection (a synthetic plaintext, no padding oracle), so the
    handle returns exactly what the vault's key returns locally. The clients stay usable."""
    alias, key = vault_rsa
    public, vault_key = key.public_key(), kv.keys[alias][-1].private_key
    other = rsa.generate_private_key(65537, 2048).public_key()
    foreign = other.encrypt(SECRET, pad)
    while int.from_bytes(foreign, "big") >= public.public_numbers().n:  # not below our modulus: not this case
        foreign = other.encrypt(SECRET, pad)
    for ciphertext in (b"\x00" + os.urandom(255), foreign):
        if isinstance(pad, padding.PKCS1v15):
            assert key.decrypt(ciphertext, pad) == vault_key.decrypt(ciphertext, pad) != SECRET
            continue
        with pytest.raises(ValueError) as caught:
            key.decrypt(ciphertext, pad)
        assert not isinstance(caught.value, CryptoTokenError)
    sent = len(kv.requests_to("POST", rf"/keys/{alias}/\w+/decrypt"))
    # Wrong sizes and values above the modulus are refused here, as cryptography does, without a request.
    for ciphertext in (b"", os.urandom(255), os.urandom(257), b"\xff" * 256):
        with pytest.raises(ValueError):
            key.decrypt(ciphertext, pad)
        with pytest.raises(ValueError):
            vault_key.decrypt(ciphertext, pad)
    assert len(kv.requests_to("POST", rf"/keys/{alias}/\w+/decrypt")) == sent
    assert key.decrypt(public.encrypt(SECRET, pad), pad) == SECRET


@pytest.mark.parametrize(
    ("pad", "message"),
    [
        (oaep(hashes.SHA256(), hashes.SHA1()), "not RSA-OAEP with SHA256 and MGF1-SHA1"),
        (oaep(hashes.SHA384()), "not RSA-OAEP with SHA384 and MGF1-SHA384"),
        (oaep(hashes.SHA1(), label=b"label"), "not RSA-OAEP with SHA1 and MGF1-SHA1 with a label"),
    ],
    ids=["mixed-hashes", "sha384", "label"],
)
def test_paddings_key_vault_does_not_offer(vault_rsa, kv, pad, message):
    alias, key = vault_rsa
    with pytest.raises(UnsupportedKeySpecError, match=f"Azure Key Vault decrypts with .*{message}"):
        key.decrypt(key.public_key().encrypt(SECRET, pad), pad)
    assert not kv.requests_to("POST", rf"/keys/{alias}/\w+/decrypt")


def test_sign_only_key_is_refused_clearly(vault_rsa, kv):
    """A key created without the decrypt operation (as RSA keys were before): the vault refuses, the handle
    says which key and why, and it still signs."""
    alias, key = vault_rsa
    kv.keys[alias][-1].key_ops = ["sign", "verify"]  # as the vault holds a key made sign-only
    with pytest.raises(CryptoTokenError, match=f"The key '{alias}' of crypto token 'KvToken' .*is not allowed to "
                                               "decrypt"):
        key.decrypt(key.public_key().encrypt(SECRET, PKCS1), PKCS1)
    signature = key.sign(b"data", PKCS1, hashes.SHA256())
    key.public_key().verify(signature, b"data", PKCS1, hashes.SHA256())


def test_scep_envelope_decrypts_with_the_vault_key(vault_rsa):
    """The SCEP message layer decrypts a pkcsPKIEnvelope with the Key Vault handle as the CA key."""
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from protocols.scep.messages.envelope import decrypt_envelope, encrypt_envelope

    _alias, key = vault_rsa
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SCEP Key Vault CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    for transport, oaep_hash in (("pkcs1v15", "sha1"), ("oaep", "sha256")):
        envelope = encrypt_envelope(b"a PKCS#10 request", cert, key_transport=transport, oaep_hash=oaep_hash)
        assert decrypt_envelope(envelope, key, cert).content == b"a PKCS#10 request"
