"""Crypto token backends. Each registers itself in :data:`registry` by its type name."""

from . import soft  # noqa: F401,E402  (registers the soft backend)
from .base import BackendParameter, CryptoTokenBackend, KeySpec, registry  # noqa: F401
