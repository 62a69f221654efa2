"""Private-key handles for keys that never leave their device (HSM slots, and any key service).

A handle subclasses ``cryptography``'s abstract private-key class of its algorithm (RSA, EC, Ed25519,
Ed448), so ``x509.CertificateBuilder.sign``, the CRL, CSR and OCSP builders and anything else that
calls ``key.sign`` signs through the device without knowing it. The handle only translates
``cryptography``'s padding, hash and ``Prehashed`` objects into a :class:`SignatureRequest`; the backend's
*signer* turns the request into the device's call and returns the signature in ``cryptography``'s
format (DER for ECDSA). Nothing here restricts hashes or salt lengths: the signer refuses what its
device cannot do, so the same handles serve any backend.

RSA handles also ``decrypt`` (SCEP requests are encrypted to the CA's key) when the backend gives them a
*decryptor*: the handle checks the ciphertext as ``cryptography`` does and passes a :class:`DecryptRequest`
(PKCS#1 v1.5, or OAEP with its hashes and label) to the device. A ciphertext the device refuses raises
``ValueError``, as ``cryptography`` does for one it refuses, so protocol code handles every backend the same
way. (``cryptography``'s PKCS#1 v1.5 uses implicit rejection: a synthetic plaintext instead of an error;
devices that do the same, like a Key Vault, pass theirs through.)

Private key material never exists here: ``private_bytes``, ``private_numbers``, ``private_bytes_raw``
and ``exchange`` refuse, and so does ``decrypt`` on a handle without a decryptor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import OAEP, PSS, AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from ..errors import CryptoTokenError, UnsupportedKeySpecError

SignScheme = Literal["PKCS1v15", "PSS", "ECDSA", "EdDSA"]
DecryptScheme = Literal["PKCS1v15", "OAEP"]

# DER of each hash's AlgorithmIdentifier OID (RFC 8017 appendix A.2.4; NIST for SHA-3), for DigestInfo.
_HASH_OIDS: dict[str, bytes] = {
    "sha1": bytes.fromhex("2b0e03021a"),
    "sha224": bytes.fromhex("608648016503040204"),
    "sha256": bytes.fromhex("608648016503040201"),
    "sha384": bytes.fromhex("608648016503040202"),
    "sha512": bytes.fromhex("608648016503040203"),
    "sha512-224": bytes.fromhex("608648016503040205"),
    "sha512-256": bytes.fromhex("608648016503040206"),
    "sha3-224": bytes.fromhex("608648016503040207"),
    "sha3-256": bytes.fromhex("608648016503040208"),
    "sha3-384": bytes.fromhex("608648016503040209"),
    "sha3-512": bytes.fromhex("60864801650304020a"),
}
# hashlib is several times cheaper than cryptography's Hash object for the short inputs signed here.
_HASHLIB = {name: getattr(hashlib, name.replace("-", "_")) for name in _HASH_OIDS
            if hasattr(hashlib, name.replace("-", "_"))}


class KeyNotExportableError(CryptoTokenError):
    """The private key lives in a device and cannot be read out."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a microsecond more per signature
class SignatureRequest:
    """One signature to make (treat it as immutable).

    ``data`` is the message, or its digest when ``prehashed``. ``hash`` is None for EdDSA (which signs
    the message itself). For PSS, ``salt_length`` is resolved to bytes and ``mgf_hash`` is MGF1's hash.
    """

    scheme: SignScheme
    data: bytes
    hash: hashes.HashAlgorithm | None = None
    prehashed: bool = False
    salt_length: int | None = None
    mgf_hash: hashes.HashAlgorithm | None = None

    def digest(self) -> bytes:
        """The hash of the message (devices that sign digests need it)."""
        if self.prehashed or self.hash is None:
            return self.data
        constructor = _HASHLIB.get(self.hash.name)
        if constructor is not None:
            return constructor(self.data).digest()
        h = hashes.Hash(self.hash)
        h.update(self.data)
        return h.finalize()

    def digest_info(self) -> bytes:
        """DER DigestInfo of the digest: what raw PKCS#1 v1.5 signing (CKM_RSA_PKCS and the like) signs."""
        assert self.hash is not None
        return digest_info(self.hash, self.digest())


Signer = Callable[[SignatureRequest], bytes]


@dataclass(frozen=True, slots=True)
class DecryptRequest:
    """One RSA decryption to make: PKCS#1 v1.5, or OAEP with its hash, MGF1 hash and label (None = empty)."""

    scheme: DecryptScheme
    ciphertext: bytes
    hash: hashes.HashAlgorithm | None = None
    mgf_hash: hashes.HashAlgorithm | None = None
    label: bytes | None = None

    def describe(self) -> str:
        """How the request reads in messages: "PKCS#1 v1.5" or "RSA-OAEP with SHA-256 and MGF1-SHA-256"."""
        if self.scheme == "PKCS1v15":
            return "PKCS#1 v1.5"
        assert self.hash is not None and self.mgf_hash is not None
        return f"RSA-OAEP with {self.hash.name.upper()} and MGF1-{self.mgf_hash.name.upper()}"


