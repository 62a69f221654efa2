"""PKCS#11 crypto tokens against a real SoftHSM2 through python-pkcs11 (no mocks): slots, keys, signing,
CAs, failures and the NG backend's re-initialization. Fixtures: tests/cryptotokens/conftest.py."""

from __future__ import annotations

import contextlib
import secrets
import threading

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, ObjectClass

from cryptotokens import services
from cryptotokens.backends import pkcs11 as p11_backend
from cryptotokens.backends.base import KeySpec, registry
from cryptotokens.backends.keys import KeyNotExportableError
from cryptotokens.backends.pkcs11 import mechanisms
from cryptotokens.backends.remote_keys import CryptoTokenUnavailableError
from cryptotokens.errors import (
    AuthenticationCodeError,
    CryptoTokenError,
    CryptoTokenOfflineError,
    KeyPairExistsError,
    KeyPairNotFoundError,
    UnsupportedKeySpecError,
)
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from tests.conftest import pem

from .conftest import PIN

DATA = b"to be signed by the HSM " * 40


def _key(token: CryptoToken, alias: str):
    return services.get_private_key(CryptoToken.objects.get(pk=token.pk), alias)


# -- slots and tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference_type", ["SLOT_LABEL", "SLOT_ID", "SLOT_INDEX"])
def test_token_on_each_reference_type(hsm_token_factory, softhsm, hsm_label, actor, reference_type):
    slot_id, index = softhsm.slot_of(hsm_label)
    reference = {"SLOT_LABEL": hsm_label, "SLOT_ID": str(slot_id), "SLOT_INDEX": str(index)}[reference_type]
    token = hsm_token_factory(reference_type=reference_type, reference=reference)
    # The row keeps the library's name (resolved to a path at use), never the path.
    assert token.properties == {"library": "SoftHSM2", "reference_type": reference_type, "reference": reference}
    entry = services.generate_key_pair(actor, token, "k", "P-256")
    assert entry.private_data and services.test_key_pair(actor, token, "k")


@pytest.mark.parametrize(
    ("properties", "libraries", "error", "message"),
    [
        ({"pin": "9999"}, None, AuthenticationCodeError, "Wrong PIN for PKCS#11 token"),
        ({"reference": "nope"}, None, CryptoTokenError, "No PKCS#11 token labelled 'nope' in library 'SoftHSM2'"),
        ({"reference_type": "SLOT_ID", "reference": "999999"}, None, CryptoTokenError,
         "No PKCS#11 slot with id 999999 holding a token"),
        ({"reference_type": "SLOT_INDEX", "reference": "99"}, None, CryptoTokenError, "No PKCS#11 slot at index 99"),
        ({"reference_type": "SLOT_ID", "reference": "first"}, None, CryptoTokenError, "is not a slot number"),
        ({"reference_type": "SLOT_NAME"}, None, CryptoTokenError, "Unknown PKCS#11 reference type 'SLOT_NAME'"),
        ({"properties": {"library": "Luna"}}, None, CryptoTokenError, "PKCS#11 library 'Luna' is not configured"),
        ({"properties": {"library": ""}}, None, CryptoTokenError, "Choose a PKCS#11 library"),
        ({}, {"SoftHSM2": "/nonexistent/libsofthsm2.so"}, CryptoTokenError,
         "PKCS#11 library 'SoftHSM2': file not found: /nonexistent/libsofthsm2.so"),
        ({}, {"SoftHSM2": "/etc/hostname"}, CryptoTokenError, "PKCS#11 library 'SoftHSM2' .* cannot be loaded"),
        ({"properties": {"attribute_file": "missing"}}, None, CryptoTokenError,
         "PKCS#11 attribute file 'missing' is not configured"),
    ],
    ids=["wrong-pin", "unknown-label", "unknown-slot-id", "unknown-index", "bad-slot-id", "bad-reference-type",
         "unknown-library", "no-library", "library-file-missing", "not-a-pkcs11-module", "unknown-attribute-file"],
)
def test_token_creation_refused(hsm_token_factory, hsm_settings, properties, libraries, error, message):
    if libraries is not None:
        hsm_settings.PKCS11_LIBRARIES = libraries
    with pytest.raises(error, match=message):
        hsm_token_factory(name="Refused", **properties)
    assert not CryptoToken.objects.filter(name="Refused").exists()


