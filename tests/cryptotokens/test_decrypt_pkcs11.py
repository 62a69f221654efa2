"""RSA decryption through PKCS#11 key handles, against a real SoftHSM2 (no mocks): what SCEP needs from a CA
key on an HSM. Round trips are encrypted with ``cryptography`` and the public key, and decrypted in the HSM.
Fixtures: tests/cryptotokens/conftest.py."""

from __future__ import annotations

import datetime
import os
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import MGF, Attribute, Mechanism, ObjectClass

from cryptotokens import services
from cryptotokens.backends.keys import DecryptRequest
from cryptotokens.backends.pkcs11 import mechanisms, sessions
from cryptotokens.backends.remote_keys import CryptoTokenUnavailableError
from cryptotokens.errors import CryptoTokenError, UnsupportedKeySpecError
from cryptotokens.models import CryptoToken

from .conftest import SOFTHSM_MODULE

SECRET = b"a 32-byte AES content key ......"
PKCS1 = padding.PKCS1v15()
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
BACKENDS = ["PKCS11CryptoToken", "Pkcs11NgCryptoToken"]


def _key(token: CryptoToken, alias: str):
    return services.get_private_key(CryptoToken.objects.get(pk=token.pk), alias)


def _epoch() -> int:
    return sessions.library(SOFTHSM_MODULE, SOFTHSM_MODULE).epoch


@pytest.fixture(params=BACKENDS)
def rsa_key(request, hsm_token_factory, actor):
    """A 2048-bit RSA key generated on the HSM through the service, as a handle."""
    token = hsm_token_factory("Decrypting", token_type=request.param)
    services.generate_key_pair(actor, token, "ca-key", "RSA2048")
    return _key(token, "ca-key")


@pytest.mark.parametrize("pad", [PKCS1, OAEP_SHA1], ids=["pkcs1v15", "oaep-sha1"])
def test_round_trip(rsa_key, pad):
    ciphertext = rsa_key.public_key().encrypt(SECRET, pad)
    assert rsa_key.decrypt(ciphertext, pad) == SECRET
    assert rsa_key.decrypt(bytearray(ciphertext), pad) == SECRET  # any bytes-like, as cryptography takes


def test_generated_rsa_keys_may_decrypt_ec_keys_may_not(hsm_token, actor, softhsm, hsm_label):
    services.generate_key_pair(actor, hsm_token, "rsa", "RSA2048")
    services.generate_key_pair(actor, hsm_token, "ec", "P-256")
    with softhsm.session(hsm_label) as session:
        rsa_private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="rsa")
        rsa_public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="rsa")
        ec_private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ec")
        assert rsa_private[Attribute.DECRYPT] is True and rsa_public[Attribute.ENCRYPT] is True
        assert rsa_private[Attribute.SIGN] is True and rsa_private[Attribute.UNWRAP] is False
        assert rsa_private[Attribute.EXTRACTABLE] is False and rsa_private[Attribute.SENSITIVE] is True
        assert ec_private[Attribute.DECRYPT] is False and ec_private[Attribute.DERIVE] is False


