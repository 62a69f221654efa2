"""Private-key handles and client pools for keys held by a remote key service (AWS KMS, Azure Key Vault).

A handle subclasses ``cryptography``'s abstract private-key classes, so ``x509.CertificateBuilder.sign``,
the CRL builder and anything else that calls ``key.sign`` signs through the service without knowing it.
The handle only translates ``cryptography``'s padding and hash objects into a :class:`SignRequest`; the
backend's *signer* callable turns that into the service's call. RSA handles ``decrypt`` through the
backend's *decryptor* (a :class:`~.keys.DecryptRequest` in, the plaintext out; ValueError when the ciphertext
does not decrypt, as ``cryptography`` does), or refuse with the backend's reason. Private key material never
exists here: ``private_bytes``, ``private_numbers`` and ``exchange`` refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PSS, AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from ..errors import AuthenticationCodeError, CryptoTokenError, UnsupportedKeySpecError
from .keys import Decryptor, decrypt_request

SignScheme = Literal["PKCS1v15", "PSS", "ECDSA"]

# The hash each NIST curve is paired with by both cloud services (KMS ECDSA_SHA_256 only on P-256, ...).
CURVE_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


class CryptoTokenUnavailableError(CryptoTokenError):
    """The key service of a token cannot be reached (network, DNS, TLS, timeout or service outage)."""


class KeyServiceAccessDeniedError(AuthenticationCodeError):
    """The credentials are valid but lack a permission the operation needs."""


@dataclass(frozen=True)
class SignRequest:
    """One signature to make: the scheme, its hash, and the message (or its digest when ``prehashed``)."""

    scheme: SignScheme
    hash: hashes.HashAlgorithm
    data: bytes
    prehashed: bool = False

    def digest(self) -> bytes:
        """The hash of the message (services that sign digests need it)."""
        if self.prehashed:
            return self.data
        h = hashes.Hash(self.hash)
        h.update(self.data)
        return h.finalize()


RemoteSigner = Callable[[SignRequest], bytes]


def _hash_of(data: bytes, algorithm) -> tuple[hashes.HashAlgorithm, bool]:
    """The hash algorithm and whether ``data`` is already its digest (``Prehashed``)."""
    if isinstance(algorithm, Prehashed):
        inner: hashes.HashAlgorithm = algorithm._algorithm  # no public accessor in cryptography
        if len(data) != inner.digest_size:
            raise CryptoTokenError(f"A prehashed {inner.name} digest must be {inner.digest_size} bytes long.")
        return inner, True
    if isinstance(algorithm, hashes.HashAlgorithm):
        if algorithm.name not in {"sha256", "sha384", "sha512"}:
            raise UnsupportedKeySpecError(
                f"Remote key services sign with SHA-256, SHA-384 or SHA-512, not {algorithm.name.upper()}."
            )
        return algorithm, False
    raise UnsupportedKeySpecError(f"Remote keys cannot sign with {type(algorithm).__name__}.")


def check_curve_hash(curve: ec.EllipticCurve, hash_algorithm: hashes.HashAlgorithm, service: str) -> None:
    """Both services pair each curve with one hash; refuse other pairs with a message saying which."""
    expected = CURVE_HASH.get(curve.name)
    if expected != hash_algorithm.name:
        raise UnsupportedKeySpecError(
            f"{service} signs with {curve.name} keys only with {str(expected).upper()}, not "
            f"{hash_algorithm.name.upper()}: choose the signature algorithm that matches the key "
            "(SHA256withECDSA for P-256, SHA384withECDSA for P-384, SHA512withECDSA for P-521)."
        )


def ecdsa_raw_to_der(signature: bytes) -> bytes:
    """Convert a JOSE-style ECDSA signature (r || s, equal halves) to the DER SEQUENCE X.509 uses."""
    if not signature or len(signature) % 2:
        raise CryptoTokenError("The key service returned a malformed ECDSA signature.")
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))


class _NoPrivateMaterial:
    """Shared refusals: the private key stays in the service."""

    label: str

    def private_bytes(self, *args, **kwargs) -> bytes:
        raise CryptoTokenError(f"The private key {self.label} cannot be exported from its key service.")

    def private_numbers(self):
        raise CryptoTokenError(f"The private key {self.label} cannot be exported from its key service.")

    # A handle is immutable and shares its signer, so a copy is the same handle.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class RemoteRSAPrivateKey(_NoPrivateMaterial, rsa.RSAPrivateKey):
    """An RSA key held by a key service: ``sign`` (PKCS#1 v1.5 and PSS with salt = hash length), and
    ``decrypt`` where the backend gives a decryptor (else it refuses with ``no_decrypt_reason``)."""

    def __init__(self, public_key: rsa.RSAPublicKey, signer: RemoteSigner, label: str,
                 decryptor: Decryptor | None = None, no_decrypt_reason: str = ""):
        self._public_key = public_key
        self._signer = signer
        self.label = label
        self._decryptor = decryptor
        self._no_decrypt_reason = no_decrypt_reason

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def sign(self, data, padding: AsymmetricPadding, algorithm) -> bytes:  # type: ignore[override]
        data = bytes(data)
        hash_algorithm, prehashed = _hash_of(data, algorithm)
        scheme: SignScheme
        if isinstance(padding, PKCS1v15):
            scheme = "PKCS1v15"
        elif isinstance(padding, PSS):
            mgf_hash = getattr(padding.mgf, "_algorithm", None)
            if mgf_hash is None or mgf_hash.name != hash_algorithm.name:
                raise UnsupportedKeySpecError("Remote keys sign RSA-PSS only with MGF1 over the signature's hash.")
            salt = padding._salt_length  # no public accessor in cryptography
            if not (salt is PSS.DIGEST_LENGTH or salt == hash_algorithm.digest_size):
                # KMS and Key Vault both fix the salt length to the hash length.
                raise UnsupportedKeySpecError(
                    f"Remote keys sign RSA-PSS only with a salt as long as the hash ({hash_algorithm.digest_size} "
                    "bytes)."
                )
            scheme = "PSS"
        else:
            raise UnsupportedKeySpecError(f"Remote keys cannot sign with {type(padding).__name__} padding.")
        return self._signer(SignRequest(scheme, hash_algorithm, data, prehashed))

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        """Decrypt in the key service; ValueError when the ciphertext is refused (as ``cryptography``)."""
        if self._decryptor is None:
            reason = f" {self._no_decrypt_reason}" if self._no_decrypt_reason else ""
            raise CryptoTokenError(f"The key {self.label} is a signing key: it does not decrypt.{reason}")
        return self._decryptor(decrypt_request(ciphertext, padding, self._public_key))


class RemoteECPrivateKey(_NoPrivateMaterial, ec.EllipticCurvePrivateKey):
    """An EC key held by a key service; ``sign`` returns DER ECDSA signatures like a local key."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, signer: RemoteSigner, label: str):
        self._public_key = public_key
        self._signer = signer
        self.label = label

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    def sign(self, data, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:  # type: ignore[override]
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedKeySpecError(f"EC keys sign with ECDSA, not {type(signature_algorithm).__name__}.")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedKeySpecError("Remote key services do not offer deterministic (RFC 6979) ECDSA.")
        data = bytes(data)
        hash_algorithm, prehashed = _hash_of(data, signature_algorithm.algorithm)
        return self._signer(SignRequest("ECDSA", hash_algorithm, data, prehashed))

    def exchange(self, algorithm, peer_public_key) -> bytes:
        raise CryptoTokenError(f"The key {self.label} is a signing key: it does not do key agreement.")


T = TypeVar("T")


class ClientPool(Generic[T]):
    """Service clients shared by every handle and call in a process, keyed by what makes them differ.

    ``discard`` drops a client after a failure, so the next call builds a fresh one (new connections,
    new credentials) instead of reusing a broken one.
    """

    def __init__(self) -> None:
        self._clients: dict[Hashable, T] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, factory: Callable[[], T]) -> T:
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = factory()
                self._clients[key] = client
            return client

    def discard(self, key: Hashable, client: T | None = None) -> None:
        """Forget the client under ``key`` (only if it still is ``client``, when given)."""
        with self._lock:
            if client is None or self._clients.get(key) is client:
                self._clients.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()

    def __len__(self) -> int:
        return len(self._clients)