def test_wrong_pin_while_the_slot_is_in_use(hsm_token_factory, actor):
    """A second token row on a slot this process is logged in to: its PIN is still checked, and the first
    token keeps signing (PKCS#11 has one login per process and token)."""
    token = hsm_token_factory("First")
    services.generate_key_pair(actor, token, "k", "P-256")
    key = _key(token, "k")
    with pytest.raises(AuthenticationCodeError, match="Wrong PIN"):
        hsm_token_factory("Second", pin="0000")
    assert not CryptoToken.objects.filter(name="Second").exists()
    key.public_key().verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))
    assert services.test_key_pair(actor, token, "k")


def test_declared_parameters_follow_the_settings(hsm_settings, tmp_path):
    hsm_settings.PKCS11_LIBRARIES = {"SoftHSM2": "/usr/lib/softhsm/libsofthsm2.so", "Luna": "/opt/luna.so"}
    hsm_settings.PKCS11_ATTRIBUTE_FILES = {"strict": str(tmp_path / "strict.conf")}
    for type_name in ("PKCS11CryptoToken", "Pkcs11NgCryptoToken"):
        params = {p.name: p for p in registry.get(type_name).parameters}
        assert [c[0] for c in params["library"].choices] == ["SoftHSM2", "Luna"]
        assert [c[0] for c in params["reference_type"].choices] == ["SLOT_ID", "SLOT_INDEX", "SLOT_LABEL"]
        assert [c[0] for c in params["attribute_file"].choices] == ["", "strict"]
        assert params["reference"].required and not params["attribute_file"].required
    assert registry.get("Pkcs11NgCryptoToken").label == "PKCS#11 NG"


def test_remapping_checks_the_new_slot(hsm_token, actor):
    with pytest.raises(CryptoTokenError, match="No PKCS#11 token labelled 'elsewhere'"):
        services.edit_token(actor, hsm_token, properties={"reference": "elsewhere"})
    assert CryptoToken.objects.get(pk=hsm_token.pk).properties["reference"] != "elsewhere"


# -- keys and signatures ------------------------------------------------------------------------------------

# (case, padding to sign with, hash, salt length the signature must have: "max" = the most the key allows)
RSA_SIGNATURES = [
    ("PKCS1v15 SHA-256", padding.PKCS1v15(), hashes.SHA256(), None),
    ("PKCS1v15 SHA-384", padding.PKCS1v15(), hashes.SHA384(), None),
    ("PKCS1v15 SHA-512", padding.PKCS1v15(), hashes.SHA512(), None),
    ("PKCS1v15 SHA-224", padding.PKCS1v15(), hashes.SHA224(), None),
    ("PKCS1v15 SHA3-256", padding.PKCS1v15(), hashes.SHA3_256(), None),  # hashed here, signed as a DigestInfo
    ("PSS SHA-256, salt = hash", padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
     hashes.SHA256(), 32),
    ("PSS SHA-384, salt 48", padding.PSS(padding.MGF1(hashes.SHA384()), 48), hashes.SHA384(), 48),
    ("PSS SHA-512, maximal salt", padding.PSS(padding.MGF1(hashes.SHA512()), padding.PSS.MAX_LENGTH),
     hashes.SHA512(), "max"),
    ("PSS SHA-256, no salt", padding.PSS(padding.MGF1(hashes.SHA256()), 0), hashes.SHA256(), 0),
]
EC_HASHES = [hashes.SHA256(), hashes.SHA384(), hashes.SHA512(), hashes.SHA224(), hashes.SHA3_256()]


