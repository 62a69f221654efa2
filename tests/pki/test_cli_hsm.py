"""The ``ejbca.sh`` forms of moving a CA with its HSM key: a PKCS#11 crypto token created with EJBCA's
``--lib/--slotlabeltype/--slotlabel``, its device keys listed, and ``ca init --existingkey <alias>`` on a key another
tool put on the slot. Real SoftHSM2, keys imported with softhsm2-util (the crypto token tests' fixtures)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cryptotokens.models import CryptoToken
from pki.models import CertificateAuthority
from tests.cryptotokens import conftest as hsm_fixtures
from tests.pki.cli_support import refused, run

softhsm, hsm_label, hsm_settings = hsm_fixtures.softhsm, hsm_fixtures.hsm_label, hsm_fixtures.hsm_settings


@pytest.fixture
def hsm_cli(cli_init, hsm_settings, hsm_label, softhsm):
    """A PKCS#11 token made as EJBCA's documentation shows it, with a key an earlier CA left on the slot."""
    run("cryptotoken", "create", "--token", "HsmToken", "--pin", hsm_fixtures.PIN, "--autoactivate", "true",
        "--type", "PKCS11CryptoToken", "--lib", hsm_fixtures.SOFTHSM_MODULE, "--slotlabeltype", "SLOT_LABEL",
        "--slotlabel", hsm_label)
    key = ec.generate_private_key(ec.SECP384R1())
    softhsm.import_key(hsm_label, key, "ejbca-signKey", b"\x07\x07")
    return key


def test_a_ca_on_a_key_already_on_the_hsm(hsm_cli):
    token = CryptoToken.objects.get(name="HsmToken")
    assert token.properties["library"] == "SoftHSM2" and token.properties["reference_type"] == "SLOT_LABEL"
    listing = run("cryptotoken", "listkeys", "--token", "HsmToken")
    assert "ejbca-signKey\tEC\tsecp384r1" in listing and "(not registered)" in listing
    run("ca", "init", "--caname", "MovedCA", "--dn", "CN=Moved CA,O=Example,C=SE", "--tokenName", "HsmToken",
        "--existingkey", "ejbca-signKey", "-v", "3650", "--policy", "null", "-s", "SHA384WithECDSA")
    ca = CertificateAuthority.objects.get(name="MovedCA")
    assert ca.key_alias == "ejbca-signKey" and ca.crypto_token_id == token.pk
    assert ca.certificate.public_key().public_numbers() == hsm_cli.public_key().public_numbers()
    assert "(not registered)" not in run("cryptotoken", "listkeys", "--token", "HsmToken")
    assert "neither registered nor on its device" in refused(
        "ca", "init", "--caname", "Nowhere", "--dn", "CN=Nowhere", "--tokenName", "HsmToken", "--existingkey", "nope")
    assert not CertificateAuthority.objects.filter(name="Nowhere").exists()
