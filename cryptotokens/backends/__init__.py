"""Crypto token backends. Each registers itself in :data:`registry` by its type name."""

from . import aws, azure, pkcs11, soft  # noqa: F401,E402  (each module registers its backend)
from .base import BackendParameter, CryptoTokenBackend, KeySpec, registry  # noqa: F401
