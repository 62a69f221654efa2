"""Soft crypto tokens: encrypted keystore, activation shared through the database, key pairs."""

import base64
import os

import pytest
from asn1crypto import pkcs12
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cryptotokens import services
from cryptotokens.backends import KeySpec
from cryptotokens.errors import (
    AuthenticationCodeError,
    CryptoTokenError,
    CryptoTokenOfflineError,
    KeyPairExistsError,
    UnsupportedKeySpecError,
)
from cryptotokens.models import CryptoToken
from pki.models import AuditEvent


@pytest.mark.parametrize(
    ("text", "algorithm", "size", "curve"),
    [
        ("RSA2048", "RSA", 2048, None),
        ("RSA 3072", "RSA", 3072, None),
        ("4096", "RSA", 4096, None),
        ("P-256", "EC", None, "secp256r1"),
        ("prime256v1", "EC", None, "secp256r1"),
        ("secp384r1", "EC", None, "secp384r1"),
        ("EC P-521", "EC", None, "secp521r1"),
        ("brainpoolP256r1", "EC", None, "brainpoolP256r1"),
        ("Ed25519", "Ed25519", None, None),
        ("ed448", "Ed448", None, None),
    ],
)
def test_key_spec_parsing(text, algorithm, size, curve):
    spec = KeySpec.parse(text)
    assert (spec.algorithm, spec.size, spec.curve) == (algorithm, size, curve)


@pytest.mark.parametrize("text", ["RSA512", "RSA1000", "P-999", "DSA", ""])
def test_bad_key_specs(text):
    with pytest.raises(UnsupportedKeySpecError):
        KeySpec.parse(text)


def test_auth_code_is_never_stored_in_clear(soft_token_factory):
    token = soft_token_factory("Secretive", auth_code="very-secret-code")
    raw = CryptoToken.objects.filter(pk=token.pk).values().get()
    assert "very-secret-code" not in repr(raw)
    assert raw["auth_code_encrypted"].startswith("enc1:")
    assert token.token_id is not None and token.is_active


def test_keys_are_pkcs12_with_pbes2_aes256(soft_token, actor):
    entry = services.generate_key_pair(actor, soft_token, "k1", "P-256")
    pfx = pkcs12.Pfx.load(bytes(entry.private_data))
    # the shrouded key bag is encrypted with PBES2 (PBKDF2 + AES-256-CBC)
    bags = [b for sc in pfx.authenticated_safe for b in _bags(sc)]
    algos = {b["bag_value"]["encryption_algorithm"]["algorithm"].native for b in bags
             if b["bag_id"].native == "pkcs8_shrouded_key_bag"}
    assert algos == {"pbes2"}
    enc = [b["bag_value"]["encryption_algorithm"]["parameters"] for b in bags
           if b["bag_id"].native == "pkcs8_shrouded_key_bag"][0]
    assert enc["encryption_scheme"]["algorithm"].native == "aes256_cbc"
    assert enc["key_derivation_func"]["algorithm"].native == "pbkdf2"


def _bags(content_info):
    if content_info["content_type"].native == "data":
        return list(pkcs12.SafeContents.load(content_info["content"].native))
    return []


