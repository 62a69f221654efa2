"""Soft crypto token: keys kept in the database, each as a PKCS#12 encrypted with the authentication code
(PBES2 with AES-256-CBC, PBKDF2-HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import PrivateFormat, load_der_public_key, pkcs12

from ..errors import AuthenticationCodeError, KeyPairNotFoundError
from .base import CryptoTokenBackend, DeviceKey, GeneratedKeyPair, KeySpec, registry

PBKDF2_ROUNDS = 200_000
PKCS12_KDF_ROUNDS = 100_000
#: The verifier's rounds for a token made before they were recorded beside it.
UNRECORDED_ROUNDS = 200_000


def _verifier(auth_code: str, salt: bytes, rounds: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", auth_code.encode(), salt, rounds).hex()


def encrypt_pkcs12(key: PrivateKeyTypes, alias: str, auth_code: str, certificate=None) -> bytes:
    """A PKCS#12 holding ``key`` (and optionally its certificate), protected by ``auth_code``."""
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PKCS12_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(auth_code.encode())
    )
    return pkcs12.serialize_key_and_certificates(alias.encode(), key, certificate, None, encryption)  # type: ignore[arg-type]


@registry.register
class SoftCryptoTokenBackend(CryptoTokenBackend):
    type_name = "SoftCryptoToken"
    label = "Soft (PKCS#12 keystore in the database)"
    supports_export = True

    def initialize(self, auth_code: str) -> None:
        salt = os.urandom(16)
        self.token.properties = {
            **self.token.properties,
            "auth_salt": base64.b64encode(salt).decode(),
            "auth_rounds": PBKDF2_ROUNDS,  # recorded, as the PKCS#12s record theirs: a later count still checks it
            "auth_verifier": _verifier(auth_code, salt, PBKDF2_ROUNDS),
        }

    def check_auth_code(self, auth_code: str) -> None:
        salt = base64.b64decode(self.token.properties["auth_salt"])
        rounds = int(self.token.properties.get("auth_rounds", UNRECORDED_ROUNDS))
        if not hmac.compare_digest(_verifier(auth_code, salt, rounds), self.token.properties["auth_verifier"]):
            raise AuthenticationCodeError(f"Wrong authentication code for crypto token '{self.token.name}'.")

    def generate_key_pair(self, alias: str, spec: KeySpec, auth_code: str) -> GeneratedKeyPair:
        key = spec.generate_software_key()
        return GeneratedKeyPair(public_key=key.public_key(), private_data=encrypt_pkcs12(key, alias, auth_code))

    def import_private_key(self, alias: str, key: PrivateKeyTypes, auth_code: str) -> GeneratedKeyPair:
        return GeneratedKeyPair(public_key=key.public_key(), private_data=encrypt_pkcs12(key, alias, auth_code))

    def load_private_key(self, entry, auth_code: str) -> PrivateKeyTypes:
        try:
            key, _cert, _extra = pkcs12.load_key_and_certificates(bytes(entry.private_data), auth_code.encode())
        except ValueError as exc:
            raise AuthenticationCodeError(f"Cannot open key '{entry.alias}': wrong authentication code.") from exc
        assert key is not None
        return key

    def list_device_keys(self, auth_code: str) -> list[DeviceKey]:
        """A soft token's keystore is its rows in this database: every key pair of the token."""
        return [DeviceKey(alias=entry.alias, key_algorithm=entry.key_algorithm, key_spec=entry.key_spec,
                          public_key=load_der_public_key(bytes(entry.public_key_der)))
                for entry in self.token.key_pairs.all()] if self.token.pk else []

    def adoptable_key(self, alias: str, auth_code: str) -> GeneratedKeyPair:
        # Nothing to adopt: every key of a soft token is a key pair row already.
        raise KeyPairNotFoundError(f"No key pair '{alias}' on crypto token '{self.token.name}'.")
