"""The one interface every crypto token backend implements.

A backend turns a :class:`~cryptotokens.models.CryptoToken` row into key operations. Key handles it
returns implement ``cryptography``'s private-key interface (``sign``, ``public_key``, ``key_size`` or
``curve``), so certificate, CRL and CSR builders sign through any backend without branching on it.
"""

from __future__ import annotations

import abc
import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from ..errors import CryptoTokenError, KeyPairNotFoundError, UnsupportedKeySpecError

if TYPE_CHECKING:
    from ..models import CryptoToken, CryptoTokenKeyPair

CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
}
CURVE_ALIASES = {
    "p-256": "secp256r1", "p256": "secp256r1", "prime256v1": "secp256r1", "secp256r1": "secp256r1",
    "p-384": "secp384r1", "p384": "secp384r1", "secp384r1": "secp384r1",
    "p-521": "secp521r1", "p521": "secp521r1", "secp521r1": "secp521r1",
    "brainpoolp256r1": "brainpoolP256r1", "brainpoolp384r1": "brainpoolP384r1",
    "brainpoolp512r1": "brainpoolP512r1",
}


@dataclass(frozen=True)
class KeySpec:
    """A key algorithm with its size (RSA) or curve (EC)."""

    algorithm: str  # RSA, EC, Ed25519, Ed448
    size: int | None = None
    curve: str | None = None

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        """Parse ``RSA2048``, ``RSA 3072``, ``2048``, ``P-256``, ``secp384r1``, ``EC P-521``, ``Ed25519``."""
        raw = text.strip()
        low = raw.lower().replace("_", "-")
        if low in {"ed25519"}:
            return cls("Ed25519")
        if low in {"ed448"}:
            return cls("Ed448")
        m = re.fullmatch(r"(?:rsa)?\s*-?\s*(\d{3,5})", low)
        if m:
            size = int(m.group(1))
            if size < 1024 or size > 16384 or size % 8:
                raise UnsupportedKeySpecError(f"RSA key size {size} is not supported")
            return cls("RSA", size=size)
        low = re.sub(r"^(ec|ecdsa)\s*-?\s*", "", low)
        if low in CURVE_ALIASES:
            return cls("EC", curve=CURVE_ALIASES[low])
        raise UnsupportedKeySpecError(f"Unknown key specification '{text}'")

    def __str__(self) -> str:
        if self.algorithm == "RSA":
            return f"RSA{self.size}"
        if self.algorithm == "EC":
            return str(self.curve)
        return self.algorithm

    @property
    def spec_value(self) -> str:
        """The size or curve as stored on a key pair row."""
        return str(self.size) if self.algorithm == "RSA" else (self.curve or self.algorithm)

    def generate_software_key(self) -> PrivateKeyTypes:
        """Generate this key in software (soft tokens, tests, server-side end-entity keys)."""
        if self.algorithm == "RSA":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.size or 2048)
        if self.algorithm == "EC":
            return ec.generate_private_key(CURVES[self.curve or "secp256r1"]())
        if self.algorithm == "Ed25519":
            return ed25519.Ed25519PrivateKey.generate()
        if self.algorithm == "Ed448":
            return ed448.Ed448PrivateKey.generate()
        raise UnsupportedKeySpecError(f"Unknown key algorithm {self.algorithm}")


def key_spec_of(public_key: PublicKeyTypes) -> KeySpec:
    """The :class:`KeySpec` that describes a public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeySpec("RSA", size=public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return KeySpec("EC", curve=public_key.curve.name)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeySpec("Ed25519")
    if isinstance(public_key, ed448.Ed448PublicKey):
        return KeySpec("Ed448")
    raise UnsupportedKeySpecError(f"Unsupported public key type {type(public_key).__name__}")


def subject_key_identifier(public_key: PublicKeyTypes) -> str:
    """RFC 5280 method 1 key identifier (SHA-1 of the subjectPublicKey bits), as hex."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest.hex()  # type: ignore[arg-type]


def public_key_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class BackendParameter:
    """A configuration field a backend declares; forms, serializers and the CLI are built from these."""

    name: str
    label: str
    required: bool = True
    secret: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    help_text: str = ""
    default: Any = None