def _digest(algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(DATA)
    return h.finalize()


def _check_signatures(key) -> None:
    """Every scheme the key's algorithm has, plain and prehashed, verified by cryptography."""
    public = key.public_key()
    cases = []
    if isinstance(key, rsa.RSAPrivateKey):
        for name, pad, algorithm, salt in RSA_SIGNATURES:
            if salt is not None:  # verify with the exact salt length (MAX_LENGTH would accept any)
                salt = padding.calculate_max_pss_salt_length(public, algorithm) if salt == "max" else salt
                check = (padding.PSS(padding.MGF1(algorithm), salt), algorithm)
            else:
                check = (pad, algorithm)
            cases.append((name, key.sign(DATA, pad, algorithm), check))
            cases.append((f"{name}, prehashed", key.sign(_digest(algorithm), pad, Prehashed(algorithm)), check))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        for algorithm in EC_HASHES:
            cases.append((f"ECDSA {algorithm.name}", key.sign(DATA, ec.ECDSA(algorithm)), (ec.ECDSA(algorithm),)))
            cases.append((f"ECDSA {algorithm.name}, prehashed", key.sign(_digest(algorithm),
                          ec.ECDSA(Prehashed(algorithm))), (ec.ECDSA(algorithm),)))
    else:
        cases.append(("EdDSA", key.sign(DATA), ()))
    for name, signature, verify_args in cases:
        try:
            public.verify(signature, DATA, *verify_args)
        except InvalidSignature:
            pytest.fail(f"{name}: the HSM's signature does not verify")


@pytest.mark.parametrize(
    ("spec", "key_class", "size"),
    [
        ("RSA2048", rsa.RSAPrivateKey, 2048),
        ("RSA3072", rsa.RSAPrivateKey, 3072),
        ("P-256", ec.EllipticCurvePrivateKey, 256),
        ("P-384", ec.EllipticCurvePrivateKey, 384),
        ("P-521", ec.EllipticCurvePrivateKey, 521),
        ("brainpoolP256r1", ec.EllipticCurvePrivateKey, 256),
        ("brainpoolP384r1", ec.EllipticCurvePrivateKey, 384),
        ("Ed25519", ed25519.Ed25519PrivateKey, None),
        ("Ed448", ed448.Ed448PrivateKey, None),
    ],
)
def test_generate_and_sign(hsm_token, actor, spec, key_class, size):
    entry = services.generate_key_pair(actor, hsm_token, "key", spec)
    key = _key(hsm_token, "key")
    assert isinstance(key, key_class)
    assert key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == bytes(entry.public_key_der)
    if size:
        assert key.key_size == size
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert key.curve.name == KeySpec.parse(spec).curve
    _check_signatures(key)


def test_signature_requests_the_key_cannot_honour(hsm_token, actor):
    services.generate_key_pair(actor, hsm_token, "rsa", "RSA2048")
    services.generate_key_pair(actor, hsm_token, "ec", "P-256")
    rsa_key, ec_key = _key(hsm_token, "rsa"), _key(hsm_token, "ec")
    with pytest.raises(ValueError, match="AUTO when verifying"):
        rsa_key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), hashes.SHA256())
    with pytest.raises(ValueError, match="salt of 400 bytes does not fit"):
        rsa_key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), 400), hashes.SHA256())
    with pytest.raises(ValueError, match="digest size"):
        rsa_key.sign(b"short", padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    with pytest.raises(UnsupportedKeySpecError, match="deterministically"):
        ec_key.sign(DATA, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    # SoftHSM2 insists on MGF1 over the signature's hash (other HSMs take any pair): its refusal is passed on.
    with pytest.raises(CryptoTokenError, match="The HSM refused to sign with key 'rsa' .*ArgumentsBad"):
        rsa_key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA256()), 20), hashes.SHA384())
    # RSA keys decrypt (tests/cryptotokens/test_decrypt_pkcs11.py); a ciphertext of the wrong size is a ValueError.
    with pytest.raises(ValueError, match="Ciphertext length must be equal to key size"):
        rsa_key.decrypt(b"x", padding.PKCS1v15())