Decryptor = Callable[[DecryptRequest], bytes]


def decrypt_request(ciphertext: bytes, padding: AsymmetricPadding, public_key: rsa.RSAPublicKey) -> DecryptRequest:
    """Check ``ciphertext`` and ``padding`` as ``cryptography``'s RSA ``decrypt`` does and describe the request.

    A ciphertext of the wrong length, or not below the modulus, raises ValueError here, like a local key's
    ``decrypt``, without a trip to the device (some devices report it as a general failure).
    """
    ciphertext = ciphertext if type(ciphertext) is bytes else bytes(ciphertext)
    if len(ciphertext) != (public_key.key_size + 7) // 8:
        raise ValueError("Ciphertext length must be equal to key size.")
    if int.from_bytes(ciphertext, "big") >= public_key.public_numbers().n:
        raise ValueError("Decryption failed")
    if isinstance(padding, PKCS1v15):
        return DecryptRequest("PKCS1v15", ciphertext)
    if isinstance(padding, OAEP):
        mgf_hash = getattr(padding.mgf, "_algorithm", None)  # MGF1 keeps its hash private
        if not isinstance(mgf_hash, hashes.HashAlgorithm):
            raise UnsupportedKeySpecError("RSA-OAEP decryption needs MGF1 as the mask generation function.")
        label = padding._label or None  # no public accessor in cryptography; b"" and None are the same label
        return DecryptRequest("OAEP", ciphertext, padding.algorithm, mgf_hash, label)
    raise UnsupportedKeySpecError(f"RSA keys cannot decrypt with {type(padding).__name__} padding.")


def digest_info(algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """DER ``DigestInfo ::= SEQUENCE { AlgorithmIdentifier (OID, NULL), OCTET STRING digest }``."""
    oid = _HASH_OIDS.get(algorithm.name)
    if oid is None:
        raise UnsupportedKeySpecError(f"RSA PKCS#1 v1.5 signatures with {algorithm.name.upper()} are not supported.")
    alg_id = b"\x30" + bytes([len(oid) + 4]) + b"\x06" + bytes([len(oid)]) + oid + b"\x05\x00"
    body = alg_id + b"\x04" + bytes([len(digest)]) + digest
    return b"\x30" + bytes([len(body)]) + body  # every DigestInfo is shorter than 128 bytes


def raw_ecdsa_to_der(signature: bytes) -> bytes:
    """Convert a PKCS#11/JOSE-style ECDSA signature (r || s, equal halves) to the DER SEQUENCE X.509 uses."""
    if not signature or len(signature) % 2:
        raise CryptoTokenError("The device returned a malformed ECDSA signature.")
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))


def _hash_of(data: bytes, algorithm: object) -> tuple[hashes.HashAlgorithm, bool]:
    """The hash algorithm and whether ``data`` is already its digest (``Prehashed``)."""
    if isinstance(algorithm, Prehashed):
        inner: hashes.HashAlgorithm = algorithm._algorithm  # no public accessor in cryptography
        if len(data) != inner.digest_size:
            raise ValueError(f"The provided data must be the same length as the hash algorithm's digest size "
                             f"({inner.digest_size} bytes for {inner.name}).")
        return inner, True
    if isinstance(algorithm, hashes.HashAlgorithm):
        return algorithm, False
    raise UnsupportedKeySpecError(f"Cannot sign with {type(algorithm).__name__} as the hash algorithm.")


class _DeviceKey:
    """What every handle shares: a label for messages, refusals to export, identity under copy."""

    label: str

    def private_bytes(self, *args, **kwargs) -> bytes:
        raise KeyNotExportableError(f"The private key {self.label} cannot be exported: it never leaves its device.")

    def private_numbers(self):
        raise KeyNotExportableError(f"The private key {self.label} cannot be exported: it never leaves its device.")

    def private_bytes_raw(self) -> bytes:
        raise KeyNotExportableError(f"The private key {self.label} cannot be exported: it never leaves its device.")

    # A handle is immutable and shares its signer, so a copy is the same handle.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