@dataclass
class GeneratedKeyPair:
    """What a backend returns after generating a key: the public key and its private reference."""

    public_key: PublicKeyTypes
    private_data: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceKey:
    """A private key as the device itself lists it (HSM slot, KMS alias, vault key, soft keystore row).

    ``alias`` is what a key pair row would be called (the PKCS#11 label, the KMS alias without ``alias/``, the
    Key Vault key name); ``reference`` is what the row keeps as ``private_data`` to find it again (the CKA_ID,
    the KMS key ARN, the versioned Key Vault key id). ``public_key`` is None when the device holds no public
    half for the key (such a key cannot be used here: a CA needs its public key). ``problem`` says why a key
    is listed but cannot be used (wrong key usage, an unsupported type, an ambiguous label).
    """

    alias: str
    key_algorithm: str
    key_spec: str
    public_key: PublicKeyTypes | None = None
    reference: bytes | None = None
    problem: str = ""

    @property
    def usable(self) -> bool:
        return self.public_key is not None and not self.problem and bool(self.alias)

    @property
    def subject_key_id(self) -> str:
        return subject_key_identifier(self.public_key) if self.public_key is not None else ""


class CryptoTokenBackend(abc.ABC):
    """A crypto token type. Subclasses declare their name, label and parameters and register themselves."""

    type_name: ClassVar[str]
    label: ClassVar[str]
    parameters: ClassVar[tuple[BackendParameter, ...]] = ()
    supports_export: ClassVar[bool] = False

    def __init__(self, token: CryptoToken):
        self.token = token

    @abc.abstractmethod
    def check_auth_code(self, auth_code: str) -> None:
        """Raise AuthenticationCodeError unless ``auth_code`` opens this token."""

    @abc.abstractmethod
    def initialize(self, auth_code: str) -> None:
        """Prepare a newly created token (e.g. store an authentication verifier)."""

    @abc.abstractmethod
    def generate_key_pair(self, alias: str, spec: KeySpec, auth_code: str) -> GeneratedKeyPair:
        """Create a key pair on the token."""

    @abc.abstractmethod
    def load_private_key(self, entry: CryptoTokenKeyPair, auth_code: str) -> PrivateKeyTypes:
        """Return a handle for the private key (a ``cryptography`` private key or an object like one)."""

    @abc.abstractmethod
    def list_device_keys(self, auth_code: str) -> list[DeviceKey]:
        """Every private key the device holds for this token, read from the device itself (not this database)."""

    def device_identity(self) -> str | None:
        """What the token's settings resolve to on the device, where two tokens could share one (a PKCS#11
        slot's token); None where every token has a place of its own."""
        return None

    def adoptable_key(self, alias: str, auth_code: str) -> GeneratedKeyPair:
        """The key ``alias`` already on the device, as a key pair row would record it (nothing is created and no
        key material leaves the device). KeyPairNotFoundError when the device has no such key."""
        found = [k for k in self.list_device_keys(auth_code) if k.alias == alias]
        if not found:
            raise KeyPairNotFoundError(f"Crypto token '{self.token.name}' holds no key '{alias}' on its device.")
        if len(found) > 1:
            raise CryptoTokenError(f"More than one key is named '{alias}' on the device of crypto token "
                                   f"'{self.token.name}': rename one of them first.")
        key = found[0]
        if not key.usable:
            raise CryptoTokenError(f"Key '{alias}' of crypto token '{self.token.name}' cannot be used: "
                                   f"{key.problem or 'the device holds no public key for it'}.")
        assert key.public_key is not None
        return GeneratedKeyPair(public_key=key.public_key, private_data=key.reference)

    def remove_key_pair(self, entry: CryptoTokenKeyPair, auth_code: str) -> None:  # noqa: B027
        """Remove the key material behind ``entry`` (nothing to do where the row is the key store)."""

    def supported(self, spec: KeySpec) -> None:  # noqa: B027 (optional hook: most backends take every spec)
        """Raise UnsupportedKeySpecError when this backend cannot hold ``spec``."""


class _Registry:
    def __init__(self) -> None:
        self._backends: dict[str, type[CryptoTokenBackend]] = {}

    def register(self, cls: type[CryptoTokenBackend]) -> type[CryptoTokenBackend]:
        self._backends[cls.type_name] = cls
        return cls

    def get(self, type_name: str) -> type[CryptoTokenBackend]:
        try:
            return self._backends[type_name]
        except KeyError:
            raise UnsupportedKeySpecError(f"Unknown crypto token type '{type_name}'") from None

    def choices(self) -> list[tuple[str, str]]:
        return [(name, cls.label) for name, cls in self._backends.items()]

    def __iter__(self):
        return iter(self._backends.values())


registry = _Registry()


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