@pytest.mark.parametrize("spec", ["RSA2048", "P-256", "Ed25519"])
def test_keys_never_leave_the_hsm(hsm_token, actor, softhsm, hsm_label, spec):
    entry = services.generate_key_pair(actor, hsm_token, "secret", spec)
    key = _key(hsm_token, "secret")
    for export in (lambda: key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
                   lambda: key.private_numbers(), lambda: key.private_bytes_raw()):
        with pytest.raises(KeyNotExportableError, match="cannot be exported"):
            export()
    with pytest.raises(CryptoTokenError, match="never leave the token"):
        services.export_key_pair(actor, hsm_token, "secret", "password123")
    with softhsm.session(hsm_label) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="secret")
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="secret")
        assert private[Attribute.EXTRACTABLE] is False and private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.SENSITIVE] is True and private[Attribute.TOKEN] is True
        assert private[Attribute.SIGN] is True and public[Attribute.VERIFY] is True
        assert private[Attribute.ID] == public[Attribute.ID] == bytes(entry.private_data)
        if spec == "RSA2048":
            # RSA keys also decrypt (SCEP), but never unwrap.
            assert private[Attribute.DECRYPT] is True and private[Attribute.UNWRAP] is False
            assert public[Attribute.PUBLIC_EXPONENT] == b"\x01\x00\x01"


def test_attribute_file_adds_key_attributes(hsm_token_factory, hsm_settings, actor, softhsm, hsm_label, tmp_path):
    path = tmp_path / "strict.attributes"
    path.write_text("# keys for our HSM\nCKA_ALWAYS_AUTHENTICATE = true\nCKA_COPYABLE = false\n"
                    "public.CKA_PRIVATE = true  # hide them\n")
    hsm_settings.PKCS11_ATTRIBUTE_FILES = {"strict": str(path)}
    token = hsm_token_factory(properties={"attribute_file": "strict"})
    assert token.properties["attribute_file"] == "strict"
    services.generate_key_pair(actor, token, "k", "P-384")
    assert services.test_key_pair(actor, token, "k")
    with softhsm.session(hsm_label) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="k")
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="k")
        assert private[Attribute.ALWAYS_AUTHENTICATE] is True  # each signature logs in again: the handle does
        assert private[Attribute.COPYABLE] is False and private[Attribute.EXTRACTABLE] is False
        assert public[Attribute.PRIVATE] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EXTRACTABLE=false", "line 1: cannot read 'EXTRACTABLE=false'"),
        ("# comment\nCKA_NO_SUCH_THING = 1", "line 2: cannot read"),
        ("CKA_SENSITIVE = maybe", "line 1: bad value 'maybe' for CKA_SENSITIVE"),
        ("CKA_LABEL = other", "line 1: CKA_LABEL is set by the crypto token itself"),
        ("secret.CKA_PRIVATE = true", "line 1: 'secret' is neither 'private' nor 'public'"),
    ],
)
def test_broken_attribute_files_are_refused_at_creation(hsm_token_factory, hsm_settings, tmp_path, text, message):
    path = tmp_path / "broken.attributes"
    path.write_text(text)
    hsm_settings.PKCS11_ATTRIBUTE_FILES = {"broken": str(path)}
    with pytest.raises(CryptoTokenError, match=f"PKCS#11 attribute file 'broken', {message}"):
        hsm_token_factory(name="Broken", properties={"attribute_file": "broken"})
    assert not CryptoToken.objects.filter(name="Broken").exists()


