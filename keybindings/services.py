"""Key binding services."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from cryptotokens.errors import CryptoTokenError
from cryptotokens.services import get_private_key_by_id

from .models import InternalKeyBinding


def credentials_pem(name: str) -> bytes:
    """Certificate and private key of an active binding, PEM, for a TLS client-certificate login.

    Only for keys a soft token already holds in this process: a key in an HSM or a cloud service never
    leaves it, so such a binding cannot serve a library that wants the key itself.
    """
    binding = InternalKeyBinding.objects.select_related("crypto_token", "certificate").filter(name=name).first()
    if binding is None:
        raise CryptoTokenError(f"Key binding '{name}' does not exist.")
    if binding.status != InternalKeyBinding.Status.ACTIVE:
        raise CryptoTokenError(f"Key binding '{name}' is disabled.")
    if binding.certificate is None:
        raise CryptoTokenError(f"Key binding '{name}' has no certificate yet.")
    if binding.crypto_token.token_type != "SoftCryptoToken":
        raise CryptoTokenError(f"Key binding '{name}' keeps its key on a {binding.crypto_token.token_type}; "
                               "client-certificate login needs a soft token key.")
    key = get_private_key_by_id(binding.crypto_token_id, binding.key_pair_alias)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return binding.certificate.certificate.public_bytes(serialization.Encoding.PEM) + key_pem


def bindings_using_token(token, alias: str | None) -> list[str]:
    """Key bindings whose key lives on ``token`` (optionally: under ``alias``)."""
    qs = InternalKeyBinding.objects.filter(crypto_token=token)
    if alias is not None:
        qs = qs.filter(key_pair_alias=alias)
    return [f"key binding '{name}'" for name in qs.values_list("name", flat=True)]