def test_generate_sign_and_duplicate_alias(soft_token, actor):
    entry = services.generate_key_pair(actor, soft_token, "signKey", "P-384")
    assert (entry.key_algorithm, entry.key_spec) == ("EC", "secp384r1")
    key = services.get_private_key(soft_token, "signKey")
    sig = key.sign(b"challenge", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(sig, b"challenge", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(KeyPairExistsError, match="already exists"):
        services.generate_key_pair(actor, soft_token, "signKey", "P-256")
    assert AuditEvent.objects.filter(event_type="CRYPTOTOKEN_GEN_KEYPAIR", object_id=str(soft_token.pk)).count() == 1


def test_wrong_code_keeps_token_inactive_and_is_audited(soft_token_factory, actor):
    token = soft_token_factory("Manual", auth_code="right-code", auto_activate=False)
    services.deactivate(actor, token)
    assert not token.is_active
    with pytest.raises(AuthenticationCodeError):
        services.activate(actor, token, "wrong-code")
    token.refresh_from_db()
    assert not token.is_active
    failure = AuditEvent.objects.get(event_type="CRYPTOTOKEN_ACTIVATION", outcome="FAILURE")
    assert "wrong-code" not in repr(failure.details) and "right-code" not in repr(failure.details)


def test_activation_is_shared_state(soft_token_factory, actor):
    token = soft_token_factory("Shared", auto_activate=False)
    services.generate_key_pair(actor, token, "k", "P-256")
    assert services.get_private_key(token, "k") is not None  # cached in this process
    # another process deactivates: it only changes the row
    other_view = CryptoToken.objects.get(pk=token.pk)
    services.deactivate(actor, other_view)
    fresh = CryptoToken.objects.get(pk=token.pk)
    with pytest.raises(CryptoTokenOfflineError):
        services.get_private_key(fresh, "k")
    services.activate(actor, fresh, "foo123")
    assert services.get_private_key(CryptoToken.objects.get(pk=token.pk), "k") is not None


def test_create_token_rules(soft_token_factory, actor):
    soft_token_factory("Taken")
    with pytest.raises(CryptoTokenError, match="already exists"):
        services.create_token(actor, name="Taken", token_type="SoftCryptoToken", auth_code="x")
    with pytest.raises(CryptoTokenError, match="authentication code is required"):
        services.create_token(actor, name="NoCode", token_type="SoftCryptoToken", auth_code="")
    with pytest.raises(UnsupportedKeySpecError, match="Unknown crypto token type"):
        services.create_token(actor, name="Odd", token_type="NoSuchToken", auth_code="x")
    assert not CryptoToken.objects.filter(name__in=["NoCode", "Odd"]).exists()


def _kdf_rounds(private_data: bytes) -> set[int]:
    pfx = pkcs12.Pfx.load(private_data)
    bags = [b for sc in pfx.authenticated_safe for b in _bags(sc) if b["bag_id"].native == "pkcs8_shrouded_key_bag"]
    params = [b["bag_value"]["encryption_algorithm"]["parameters"]["key_derivation_func"]["parameters"] for b in bags]
    return {p["iteration_count"].native for p in params}


def test_the_product_derives_with_its_own_rounds(monkeypatch, soft_token_factory, actor):
    """The suite derives with fewer rounds (tests/conftest.py); the product's counts are these, and a token made
    with them is checked with them."""
    from cryptotokens.backends import soft
    from tests.conftest import PRODUCTION_ROUNDS

    monkeypatch.undo()  # the suite's fast rounds
    assert (soft.PBKDF2_ROUNDS, soft.PKCS12_KDF_ROUNDS) == (
        PRODUCTION_ROUNDS["soft_token_verifier"], PRODUCTION_ROUNDS["soft_token_pkcs12"]) == (200_000, 100_000)
    token = soft_token_factory("Product", auth_code="product-code", auto_activate=False)
    assert token.properties["auth_rounds"] == 200_000
    services.activate(actor, token, "product-code")
    entry = services.generate_key_pair(actor, token, "k", "P-256")
    assert _kdf_rounds(bytes(entry.private_data)) == {100_000}


def test_a_verifier_is_checked_with_the_rounds_it_was_made_with(monkeypatch, soft_token_factory, actor):
    """The rounds are stored beside the verifier: a later count (a raised default) still checks an older token,
    and a token from before they were recorded is checked with the 200,000 rounds it was made with."""
    from cryptotokens.backends import soft

    token = soft_token_factory("Older", auth_code="older-code", auto_activate=False)
    made_with = token.properties["auth_rounds"]
    monkeypatch.setattr(soft, "PBKDF2_ROUNDS", made_with * 2)
    services.activate(actor, token, "older-code")
    services.deactivate(actor, token)
    with pytest.raises(AuthenticationCodeError):
        services.activate(actor, token, "not-the-code")

    salt = os.urandom(16)
    unrecorded = {k: v for k, v in token.properties.items() if k != "auth_rounds"}
    unrecorded.update(auth_salt=base64.b64encode(salt).decode(),
                      auth_verifier=soft._verifier("legacy-code", salt, 200_000))
    CryptoToken.objects.filter(pk=token.pk).update(properties=unrecorded)
    token.refresh_from_db()
    services.activate(actor, token, "legacy-code")
    assert CryptoToken.objects.get(pk=token.pk).is_active
