"""Who uses a crypto token or one of its key pairs.

Higher layers (CAs, key bindings) register a provider; the token layer asks them before deleting a
token or removing a key, without importing those layers.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import CryptoToken

# provider(token, alias or None) -> human-readable names of what uses it, e.g. ["CA 'ManagementCA'"]
UsageProvider = Callable[[CryptoToken, str | None], list[str]]
_providers: list[UsageProvider] = []


def register_usage_provider(provider: UsageProvider) -> None:
    if provider not in _providers:
        _providers.append(provider)


def users_of(token: CryptoToken, alias: str | None = None) -> list[str]:
    """Everything that uses ``token`` (or only its key pair ``alias``)."""
    found: list[str] = []
    for provider in _providers:
        found.extend(provider(token, alias))
    return found