def test_oaep_with_sha256_is_refused_clearly_by_softhsm_2_6(rsa_key):
    """SoftHSM2 2.6 does OAEP with SHA-1 only (CKR_ARGUMENTS_BAD): a clear refusal naming the padding, and the
    session keeps working. (The mechanism parameters for SHA-256 are checked in the table below.)"""
    ciphertext = rsa_key.public_key().encrypt(SECRET, OAEP_SHA256)
    with pytest.raises(UnsupportedKeySpecError, match="cannot decrypt RSA-OAEP with SHA256 and MGF1-SHA256 with "
                                                      "key 'ca-key'"):
        rsa_key.decrypt(ciphertext, OAEP_SHA256)
    assert rsa_key.decrypt(rsa_key.public_key().encrypt(SECRET, PKCS1), PKCS1) == SECRET


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (DecryptRequest("PKCS1v15", b""), (Mechanism.RSA_PKCS, None)),
        (DecryptRequest("OAEP", b"", hashes.SHA1(), hashes.SHA1()),
         (Mechanism.RSA_PKCS_OAEP, (Mechanism.SHA_1, MGF.SHA1, None))),
        (DecryptRequest("OAEP", b"", hashes.SHA256(), hashes.SHA256()),
         (Mechanism.RSA_PKCS_OAEP, (Mechanism.SHA256, MGF.SHA256, None))),
        (DecryptRequest("OAEP", b"", hashes.SHA512(), hashes.SHA1(), b"label"),
         (Mechanism.RSA_PKCS_OAEP, (Mechanism.SHA512, MGF.SHA1, b"label"))),
    ],
    ids=["pkcs1v15", "oaep-sha1", "oaep-sha256", "oaep-sha512-mgf1-sha1-label"],
)
def test_decrypt_mechanism_parameters(request_, expected):
    offered = frozenset({Mechanism.RSA_PKCS, Mechanism.RSA_PKCS_OAEP})
    assert mechanisms.decrypt_mechanism(request_, offered) == expected


@pytest.mark.parametrize(
    ("request_", "offered", "message"),
    [
        (DecryptRequest("PKCS1v15", b""), {Mechanism.RSA_PKCS_OAEP}, "does not decrypt RSA PKCS#1 v1.5"),
        (DecryptRequest("OAEP", b"", hashes.SHA256(), hashes.SHA256()), {Mechanism.RSA_PKCS},
         "does not decrypt RSA-OAEP"),
        (DecryptRequest("OAEP", b"", hashes.MD5(), hashes.SHA1()), {Mechanism.RSA_PKCS_OAEP},
         "does not define RSA-OAEP with MD5"),
    ],
    ids=["no-rsa-pkcs", "no-oaep", "unknown-hash"],
)
def test_decrypt_mechanism_refusals(request_, offered, message):
    with pytest.raises(UnsupportedKeySpecError, match=message):
        mechanisms.decrypt_mechanism(request_, frozenset(offered))


def _wrong_ciphertexts(public: rsa.RSAPublicKey) -> dict[str, bytes]:
    size = public.key_size // 8
    other = rsa.generate_private_key(65537, public.key_size).public_key()
    return {
        "random": b"\x00" + os.urandom(size - 1),  # below the modulus: the HSM itself gets to refuse it
        "for-another-key": other.encrypt(SECRET, PKCS1),
        "zeros": bytes(size),
        "above-modulus": b"\xff" * size,
        "too-short": os.urandom(size - 1),
        "too-long": os.urandom(size + 1),
        "empty": b"",
    }


@pytest.mark.parametrize("pad", [PKCS1, OAEP_SHA1], ids=["pkcs1v15", "oaep-sha1"])
def test_wrong_ciphertext_raises_value_error_and_keeps_the_session(rsa_key, pad):
    """ValueError, as cryptography raises for a ciphertext it refuses (the SCEP layer's badMessageCheck).
    SoftHSM2 refuses bad PKCS#1 v1.5 padding too (no implicit rejection) and reports CKR_GENERAL_ERROR, which
    must neither drop the session nor re-initialize the library (NG) for a bad message."""
    public = rsa_key.public_key()
    assert rsa_key.decrypt(public.encrypt(SECRET, pad), pad) == SECRET  # connected
    epoch, connections = _epoch(), sessions.stats()
    for name, ciphertext in _wrong_ciphertexts(public).items():
        with pytest.raises(ValueError) as caught:
            rsa_key.decrypt(ciphertext, pad)
        assert not isinstance(caught.value, CryptoTokenError), name
    assert _epoch() == epoch and sessions.stats() == connections
    assert rsa_key.decrypt(public.encrypt(SECRET, pad), pad) == SECRET