@pytest.mark.parametrize(
    ("spec", "mechanism_list", "message"),
    [
        ("RSA16384", "softhsm", "generates RSA keys of 1024 to 8192 bits, not 16384"),
        ("Ed25519", "no-eddsa", "does not offer Ed25519 keys"),
        ("Ed448", "no-eddsa", "does not offer Ed448 keys"),
        ("P-256", "no-ec", "does not generate or sign with EC keys"),
    ],
)
def test_unsupported_key_specs(hsm_token, actor, spec, mechanism_list, message):
    if mechanism_list == "softhsm":
        with pytest.raises(UnsupportedKeySpecError, match=message):
            services.generate_key_pair(actor, hsm_token, "big", spec)
        assert not CryptoTokenKeyPair.objects.filter(alias="big").exists()
        return
    # Modules without EdDSA or EC (SoftHSM2 2.6 has both): the refusal names what is missing.
    from pkcs11 import Mechanism

    offered = {Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS, Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA}
    if mechanism_list == "no-ec":
        offered -= {Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA}
    with pytest.raises(UnsupportedKeySpecError, match=message):
        mechanisms.check_supported(KeySpec.parse(spec), frozenset(int(m) for m in offered), {})


def test_alias_exists_in_the_database_or_only_on_the_hsm(hsm_token, actor, softhsm, hsm_label):
    services.generate_key_pair(actor, hsm_token, "dup", "P-256")
    with pytest.raises(KeyPairExistsError, match="'dup' already exists"):
        services.generate_key_pair(actor, hsm_token, "dup", "P-256")
    # An object the database does not know about, made on the HSM by another tool.
    with softhsm.session(hsm_label) as session:
        session.generate_keypair(KeyType.RSA, 1024, label="foreign", store=True)
    with pytest.raises(KeyPairExistsError, match="already holds an object labelled 'foreign'"):
        services.generate_key_pair(actor, CryptoToken.objects.get(pk=hsm_token.pk), "foreign", "P-256")
    assert not CryptoTokenKeyPair.objects.filter(alias="foreign").exists()
    with softhsm.session(hsm_label) as session:
        assert len(list(session.get_objects({Attribute.LABEL: "foreign"}))) == 2  # untouched


def test_remove_key_pair_destroys_the_hsm_objects(hsm_token, actor, softhsm, hsm_label):
    services.generate_key_pair(actor, hsm_token, "gone", "P-256")
    services.generate_key_pair(actor, hsm_token, "kept", "P-256")
    key = _key(hsm_token, "gone")
    key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    services.remove_key_pair(actor, hsm_token, "gone")
    # A handle still held somewhere finds the key gone instead of signing with something else.
    with pytest.raises(KeyPairNotFoundError, match="'gone' is not on the HSM"):
        key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    # The alias is free again, on the HSM too.
    services.generate_key_pair(actor, CryptoToken.objects.get(pk=hsm_token.pk), "gone", "P-256")
    services.remove_key_pair(actor, CryptoToken.objects.get(pk=hsm_token.pk), "gone")
    with softhsm.session(hsm_label) as session:
        assert list(session.get_objects({Attribute.LABEL: "gone"})) == []
        assert len(list(session.get_objects({Attribute.LABEL: "kept"}))) == 2


def test_key_removed_on_the_hsm_behind_our_back(hsm_token, actor, softhsm, hsm_label):
    services.generate_key_pair(actor, hsm_token, "k", "P-256")
    with softhsm.session(hsm_label) as session:
        for obj in list(session.get_objects({Attribute.LABEL: "k"})):
            obj.destroy()
    services.clear_key_cache()
    with pytest.raises(KeyPairNotFoundError, match="Key 'k' is not on the HSM slot of crypto token 'HsmToken'"):
        _key(hsm_token, "k")


