"""Key binding credentials: only active bindings with a certificate and a key this process holds."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_der_public_key

from cryptotokens import services
from cryptotokens.errors import CryptoTokenError
from keybindings.models import InternalKeyBinding
from keybindings.services import credentials_pem
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile


@pytest.fixture
def binding(root_ca, soft_token, actor):
    entry = services.generate_key_pair(actor, soft_token, "kb", "RSA2048")
    row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                public_key=load_der_public_key(bytes(entry.public_key_der)), subject_dn="CN=kb")).row
    return InternalKeyBinding.objects.create(name="kb", crypto_token=soft_token, key_pair_alias="kb", certificate=row)


def test_pem_holds_certificate_and_matching_key(binding):
    data = credentials_pem("kb")
    cert = x509.load_pem_x509_certificate(data)
    key = serialization.load_pem_private_key(data[data.index(b"-----BEGIN PRIVATE KEY"):], None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "DISABLED"}, "disabled"),
        ({"certificate": None}, "no certificate"),
    ],
)
def test_refusals(binding, change, message):
    for k, v in change.items():
        setattr(binding, k, v)
    binding.save()
    with pytest.raises(CryptoTokenError, match=message):
        credentials_pem("kb")


def test_unknown_binding(db):
    with pytest.raises(CryptoTokenError, match="does not exist"):
        credentials_pem("nope")


def test_token_and_key_in_use_by_a_binding_are_kept(binding, actor, soft_token):
    with pytest.raises(CryptoTokenError, match="in use by key binding 'kb'"):
        services.remove_key_pair(actor, soft_token, "kb")
    with pytest.raises(CryptoTokenError, match="key binding 'kb'"):
        services.delete_token(actor, soft_token)
