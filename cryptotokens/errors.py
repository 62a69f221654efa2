"""Typed errors of the crypto token layer; each interface maps them to its own reply."""


class CryptoTokenError(Exception):
    """Base class: a crypto token operation was refused or failed."""


class CryptoTokenOfflineError(CryptoTokenError):
    """The token is not active, so its keys cannot be used."""

    def __init__(self, token_name: str):
        super().__init__(f"Crypto token '{token_name}' is offline: activate it with its authentication code.")
        self.token_name = token_name


class AuthenticationCodeError(CryptoTokenError):
    """A wrong authentication code was given."""


class KeyPairNotFoundError(CryptoTokenError):
    """No key pair with that alias on the token."""


class KeyPairExistsError(CryptoTokenError):
    """A key pair with that alias already exists on the token."""


class UnsupportedKeySpecError(CryptoTokenError):
    """The backend cannot generate or use that key algorithm or size."""
