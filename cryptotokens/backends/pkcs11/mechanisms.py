"""Key generation templates, public keys read from the HSM, and the mechanism each signature or decryption uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag
from pkcs11.util.ec import encode_named_curve_parameters

from ...errors import UnsupportedKeySpecError
from ..base import CURVES, KeySpec
from ..keys import DecryptRequest, SignatureRequest, raw_ecdsa_to_der

# Named curves as CKA_EC_PARAMS carries them (the DER OID); Edwards curves by their RFC 8410 OIDs.
CURVE_OIDS = {
    "secp256r1": "1.2.840.10045.3.1.7", "secp384r1": "1.3.132.0.34", "secp521r1": "1.3.132.0.35",
    "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7", "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
    "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13",
}
EDWARDS_OIDS = {"Ed25519": "1.3.101.112", "Ed448": "1.3.101.113"}
EDWARDS_BITS = {"Ed25519": 256, "Ed448": 448}  # as modules count them (whole bytes)
RSA_SIZES = (1024, 8192)

_SIGN_ONLY = MechanismFlag.SIGN | MechanismFlag.VERIFY
# RSA keys also encrypt/decrypt, as EJBCA makes them: SCEP clients encrypt their requests to the CA's key.
_SIGN_AND_DECRYPT = _SIGN_ONLY | MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
# Per hash: (CKM of the hash, its MGF1, PKCS#1 v1.5 with hashing on the HSM, PSS with hashing on the HSM).
_HASHES: dict[str, tuple[Mechanism, MGF, Mechanism | None, Mechanism | None]] = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1, Mechanism.SHA1_RSA_PKCS, Mechanism.SHA1_RSA_PKCS_PSS),
    "sha224": (Mechanism.SHA224, MGF.SHA224, Mechanism.SHA224_RSA_PKCS, Mechanism.SHA224_RSA_PKCS_PSS),
    "sha256": (Mechanism.SHA256, MGF.SHA256, Mechanism.SHA256_RSA_PKCS, Mechanism.SHA256_RSA_PKCS_PSS),
    "sha384": (Mechanism.SHA384, MGF.SHA384, Mechanism.SHA384_RSA_PKCS, Mechanism.SHA384_RSA_PKCS_PSS),
    "sha512": (Mechanism.SHA512, MGF.SHA512, Mechanism.SHA512_RSA_PKCS, Mechanism.SHA512_RSA_PKCS_PSS),
    "sha3-224": (Mechanism.SHA3_224, MGF.SHA3_224, Mechanism.SHA3_224_RSA_PKCS, Mechanism.SHA3_224_RSA_PKCS_PSS),
    "sha3-256": (Mechanism.SHA3_256, MGF.SHA3_256, Mechanism.SHA3_256_RSA_PKCS, Mechanism.SHA3_256_RSA_PKCS_PSS),
    "sha3-384": (Mechanism.SHA3_384, MGF.SHA3_384, Mechanism.SHA3_384_RSA_PKCS, Mechanism.SHA3_384_RSA_PKCS_PSS),
    "sha3-512": (Mechanism.SHA3_512, MGF.SHA3_512, Mechanism.SHA3_512_RSA_PKCS, Mechanism.SHA3_512_RSA_PKCS_PSS),
}


def check_supported(spec: KeySpec, mechanisms: frozenset[int], key_sizes: dict[int, tuple[int, int]]) -> None:
    """Raise UnsupportedKeySpecError unless this slot can generate and sign with ``spec``.

    ``key_sizes`` maps a generation mechanism to the slot's (min, max) key size in bits.
    """
    if spec.algorithm == "RSA":
        low, high = key_sizes.get(Mechanism.RSA_PKCS_KEY_PAIR_GEN, RSA_SIZES)
        low, high = max(low, RSA_SIZES[0]), min(high, RSA_SIZES[1])
        if Mechanism.RSA_PKCS_KEY_PAIR_GEN not in mechanisms:
            raise UnsupportedKeySpecError("This PKCS#11 slot does not generate RSA keys.")
        if not low <= (spec.size or 0) <= high:
            raise UnsupportedKeySpecError(f"This PKCS#11 slot generates RSA keys of {low} to {high} bits, "
                                          f"not {spec.size}.")
        if not mechanisms & {Mechanism.RSA_PKCS, *(h[2] for h in _HASHES.values())}:
            raise UnsupportedKeySpecError("This PKCS#11 slot cannot sign with RSA keys.")
    elif spec.algorithm == "EC":
        if spec.curve not in CURVE_OIDS:
            raise UnsupportedKeySpecError(f"Curve {spec.curve} is not supported on PKCS#11 tokens.")
        if Mechanism.EC_KEY_PAIR_GEN not in mechanisms or Mechanism.ECDSA not in mechanisms:
            raise UnsupportedKeySpecError("This PKCS#11 slot does not generate or sign with EC keys.")
        low, high = key_sizes.get(Mechanism.EC_KEY_PAIR_GEN, (0, 1 << 16))
        bits = CURVES[spec.curve].key_size
        if not low <= bits <= high:
            raise UnsupportedKeySpecError(f"This PKCS#11 slot supports EC keys of {low} to {high} bits, not "
                                          f"{spec.curve}.")
    elif spec.algorithm in EDWARDS_OIDS:
        if Mechanism.EC_EDWARDS_KEY_PAIR_GEN not in mechanisms or Mechanism.EDDSA not in mechanisms:
            raise UnsupportedKeySpecError(f"This PKCS#11 slot does not offer {spec.algorithm} keys "
                                          "(no CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA): use RSA or EC.")
        low, high = key_sizes.get(Mechanism.EC_EDWARDS_KEY_PAIR_GEN, (0, 1 << 16))
        if not low <= EDWARDS_BITS[spec.algorithm] <= high:
            raise UnsupportedKeySpecError(f"This PKCS#11 slot supports Edwards keys of {low} to {high} bits, not "
                                          f"{spec.algorithm}.")
    else:
        raise UnsupportedKeySpecError(f"{spec.algorithm} keys are not supported on PKCS#11 tokens.")


def generate(session: Any, spec: KeySpec, alias: str, key_id: bytes, private_extra: dict[Attribute, Any],
             public_extra: dict[Attribute, Any]) -> PublicKeyTypes:
    """Generate a persistent key pair labelled ``alias`` and return its public key.

    The private key is sensitive and never extractable unless the attribute file says otherwise. EC and
    Edwards keys only sign and verify; RSA keys also encrypt and decrypt (SCEP requests are encrypted to the
    CA's RSA key), which an attribute file can turn off with ``CKA_DECRYPT = false``. No key wraps,
    unwraps or derives.
    """
    private_template = {Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                        **private_extra}
    public_template = dict(public_extra)
    capabilities = _SIGN_AND_DECRYPT if spec.algorithm == "RSA" else _SIGN_ONLY
    common = {"id": key_id, "label": alias, "store": True, "capabilities": capabilities}
    if spec.algorithm == "RSA":
        public_template.setdefault(Attribute.PUBLIC_EXPONENT, b"\x01\x00\x01")  # 65537
        public, _private = session.generate_keypair(KeyType.RSA, spec.size, public_template=public_template,
                                                    private_template=private_template, **common)
    else:
        key_type, oid = ((KeyType.EC, CURVE_OIDS[str(spec.curve)]) if spec.algorithm == "EC"
                         else (KeyType.EC_EDWARDS, EDWARDS_OIDS[spec.algorithm]))
        params = session.create_domain_parameters(key_type, {Attribute.EC_PARAMS: encode_named_curve_parameters(oid)},
                                                  local=True)
        public, _private = params.generate_keypair(public_template=public_template,
                                                   private_template=private_template, **common)
    return public_key_of(public, spec.algorithm, spec.curve)


def public_key_of(obj: Any, algorithm: str, curve: str | None = None) -> PublicKeyTypes:
    """A ``cryptography`` public key from a PKCS#11 public key object."""
    if algorithm == "RSA":
        modulus, exponent = obj[Attribute.MODULUS], obj[Attribute.PUBLIC_EXPONENT]
        return rsa.RSAPublicNumbers(int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")).public_key()
    point = _unwrap_octet_string(obj[Attribute.EC_POINT])
    if algorithm == "EC":
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[str(curve)](), point)
    if algorithm == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(point)
    return ed448.Ed448PublicKey.from_public_bytes(point)


def _unwrap_octet_string(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING by the standard, but some modules return the bare point."""
    if len(value) >= 2 and value[0] == 0x04:
        length, offset = value[1], 2
        if length & 0x80:
            n = length & 0x7F
            length, offset = int.from_bytes(value[2:2 + n], "big"), 2 + n
        if offset + length == len(value):
            return value[offset:]
    return value


def key_matches(private_key: Any, public_key: PublicKeyTypes) -> bool:
    """Whether a private key object on the HSM belongs to ``public_key`` (RSA: the modulus; others: the type)."""
    key_type = private_key[Attribute.KEY_TYPE]
    if isinstance(public_key, rsa.RSAPublicKey):
        modulus = private_key[Attribute.MODULUS]
        return key_type == KeyType.RSA and int.from_bytes(modulus, "big") == public_key.public_numbers().n
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return key_type == KeyType.EC
    return key_type == KeyType.EC_EDWARDS


@dataclass(frozen=True, slots=True)
class SignPlan:
    """How one kind of signature request is made on a slot: the mechanism and what it is given."""

    mechanism: Mechanism
    param: tuple | None
    payload: str  # "data" (the HSM hashes), "digest", "digest_info" (raw PKCS#1 v1.5) or "message" (EdDSA)
    der_ecdsa: bool = False

    def payload_of(self, request: SignatureRequest) -> bytes:
        if self.payload == "digest":
            return request.digest()
        if self.payload == "digest_info":
            return request.digest_info()
        return request.data

    def finish(self, signature: bytes) -> bytes:
        return raw_ecdsa_to_der(signature) if self.der_ecdsa else signature


def plan_for(request: SignatureRequest, mechanisms: frozenset[int]) -> SignPlan:
    """Choose the mechanism for ``request``.

    Hashing in Python and signing the digest (CKM_RSA_PKCS with a DigestInfo, CKM_RSA_PKCS_PSS,
    CKM_ECDSA) comes first: it sends 32-64 bytes instead of a whole CRL to the HSM, takes ``Prehashed``
    input and any hash, and SoftHSM2 2.6 has no CKM_ECDSA_SHA256. The hash-on-HSM mechanisms are the
    fallback for modules that refuse raw signing.
    """
    scheme = request.scheme
    if scheme == "EdDSA":
        if Mechanism.EDDSA in mechanisms:
            return SignPlan(Mechanism.EDDSA, None, "message")
        raise UnsupportedKeySpecError("This PKCS#11 slot does not sign with EdDSA.")
    assert request.hash is not None
    name = request.hash.name
    if scheme == "ECDSA":
        if Mechanism.ECDSA in mechanisms:
            return SignPlan(Mechanism.ECDSA, None, "digest", der_ecdsa=True)
        raise UnsupportedKeySpecError("This PKCS#11 slot does not sign with CKM_ECDSA.")
    hash_mech, mgf, pkcs1_mech, pss_mech = _HASHES.get(name, (None, None, None, None))
    if scheme == "PKCS1v15":
        if Mechanism.RSA_PKCS in mechanisms:
            return SignPlan(Mechanism.RSA_PKCS, None, "digest_info")
        if not request.prehashed and pkcs1_mech in mechanisms:
            return SignPlan(pkcs1_mech, None, "data")
        raise UnsupportedKeySpecError(f"This PKCS#11 slot cannot sign RSA PKCS#1 v1.5 with {name.upper()}.")
    if hash_mech is None or request.mgf_hash is None or request.mgf_hash.name not in _HASHES:
        raise UnsupportedKeySpecError(f"PKCS#11 RSA-PSS does not support {name.upper()} with MGF1 over "
                                      f"{request.mgf_hash.name.upper() if request.mgf_hash else '?'}.")
    param = (hash_mech, _HASHES[request.mgf_hash.name][1], request.salt_length)
    if Mechanism.RSA_PKCS_PSS in mechanisms:
        return SignPlan(Mechanism.RSA_PKCS_PSS, param, "digest")
    if not request.prehashed and pss_mech in mechanisms:
        return SignPlan(pss_mech, param, "data")
    raise UnsupportedKeySpecError(f"This PKCS#11 slot cannot sign RSA-PSS with {name.upper()}.")


def decrypt_mechanism(request: DecryptRequest, mechanisms: frozenset[int]) -> tuple[Mechanism, tuple | None]:
    """The mechanism and parameter for an RSA decryption: CKM_RSA_PKCS, or CKM_RSA_PKCS_OAEP with
    (CKM of the hash, CKG_MGF1 of the MGF1 hash, the label as CKZ_DATA_SPECIFIED source data)."""
    if request.scheme == "PKCS1v15":
        if Mechanism.RSA_PKCS in mechanisms:
            return Mechanism.RSA_PKCS, None
        raise UnsupportedKeySpecError("This PKCS#11 slot does not decrypt RSA PKCS#1 v1.5 (no CKM_RSA_PKCS).")
    assert request.hash is not None and request.mgf_hash is not None
    hash_entry, mgf_entry = _HASHES.get(request.hash.name), _HASHES.get(request.mgf_hash.name)
    if hash_entry is None or mgf_entry is None:
        raise UnsupportedKeySpecError(f"PKCS#11 does not define {request.describe()}.")
    if Mechanism.RSA_PKCS_OAEP not in mechanisms:
        raise UnsupportedKeySpecError("This PKCS#11 slot does not decrypt RSA-OAEP (no CKM_RSA_PKCS_OAEP).")
    return Mechanism.RSA_PKCS_OAEP, (hash_entry[0], mgf_entry[1], request.label)
