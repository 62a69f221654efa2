"""Keys already on the device: every backend lists what its device holds (not only this database's rows), and a
key made outside this project (softhsm2-util, python-pkcs11 directly, boto3, the Key Vault API) can be registered
by its alias without its private key leaving the device. Real components: SoftHSM2, moto, the local Key Vault.

Also: one PKCS#11 slot cannot be mapped by two crypto tokens, whichever way the reference names it.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, KeyType
from pkcs11.util.ec import encode_named_curve_parameters

from cryptotokens import services
from cryptotokens.backends.pkcs11.mechanisms import CURVE_OIDS
from cryptotokens.errors import CryptoTokenError, KeyPairExistsError, KeyPairNotFoundError
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.models import AuditEvent

DATA = b"signed on the device"


def _sign_and_verify(token: CryptoToken, alias: str) -> None:
    """Sign through the registered key pair's handle and verify with the public key recorded for it."""
    key = services.get_private_key(CryptoToken.objects.get(pk=token.pk), alias)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(key.sign(DATA, padding.PKCS1v15(), hashes.SHA256()), DATA, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))


def _listing(actor, token) -> dict[str, services.DeviceKeyListing]:
    return {k.alias: k for k in services.list_device_keys(actor, token)}


# -- PKCS#11 -----------------------------------------------------------------------------------------------------


@pytest.fixture
def foreign_keys(hsm_token, softhsm, hsm_label):
    """Keys put on the slot outside this project: two imported with softhsm2-util, and with python-pkcs11 directly
    an EC key whose public half is on the slot, a key with no label, and two private keys sharing one label."""
    rsa_key = rsa.generate_private_key(65537, 2048)
    softhsm.import_key(hsm_label, rsa_key, "ejbca-rsa", b"\x01\x02")
    ec_key = ec.generate_private_key(ec.SECP384R1())
    softhsm.import_key(hsm_label, ec_key, "ejbca-ec", b"\x03\x04")
    with softhsm.session(hsm_label) as session:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVE_OIDS["secp256r1"])}, local=True)
        params.generate_keypair(store=True, label="tool-ec", id=b"\x05")
        session.generate_keypair(KeyType.RSA, 2048, store=True, id=b"\x06")  # no label
        for key_id in (b"\x07", b"\x08"):
            session.generate_keypair(KeyType.RSA, 2048, store=True, label="twice", id=key_id)
    return {"ejbca-rsa": rsa_key, "ejbca-ec": ec_key}


def test_pkcs11_lists_the_slot_itself(hsm_token, foreign_keys, actor):
    services.generate_key_pair(actor, hsm_token, "made-here", "P-256")
    keys = services.list_device_keys(actor, hsm_token)
    by_alias = {}
    for key in keys:
        by_alias.setdefault(key.alias, []).append(key)
    assert sorted(by_alias) == ["", "ejbca-ec", "ejbca-rsa", "made-here", "tool-ec", "twice"]
    rows = [(k.key_algorithm, k.key_spec, k.usable, k.known) for k in (by_alias["ejbca-rsa"][0],
            by_alias["ejbca-ec"][0], by_alias["tool-ec"][0], by_alias["made-here"][0])]
    assert rows == [("RSA", "2048", True, False), ("EC", "secp384r1", True, False), ("EC", "secp256r1", True, False),
                    ("EC", "secp256r1", True, True)]
    # The listed public key is the key's own (read from the slot, not made up).
    assert by_alias["ejbca-rsa"][0].public_key.public_numbers() == \
        foreign_keys["ejbca-rsa"].public_key().public_numbers()
    assert by_alias["ejbca-ec"][0].reference == b"\x03\x04"
    assert "no label" in by_alias[""][0].problem and not by_alias[""][0].usable
    assert len(by_alias["twice"]) == 2 and all("share the label" in k.problem for k in by_alias["twice"])


@pytest.mark.parametrize("alias", ["ejbca-rsa", "ejbca-ec", "tool-ec"])
def test_pkcs11_key_is_registered_by_its_label_and_signs(hsm_token, foreign_keys, actor, alias):
    entry = services.adopt_key_pair(actor, hsm_token, alias)
    assert entry.private_data and CryptoTokenKeyPair.objects.filter(token=hsm_token, alias=alias).count() == 1
    _sign_and_verify(hsm_token, alias)
    assert services.test_key_pair(actor, hsm_token, alias)
    assert _listing(actor, hsm_token)[alias].known
    event = AuditEvent.objects.filter(event_type="CRYPTOTOKEN_ADOPT_KEYPAIR").latest("sequence")
    assert event.outcome == "SUCCESS" and event.details["alias"] == alias


@pytest.mark.parametrize(("alias", "error", "message"), [
    ("nowhere", KeyPairNotFoundError, "holds no key 'nowhere'"),
    ("twice", CryptoTokenError, "More than one key is named 'twice'"),
    ("", CryptoTokenError, "alias of 1 to 255"),
])
def test_pkcs11_registration_refusals(hsm_token, foreign_keys, actor, alias, error, message):
    with pytest.raises(error, match=message):
        services.adopt_key_pair(actor, hsm_token, alias)
    assert not CryptoTokenKeyPair.objects.filter(token=hsm_token).exists()


def test_registering_twice_is_refused(hsm_token, foreign_keys, actor):
    services.adopt_key_pair(actor, hsm_token, "ejbca-ec")
    with pytest.raises(KeyPairExistsError, match="already registered"):
        services.adopt_key_pair(actor, hsm_token, "ejbca-ec")