class DeviceRSAPrivateKey(_DeviceKey, rsa.RSAPrivateKey):
    """An RSA key in a device: ``sign`` with PKCS#1 v1.5 or PSS (any hash, salt length and MGF1 hash), and
    ``decrypt`` (PKCS#1 v1.5, OAEP) through the backend's decryptor, where it has one."""

    def __init__(self, public_key: rsa.RSAPublicKey, signer: Signer, label: str, decryptor: Decryptor | None = None):
        self._public_key = public_key
        self._signer = signer
        self._decryptor = decryptor
        self.label = label
        self._key_size = public_key.key_size

    @property
    def key_size(self) -> int:
        return self._key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def sign(self, data, padding: AsymmetricPadding, algorithm) -> bytes:  # type: ignore[override]
        data = data if type(data) is bytes else bytes(data)
        hash_algorithm, prehashed = _hash_of(data, algorithm)
        if isinstance(padding, PKCS1v15):
            return self._signer(SignatureRequest("PKCS1v15", data, hash_algorithm, prehashed))
        if isinstance(padding, PSS):
            mgf_hash = getattr(padding.mgf, "_algorithm", None)  # MGF1 keeps its hash private
            if not isinstance(mgf_hash, hashes.HashAlgorithm):
                raise UnsupportedKeySpecError("RSA-PSS signatures need MGF1 as the mask generation function.")
            salt = self._salt_length(padding, hash_algorithm)
            return self._signer(SignatureRequest("PSS", data, hash_algorithm, prehashed, salt, mgf_hash))
        raise UnsupportedKeySpecError(f"RSA keys cannot sign with {type(padding).__name__} padding.")

    def _salt_length(self, padding: PSS, hash_algorithm: hashes.HashAlgorithm) -> int:
        salt = padding._salt_length  # no public accessor in cryptography
        # RFC 8017 9.1.1: emLen = ceil((modBits - 1) / 8) must hold hash, salt and two more bytes.
        max_salt = (self._key_size + 6) // 8 - hash_algorithm.digest_size - 2
        if salt is PSS.DIGEST_LENGTH:
            salt = hash_algorithm.digest_size
        elif salt is PSS.MAX_LENGTH:
            salt = max_salt
        elif salt is PSS.AUTO:
            raise ValueError("PSS salt length can only be set to AUTO when verifying")
        if not isinstance(salt, int) or not 0 <= salt <= max_salt:
            raise ValueError(f"A PSS salt of {salt} bytes does not fit a {self._key_size}-bit key with "
                             f"{hash_algorithm.name.upper()}.")
        return salt

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        """Decrypt in the device; ValueError when the ciphertext is refused (as ``cryptography``)."""
        if self._decryptor is None:
            raise CryptoTokenError(f"The key {self.label} is a signing key: it does not decrypt.")
        return self._decryptor(decrypt_request(ciphertext, padding, self._public_key))


class DeviceECPrivateKey(_DeviceKey, ec.EllipticCurvePrivateKey):
    """An EC key in a device; ``sign`` returns DER ECDSA signatures like a local key."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, signer: Signer, label: str):
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
            raise UnsupportedKeySpecError(f"The key {self.label} cannot sign deterministically (RFC 6979).")
        data = data if type(data) is bytes else bytes(data)
        hash_algorithm, prehashed = _hash_of(data, signature_algorithm.algorithm)
        return self._signer(SignatureRequest("ECDSA", data, hash_algorithm, prehashed))

    def exchange(self, algorithm, peer_public_key) -> bytes:
        raise CryptoTokenError(f"The key {self.label} is a signing key: it does not do key agreement.")


class DeviceEd25519PrivateKey(_DeviceKey, ed25519.Ed25519PrivateKey):
    """An Ed25519 key in a device (pure EdDSA: the device signs the whole message)."""

    def __init__(self, public_key: ed25519.Ed25519PublicKey, signer: Signer, label: str):
        self._public_key = public_key
        self._signer = signer
        self.label = label

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public_key

    def sign(self, data) -> bytes:  # type: ignore[override]
        return self._signer(SignatureRequest("EdDSA", bytes(data)))


class DeviceEd448PrivateKey(_DeviceKey, ed448.Ed448PrivateKey):
    """An Ed448 key in a device (pure EdDSA: the device signs the whole message)."""

    def __init__(self, public_key: ed448.Ed448PublicKey, signer: Signer, label: str):
        self._public_key = public_key
        self._signer = signer
        self.label = label

    def public_key(self) -> ed448.Ed448PublicKey:
        return self._public_key

    def sign(self, data) -> bytes:  # type: ignore[override]
        return self._signer(SignatureRequest("EdDSA", bytes(data)))


DeviceKey = DeviceRSAPrivateKey | DeviceECPrivateKey | DeviceEd25519PrivateKey | DeviceEd448PrivateKey


def device_key_for(public_key: PublicKeyTypes, signer: Signer, label: str,
                   decryptor: Decryptor | None = None) -> DeviceKey:
    """The handle class that matches ``public_key``'s algorithm (``decryptor`` serves RSA keys only)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return DeviceRSAPrivateKey(public_key, signer, label, decryptor)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return DeviceECPrivateKey(public_key, signer, label)
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return DeviceEd25519PrivateKey(public_key, signer, label)
    if isinstance(public_key, ed448.Ed448PublicKey):
        return DeviceEd448PrivateKey(public_key, signer, label)
    raise UnsupportedKeySpecError(f"No device key handle for {type(public_key).__name__} keys.")
