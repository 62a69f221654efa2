"""The message layer with a CA key held by a crypto token: the envelope decrypts and the CertRep is signed
through the token's key handle, using nothing of the handle but ``decrypt``, ``sign`` and ``public_key``."""

from __future__ import annotations

import pytest

from protocols.scep.messages import PkiStatus, build_cert_rep, decrypt_envelope, parse_csr, parse_pki_message
from protocols.scep.messages.client import build_pkcs_req, parse_cert_rep

from .message_fixtures import parties


class OnlyDecryptAndSign:
    """A key handle reduced to what the message layer may use: any other call fails the test."""

    def __init__(self, key):
        self._key = key
        self.calls: list[str] = []

    def decrypt(self, ciphertext, padding):
        self.calls.append("decrypt")
        return self._key.decrypt(ciphertext, padding)

    def sign(self, data, *args):
        self.calls.append("sign")
        return self._key.sign(data, *args)

    def public_key(self):
        return self._key.public_key()


@pytest.mark.django_db
@pytest.mark.parametrize("cipher,key_transport", [("aes256", "pkcs1v15"), ("des3", "oaep")])
def test_soft_token_key_decrypts_and_signs(rsa_root_ca, cipher, key_transport):
    from cryptotokens.services import get_private_key

    ca_cert = rsa_root_ca.certificate
    token_key = get_private_key(rsa_root_ca.crypto_token, rsa_root_ca.key_alias)
    handle = OnlyDecryptAndSign(token_key)
    p = parties()

    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, ca_cert, cipher=cipher, key_transport=key_transport)
    message = parse_pki_message(req.data)
    inner = decrypt_envelope(message, handle, ca_cert)
    assert parse_csr(inner.content, message=message).csr == p.csr

    reply = build_cert_rep(request=message, envelope=inner, status=PkiStatus.SUCCESS, issued_certs=[ca_cert],
                           signer_cert=ca_cert, signer_key=handle)
    assert handle.calls == ["decrypt", "sign"]
    result = parse_cert_rep(reply, p.client_key, p.client_cert, ca_certs=[ca_cert])
    assert result.status == PkiStatus.SUCCESS and result.certificates == [ca_cert] and result.cipher == cipher
    assert result.message.signer_certificate == ca_cert


@pytest.mark.django_db
def test_soft_token_key_handle_as_returned(rsa_root_ca):
    """The token's own handle object (no wrapper) works as recipient and signer key."""
    from cryptotokens.services import get_private_key

    ca_cert = rsa_root_ca.certificate
    key = get_private_key(rsa_root_ca.crypto_token, rsa_root_ca.key_alias)
    p = parties()
    message = parse_pki_message(build_pkcs_req(p.csr, p.client_cert, p.client_key, ca_cert).data)
    reply = build_cert_rep(request=message, envelope=decrypt_envelope(message, key, ca_cert),
                           status=PkiStatus.PENDING, signer_cert=ca_cert, signer_key=key)
    assert parse_cert_rep(reply, p.client_key).status == PkiStatus.PENDING