def test_deactivated_token_is_offline_until_activated(hsm_token_factory, actor):
    token = hsm_token_factory(auto_activate=False)
    services.generate_key_pair(actor, token, "k", "P-256")
    _key(token, "k")
    services.deactivate(actor, token)
    with pytest.raises(CryptoTokenOfflineError):
        services.get_private_key(CryptoToken.objects.get(pk=token.pk), "k")
    with pytest.raises(AuthenticationCodeError, match="Wrong PIN"):
        services.activate(actor, CryptoToken.objects.get(pk=token.pk), "0000")
    with pytest.raises(CryptoTokenOfflineError):
        services.get_private_key(CryptoToken.objects.get(pk=token.pk), "k")
    services.activate(actor, CryptoToken.objects.get(pk=token.pk), PIN)
    assert services.test_key_pair(actor, CryptoToken.objects.get(pk=token.pk), "k")


def test_threads_share_one_logged_in_session(hsm_token, actor, hsm_label):
    """One login per slot and process, serving every thread (calls into a module are serialized)."""
    services.generate_key_pair(actor, hsm_token, "k", "P-256")
    key = _key(hsm_token, "k")
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(25):
                key.public_key().verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(p11_backend.sessions.stats().values()) == [{"token": hsm_label, "keys": 1}]


# -- CAs on HSM keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_spec", "signature_algorithm"),
    [("RSA2048", None), ("RSA3072", "SHA384withRSAandMGF1"), ("P-256", None), ("P-384", "SHA384withECDSA"),
     ("Ed25519", None)],
)
def test_ca_on_hsm_key_signs_certificates_crls_and_csrs(hsm_token, ca_factory, actor, csr_factory, openssl,
                                                        key_spec, signature_algorithm):
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke

    extra = {"signature_algorithm": signature_algorithm} if signature_algorithm else {}
    ca = ca_factory("HsmCA", key_spec=key_spec, token=hsm_token, **extra)
    csr, _ = csr_factory("CN=hsm-leaf")
    leaf = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr)).row
    revoke(actor, leaf, "keyCompromise")
    crl = create_crl(actor, ca)
    openssl.write("ca.pem", pem(ca.certificate))
    openssl.write("leaf.pem", pem(leaf.certificate))
    openssl.write("crl.der", bytes(crl.der))
    assert "leaf.pem: OK" in openssl("verify", "-CAfile", "ca.pem", "leaf.pem").stdout
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in out.stdout + out.stderr
    # A CSR signed by the handle (e.g. for a CA signed by an external CA).
    key = _key(hsm_token, "signKey")
    algorithm = None if key_spec.startswith("Ed") else hashes.SHA256()
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HsmCA")])).sign(key, algorithm)
    assert request.is_signature_valid


# -- connection failures --------------------------------------------------------------------------------------


def test_ng_backend_reinitializes_after_the_library_is_finalized(hsm_token_factory, actor, softhsm):
    token = hsm_token_factory(token_type="Pkcs11NgCryptoToken")
    services.generate_key_pair(actor, token, "k", "P-256")
    key = _key(token, "k")
    key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    softhsm.finalize_under_the_process()  # every session and the login are gone, python-pkcs11 does not know
    key.public_key().verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))
    # The same for key generation, the operation that needs a read-write session.
    softhsm.finalize_under_the_process()
    services.generate_key_pair(actor, CryptoToken.objects.get(pk=token.pk), "after", "RSA2048")
    assert services.test_key_pair(actor, token, "after")


def test_plain_backend_fails_clearly_after_the_library_is_finalized(hsm_token_factory, actor, softhsm):
    import pkcs11

    token = hsm_token_factory(token_type="PKCS11CryptoToken")
    services.generate_key_pair(actor, token, "k", "P-256")
    key = _key(token, "k")
    key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    softhsm.finalize_under_the_process()
    with pytest.raises(CryptoTokenUnavailableError, match="HSM connection of crypto token 'hsm1' failed"):
        key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    # No re-initialization heuristics: the library stays down for this backend ...
    with pytest.raises(CryptoTokenUnavailableError):
        key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    # ... until the module is initialized again (here through python-pkcs11, as a restart would): its
    # dropped session does not linger, the next call logs in afresh.
    with contextlib.suppress(pkcs11.PKCS11Error):
        pkcs11.lib(softhsm.module).finalize()  # C_Finalize answers "not initialized"; python-pkcs11 notes it
    pkcs11.lib(softhsm.module)
    key.public_key().verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))