def test_key_without_decrypt_is_refused_clearly(hsm_token_factory, hsm_settings, actor, tmp_path):
    """A sign-only RSA key (an attribute file saying CKA_DECRYPT = false, as keys made before RSA keys could
    decrypt): a CryptoTokenError naming the key, and it still signs."""
    path = tmp_path / "sign-only.attributes"
    path.write_text("CKA_DECRYPT = false\n")
    hsm_settings.PKCS11_ATTRIBUTE_FILES = {"sign-only": str(path)}
    token = hsm_token_factory("SignOnly", properties={"attribute_file": "sign-only"})
    services.generate_key_pair(actor, token, "signer", "RSA2048")
    key = _key(token, "signer")
    ciphertext = key.public_key().encrypt(SECRET, PKCS1)
    with pytest.raises(CryptoTokenError, match="Key 'signer' of crypto token 'SignOnly' is not allowed to decrypt"):
        key.decrypt(ciphertext, PKCS1)
    signature = key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())


def test_padding_the_handle_cannot_use(rsa_key):
    with pytest.raises(UnsupportedKeySpecError, match="cannot decrypt with PSS padding"):
        rsa_key.decrypt(bytes(256), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32))


def test_lost_connection_during_decrypt(hsm_token_factory, actor, softhsm, hsm_label):
    """A lost HSM is not a bad ciphertext: the plain backend drops the session and says so; the NG backend
    re-initializes the library and retries once (after which the plain one works again too)."""
    plain = hsm_token_factory("Plain")
    softhsm.init_token(hsm_label + "ng")  # a slot of its own: one slot belongs to one crypto token
    ng = hsm_token_factory("Ng", token_type="Pkcs11NgCryptoToken", reference=hsm_label + "ng")
    services.generate_key_pair(actor, plain, "k1", "RSA2048")
    services.generate_key_pair(actor, ng, "k2", "RSA2048")
    plain_key, ng_key = _key(plain, "k1"), _key(ng, "k2")
    plain_ct = plain_key.public_key().encrypt(SECRET, PKCS1)
    ng_ct = ng_key.public_key().encrypt(SECRET, OAEP_SHA1)
    assert plain_key.decrypt(plain_ct, PKCS1) == SECRET and ng_key.decrypt(ng_ct, OAEP_SHA1) == SECRET
    softhsm.finalize_under_the_process()
    with pytest.raises(CryptoTokenUnavailableError, match="HSM connection of crypto token 'Plain' failed"):
        plain_key.decrypt(plain_ct, PKCS1)
    epoch = _epoch()
    assert ng_key.decrypt(ng_ct, OAEP_SHA1) == SECRET
    assert _epoch() > epoch
    assert plain_key.decrypt(plain_ct, PKCS1) == SECRET


def test_decrypting_and_signing_from_threads(rsa_key):
    """One session per slot and a lock per library: concurrent decryptions and signatures all succeed."""
    public = rsa_key.public_key()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                plaintext = f"{n}-{i}".encode()
                assert rsa_key.decrypt(public.encrypt(plaintext, OAEP_SHA1), OAEP_SHA1) == plaintext
                public.verify(rsa_key.sign(plaintext, PKCS1, hashes.SHA256()), plaintext, PKCS1, hashes.SHA256())
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


@pytest.mark.parametrize("key_transport", ["pkcs1v15", "oaep"])
def test_scep_envelope_decrypts_with_the_hsm_key(hsm_token, actor, key_transport):
    """The SCEP message layer decrypts a pkcsPKIEnvelope with the HSM handle as the CA key."""
    from protocols.scep.messages.envelope import decrypt_envelope, encrypt_envelope

    services.generate_key_pair(actor, hsm_token, "scep-ca", "RSA2048")
    key = _key(hsm_token, "scep-ca")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SCEP HSM CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    envelope = encrypt_envelope(b"a PKCS#10 request", cert, key_transport=key_transport, oaep_hash="sha1")
    assert decrypt_envelope(envelope, key, cert).content == b"a PKCS#10 request"
