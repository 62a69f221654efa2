"""Fixtures of the key binding tests: a token with a key, bindings, certificates built to order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@pytest.fixture
def kb_token(soft_token_factory):
    return soft_token_factory("KbToken")


@pytest.fixture
def binding_factory(actor, kb_token) -> Callable:
    from keybindings import services

    def make(name: str = "kb", binding_type: str = "AuthenticationKeyBinding", key_spec: str = "P-256", **kw):
        return services.create_binding(actor, name=name, binding_type=binding_type, crypto_token=kb_token,
                                       key_spec=key_spec, **kw)

    return make


KU_FIELDS = dict(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)


@pytest.fixture
def cert_for(actor) -> Callable:
    """A certificate for a binding's key, signed by ``ca``'s key, with exactly the extensions asked for."""
    from cryptotokens import services as tokens

    def make(binding, ca, *, ku=("digital_signature",), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), is_ca=False,
             days=30, alias=None):
        public = tokens.get_private_key(binding.crypto_token, alias or binding.key_pair_alias).public_key()
        ca_key = tokens.get_private_key(ca.crypto_token, ca.key_alias)
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kb")]))
                   .issuer_name(ca.certificate.subject).public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
        if ku is not None:
            builder = builder.add_extension(x509.KeyUsage(**{**KU_FIELDS, **{k: True for k in ku}}), critical=True)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    return make