def test_plain_backend_recovers_on_the_next_call_after_a_finalize_through_python_pkcs11(
        hsm_token_factory, actor, softhsm):
    import pkcs11

    token = hsm_token_factory(token_type="PKCS11CryptoToken")
    services.generate_key_pair(actor, token, "k", "P-256")
    key = _key(token, "k")
    key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    pkcs11.lib(softhsm.module).finalize()
    with pytest.raises(CryptoTokenUnavailableError, match="the next operation connects again"):
        key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))


def test_reinitialization_by_one_token_reconnects_the_others(hsm_token_factory, actor, softhsm):
    """After the NG token re-initializes the module, a plain token on another slot of it reconnects without
    an error: its old session died with the old initialization, nothing failed on its side."""
    second = "s" + secrets.token_hex(6)
    softhsm.init_token(second)
    plain = hsm_token_factory("Plain", reference=second)
    ng = hsm_token_factory("Ng", token_type="Pkcs11NgCryptoToken")
    services.generate_key_pair(actor, plain, "p", "P-256")
    services.generate_key_pair(actor, ng, "n", "P-256")
    plain_key, ng_key = _key(plain, "p"), _key(ng, "n")
    plain_key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    softhsm.finalize_under_the_process()
    ng_key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    plain_key.public_key().verify(plain_key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))


# -- mechanism choice (modules unlike SoftHSM2) --------------------------------------------------------------

_ALL_RSA = {"RSA_PKCS", "RSA_PKCS_PSS", "SHA256_RSA_PKCS", "SHA256_RSA_PKCS_PSS"}


@pytest.mark.parametrize(
    ("offered", "scheme", "prehashed", "expected"),
    [
        (_ALL_RSA, "PKCS1v15", False, ("RSA_PKCS", "digest_info")),  # hash here: 32 bytes to the HSM, not a CRL
        ({"SHA256_RSA_PKCS"}, "PKCS1v15", False, ("SHA256_RSA_PKCS", "data")),  # a module without raw signing
        ({"SHA256_RSA_PKCS"}, "PKCS1v15", True, "cannot sign RSA PKCS#1 v1.5 with SHA256"),
        (_ALL_RSA, "PSS", False, ("RSA_PKCS_PSS", "digest")),
        ({"SHA256_RSA_PKCS_PSS"}, "PSS", False, ("SHA256_RSA_PKCS_PSS", "data")),
        ({"RSA_PKCS"}, "PSS", False, "cannot sign RSA-PSS with SHA256"),
        ({"ECDSA"}, "ECDSA", True, ("ECDSA", "digest")),
        ({"ECDSA_SHA256"}, "ECDSA", False, "does not sign with CKM_ECDSA"),
        ({"EDDSA"}, "EdDSA", False, ("EDDSA", "message")),
        (set(), "EdDSA", False, "does not sign with EdDSA"),
    ],
)
def test_mechanism_choice(offered, scheme, prehashed, expected):
    from pkcs11 import Mechanism

    from cryptotokens.backends.keys import SignatureRequest

    offered_ids = frozenset(int(Mechanism[name]) for name in offered)
    request = SignatureRequest(scheme, b"x" * 32, None if scheme == "EdDSA" else hashes.SHA256(), prehashed,
                               32 if scheme == "PSS" else None, hashes.SHA256() if scheme == "PSS" else None)
    if isinstance(expected, str):
        with pytest.raises(UnsupportedKeySpecError, match=expected):
            mechanisms.plan_for(request, offered_ids)
    else:
        plan = mechanisms.plan_for(request, offered_ids)
        assert (plan.mechanism.name, plan.payload) == expected
