"""PKCS#11 tokens against a real SoftHSM2 through python-pkcs11: keys, signing, CAs, failures, NG re-init."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cryptotokens import services
from cryptotokens.backends import pkcs11 as p11_backend
from cryptotokens.errors import (
    AuthenticationCodeError,
    CryptoTokenError,
    CryptoTokenOfflineError,
    KeyPairExistsError,
    UnsupportedKeySpecError,
)
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from tests.conftest import pem

PIN = "1234"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory) -> Path:
    """A SoftHSM2 configuration of this test session (set before the library is first loaded)."""
    if not os.path.exists(MODULE) or shutil.which("softhsm2-util") is None:
        raise AssertionError("SoftHSM2 is not installed: `make test` installs the Debian package softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return root


@pytest.fixture
def hsm_label(softhsm) -> str:
    """A freshly initialized SoftHSM2 token; returns its label."""
    label = "t" + secrets.token_hex(4)
    out = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
                          "--so-pin", "87654321"], capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0, out.stderr
    # SoftHSM2 reads its token directory at initialization: make this process see the new token.
    import pkcs11

    p11_backend.clear_sessions()
    lib = pkcs11.lib(MODULE)
    if lib.initialized:
        lib.reinitialize()
    return label


@pytest.fixture
def hsm_token_factory(db, actor, hsm_label, settings):
    settings.PKCS11_LIBRARIES = {"SoftHSM2": MODULE}
    made = []

    def make(name="HsmToken", token_type="PKCS11CryptoToken", reference_type="SLOT_LABEL", reference=None, pin=PIN,
             **kw):
        token = services.create_token(actor, name=name, token_type=token_type, auth_code=pin,
                                      properties={"library": "SoftHSM2", "reference_type": reference_type,
                                                  "reference": hsm_label if reference is None else reference}, **kw)
        made.append(token)
        return token

    yield make
    p11_backend.clear_sessions()


@pytest.fixture
def hsm_token(hsm_token_factory):
    return hsm_token_factory()


def _slot_of(label: str) -> tuple[int, int]:
    import pkcs11

    slots = pkcs11.lib(MODULE).get_slots(token_present=True)
    for index, slot in enumerate(slots):
        if slot.get_token().label == label:
            return slot.slot_id, index
    raise AssertionError(label)


@pytest.mark.parametrize("reference_type", ["SLOT_LABEL", "SLOT_ID", "SLOT_INDEX"])
def test_reference_types(hsm_token_factory, hsm_label, actor, reference_type):
    slot_id, index = _slot_of(hsm_label)
    ref = {"SLOT_LABEL": hsm_label, "SLOT_ID": str(slot_id), "SLOT_INDEX": str(index)}[reference_type]
    token = hsm_token_factory(reference_type=reference_type, reference=ref)
    entry = services.generate_key_pair(actor, token, "k", "P-256")
    assert entry.private_data and services.test_key_pair(actor, token, "k")


@pytest.mark.parametrize("spec", ["RSA2048", "RSA3072", "P-256", "P-384", "brainpoolP256r1"])
def test_generate_and_sign(hsm_token, actor, spec):
    services.generate_key_pair(actor, hsm_token, "key", spec)
    key = services.get_private_key(CryptoToken.objects.get(pk=hsm_token.pk), "key")
    data = b"to be signed" * 50
    if isinstance(key, rsa.RSAPrivateKey):
        key.public_key().verify(key.sign(data, padding.PKCS1v15(), hashes.SHA256()), data, padding.PKCS1v15(),
                                hashes.SHA256())
        pss = padding.PSS(padding.MGF1(hashes.SHA384()), 48)
        key.public_key().verify(key.sign(data, pss, hashes.SHA384()), data, pss, hashes.SHA384())
    else:
        for h in (hashes.SHA256(), hashes.SHA384()):
            key.public_key().verify(key.sign(data, ec.ECDSA(h)), data, ec.ECDSA(h))
    with pytest.raises(CryptoTokenError, match="cannot be exported"):
        key.private_bytes(None, None, None)


def test_private_keys_are_not_extractable(hsm_token, actor, hsm_label):
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    services.generate_key_pair(actor, hsm_token, "secret", "RSA2048")
    p11_backend.clear_sessions()  # one login per token and process: ours must be closed first
    with pkcs11.lib(MODULE).get_token(token_label=hsm_label).open(user_pin=PIN) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="secret")
        assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True


@pytest.mark.parametrize("key_spec", ["RSA2048", "P-256"])
def test_ca_on_hsm_key_signs_certificates_and_crls(hsm_token, ca_factory, actor, csr_factory, openssl, key_spec):
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke

    ca = ca_factory("HsmCA", key_spec=key_spec, token=hsm_token)
    csr, _ = csr_factory("CN=hsm-leaf")
    leaf = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr)).row
    revoke(actor, leaf, "keyCompromise")
    crl = create_crl(actor, ca)
    openssl.write("ca.pem", pem(ca.certificate))
    openssl.write("leaf.pem", pem(leaf.certificate))
    openssl.write("crl.der", bytes(crl.der))
    assert "OK" in openssl("verify", "-CAfile", "ca.pem", "leaf.pem").stdout
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in out.stdout + out.stderr


def test_wrong_pin_unknown_slot_missing_library(hsm_token_factory, settings):
    with pytest.raises(AuthenticationCodeError, match="Wrong PIN"):
        hsm_token_factory(name="BadPin", pin="9999")
    with pytest.raises(CryptoTokenError, match="No PKCS#11 token with slot label 'nope'"):
        hsm_token_factory(name="NoSlot", reference="nope")
    with pytest.raises(CryptoTokenError, match="No PKCS#11 token with slot id '999999'"):
        hsm_token_factory(name="NoId", reference_type="SLOT_ID", reference="999999")
    settings.PKCS11_LIBRARIES = {"SoftHSM2": "/nonexistent/libnothing.so"}
    with pytest.raises(CryptoTokenError, match="does not exist"):
        services.create_token(None or __import__("pki.auth.access", fromlist=["Actor"]).Actor.system_actor(),
                              name="NoLib", token_type="PKCS11CryptoToken", auth_code=PIN,
                              properties={"library": "SoftHSM2", "reference_type": "SLOT_LABEL", "reference": "x"})
    assert not CryptoToken.objects.filter(name__in=["BadPin", "NoSlot", "NoId", "NoLib"]).exists()


def test_alias_twice_and_on_hsm_only(hsm_token, actor, hsm_label):
    import pkcs11
    from pkcs11 import KeyType

    services.generate_key_pair(actor, hsm_token, "dup", "P-256")
    with pytest.raises(KeyPairExistsError):
        services.generate_key_pair(actor, hsm_token, "dup", "P-256")
    # An object the database does not know about, made directly on the HSM
    p11_backend.clear_sessions()
    with pkcs11.lib(MODULE).get_token(token_label=hsm_label).open(user_pin=PIN, rw=True) as session:
        session.generate_keypair(KeyType.RSA, 1024, label="foreign", store=True)
    p11_backend.clear_sessions()
    with pytest.raises(KeyPairExistsError, match="already holds an object labelled 'foreign'"):
        services.generate_key_pair(actor, CryptoToken.objects.get(pk=hsm_token.pk), "foreign", "P-256")
    assert not CryptoTokenKeyPair.objects.filter(alias="foreign").exists()


def test_unsupported_spec_and_removal(hsm_token, actor, hsm_label):
    import pkcs11
    from pkcs11 import Attribute

    with pytest.raises(UnsupportedKeySpecError, match="Ed25519 keys are not supported on PKCS#11"):
        services.generate_key_pair(actor, hsm_token, "ed", "Ed25519")
    services.generate_key_pair(actor, hsm_token, "gone", "P-256")
    services.remove_key_pair(actor, hsm_token, "gone")
    p11_backend.clear_sessions()
    with pkcs11.lib(MODULE).get_token(token_label=hsm_label).open(user_pin=PIN) as session:
        assert list(session.get_objects({Attribute.LABEL: "gone"})) == []


def test_deactivated_token_is_offline(hsm_token_factory, actor):
    token = hsm_token_factory(auto_activate=False)
    services.generate_key_pair(actor, token, "k", "P-256")
    services.deactivate(actor, token)
    with pytest.raises(CryptoTokenOfflineError):
        services.get_private_key(CryptoToken.objects.get(pk=token.pk), "k")


@pytest.mark.parametrize(("token_type", "recovers"), [("Pkcs11NgCryptoToken", True), ("PKCS11CryptoToken", False)])
def test_library_finalized_under_a_running_process(hsm_token_factory, actor, token_type, recovers):
    import pkcs11

    token = hsm_token_factory(token_type=token_type)
    services.generate_key_pair(actor, token, "k", "P-256")
    key = services.get_private_key(CryptoToken.objects.get(pk=token.pk), "k")
    data = b"before and after"
    key.sign(data, ec.ECDSA(hashes.SHA256()))
    pkcs11.lib(MODULE).finalize()  # the HSM connection drops under the running process
    if recovers:
        key.public_key().verify(key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256()))
    else:
        with pytest.raises(CryptoTokenError, match="HSM connection failed"):
            key.sign(data, ec.ECDSA(hashes.SHA256()))
        pkcs11.lib(MODULE).initialize()
        sig = key.sign(data, ec.ECDSA(hashes.SHA256()))  # its session was dropped: a new one works
        key.public_key().verify(sig, data, ec.ECDSA(hashes.SHA256()))