def test_listing_needs_the_view_rule_and_registering_the_generate_rule(hsm_token, foreign_keys):
    from pki.errors import AuthorizationDenied

    class Viewer:
        name = "viewer"

        def require(self, resource: str) -> None:
            if not resource.startswith("/cryptotoken/view"):
                raise AuthorizationDenied(resource, self.name)

    assert _listing(Viewer(), hsm_token)["ejbca-rsa"].usable
    with pytest.raises(AuthorizationDenied):
        services.adopt_key_pair(Viewer(), hsm_token, "ejbca-rsa")
    assert not CryptoTokenKeyPair.objects.filter(token=hsm_token).exists()


def test_offline_token_lists_nothing(hsm_token_factory, actor, foreign_keys):
    manual = CryptoToken.objects.get(name="HsmToken")
    services.edit_token(actor, manual, auto_activate=False)
    services.deactivate(actor, CryptoToken.objects.get(pk=manual.pk))
    from cryptotokens.errors import CryptoTokenOfflineError

    with pytest.raises(CryptoTokenOfflineError):
        services.list_device_keys(actor, CryptoToken.objects.get(pk=manual.pk))


# -- one slot, one crypto token ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token_type", "reference_type"), [
    ("PKCS11CryptoToken", "SLOT_LABEL"), ("PKCS11CryptoToken", "SLOT_ID"), ("Pkcs11NgCryptoToken", "SLOT_INDEX"),
])
def test_second_token_on_the_same_slot_is_refused(hsm_token_factory, softhsm, hsm_label, token_type, reference_type):
    first = hsm_token_factory("FirstOnSlot")
    slot_id, index = softhsm.slot_of(hsm_label)
    reference = {"SLOT_LABEL": hsm_label, "SLOT_ID": str(slot_id), "SLOT_INDEX": str(index)}[reference_type]
    with pytest.raises(CryptoTokenError, match=r"'SecondOnSlot' would map the same PKCS#11 slot as crypto token "
                                               r"'FirstOnSlot'"):
        hsm_token_factory("SecondOnSlot", token_type=token_type, reference_type=reference_type, reference=reference)
    assert list(CryptoToken.objects.values_list("name", flat=True)) == [first.name]


def test_remapping_onto_a_mapped_slot_is_refused(hsm_token_factory, softhsm, hsm_label, actor):
    hsm_token_factory("Mapped")
    softhsm.init_token(other := hsm_label + "b")
    second = hsm_token_factory("Elsewhere", reference=other)
    with pytest.raises(CryptoTokenError, match="'Elsewhere' would map the same PKCS#11 slot as crypto token 'Mapped'"):
        services.edit_token(actor, second, properties={"reference": hsm_label})
    assert CryptoToken.objects.get(pk=second.pk).properties["reference"] == other
    # Remapping to a slot of its own is fine.
    softhsm.init_token(third := hsm_label + "c")
    assert services.edit_token(actor, second, properties={"reference": third}).properties["reference"] == third


# -- soft, AWS KMS, Azure Key Vault --------------------------------------------------------------------------------


def test_soft_token_lists_its_keystore(soft_token, actor):
    services.generate_key_pair(actor, soft_token, "a", "P-256")
    services.generate_key_pair(actor, soft_token, "b", "RSA2048")
    listed = services.list_device_keys(actor, soft_token)
    assert [(k.alias, k.key_algorithm, k.key_spec, k.known) for k in listed] == [
        ("a", "EC", "secp256r1", True), ("b", "RSA", "2048", True)]
    with pytest.raises(KeyPairExistsError):
        services.adopt_key_pair(actor, soft_token, "a")
    with pytest.raises(KeyPairNotFoundError):
        services.adopt_key_pair(actor, soft_token, "c")


def test_a_public_key_object_of_another_key_is_not_registered(hsm_token, softhsm, hsm_label, actor):
    """The slot's public key object with the private key's CKA_ID belongs to another key (planted or mixed up):
    the signature check before registration catches it, and the refusal is audited."""
    from pkcs11 import ObjectClass

    ec_params = encode_named_curve_parameters(CURVE_OIDS["secp256r1"])
    with softhsm.session(hsm_label) as session:
        params = session.create_domain_parameters(KeyType.EC, {Attribute.EC_PARAMS: ec_params}, local=True)
        own_public, _ = params.generate_keypair(store=True, label="mixed", id=b"\x09")
        other_public, _ = params.generate_keypair(store=True, label="other", id=b"\x0a")
        point = other_public[Attribute.EC_POINT]
        own_public.destroy()
        session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC,
                               Attribute.TOKEN: True, Attribute.ID: b"\x09", Attribute.LABEL: "mixed",
                               Attribute.EC_PARAMS: ec_params, Attribute.EC_POINT: point, Attribute.VERIFY: True})
    with pytest.raises(CryptoTokenError, match="does not sign for the public key found with it"):
        services.adopt_key_pair(actor, hsm_token, "mixed")
    assert not CryptoTokenKeyPair.objects.filter(alias="mixed").exists()
    event = AuditEvent.objects.filter(event_type="CRYPTOTOKEN_ADOPT_KEYPAIR").latest("sequence")
    assert event.outcome == "FAILURE" and event.details["alias"] == "mixed"
    services.adopt_key_pair(actor, hsm_token, "other")  # the intact pair is fine
