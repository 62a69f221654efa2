"""Signature algorithms by EJBCA's names (SHA256WithRSA, SHA256withRSAandMGF1, SHA256withECDSA, Ed25519)."""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import algos
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa


@dataclass(frozen=True)
class SignatureAlgorithm:
    name: str
    key_algorithm: str  # RSA, EC, Ed25519, Ed448
    hash_name: str | None  # sha256, ...
    pss: bool = False

    @property
    def hash(self) -> hashes.HashAlgorithm | None:
        return {
            "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
            "sha384": hashes.SHA384, "sha512": hashes.SHA512,
        }[self.hash_name]() if self.hash_name else None

    def rsa_padding(self) -> padding.AsymmetricPadding | None:
        if self.key_algorithm != "RSA":
            return None
        if self.pss:
            return padding.PSS(mgf=padding.MGF1(self.hash), salt_length=self.hash.digest_size)  # type: ignore[arg-type]
        return padding.PKCS1v15()

    def builder_kwargs(self) -> dict:
        """Keyword arguments for ``cryptography`` builders' ``sign``."""
        kwargs: dict = {"algorithm": self.hash}
        if self.pss:
            kwargs["rsa_padding"] = self.rsa_padding()
        return kwargs

    def sign(self, key, data: bytes) -> bytes:
        """Sign ``data`` with a private key handle of this algorithm."""
        if self.key_algorithm == "RSA":
            return key.sign(data, self.rsa_padding(), self.hash)
        if self.key_algorithm == "EC":
            return key.sign(data, ec.ECDSA(self.hash))
        return key.sign(data)

    def algorithm_identifier(self) -> algos.SignedDigestAlgorithm:
        """The AlgorithmIdentifier, as asn1crypto builds it (RSA gets NULL parameters, PSS its parameters)."""
        if self.pss:
            return algos.SignedDigestAlgorithm({
                "algorithm": "rsassa_pss",
                "parameters": algos.RSASSAPSSParams({
                    "hash_algorithm": {"algorithm": self.hash_name},
                    "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": self.hash_name}},
                    "salt_length": self.hash.digest_size,  # type: ignore[union-attr]
                }),
            })
        asn1_name = {
            "RSA": f"{self.hash_name}_rsa", "EC": f"{self.hash_name}_ecdsa", "Ed25519": "ed25519", "Ed448": "ed448",
        }[self.key_algorithm]
        return algos.SignedDigestAlgorithm({"algorithm": asn1_name})


def _build() -> dict[str, SignatureAlgorithm]:
    table: dict[str, SignatureAlgorithm] = {}
    for h in ("sha1", "sha224", "sha256", "sha384", "sha512"):
        bits = h[3:]
        table[f"SHA{bits}WithRSA"] = SignatureAlgorithm(f"SHA{bits}WithRSA", "RSA", h)
        table[f"SHA{bits}withECDSA"] = SignatureAlgorithm(f"SHA{bits}withECDSA", "EC", h)
        if h != "sha1":
            table[f"SHA{bits}withRSAandMGF1"] = SignatureAlgorithm(f"SHA{bits}withRSAandMGF1", "RSA", h, pss=True)
    table["Ed25519"] = SignatureAlgorithm("Ed25519", "Ed25519", None)
    table["Ed448"] = SignatureAlgorithm("Ed448", "Ed448", None)
    return table


SIGNATURE_ALGORITHMS = _build()
_LOWER = {k.lower(): v for k, v in SIGNATURE_ALGORITHMS.items()}
# The algorithms offered in forms (SHA-1 stays parseable for old data, but is not offered).
OFFERED = [n for n in SIGNATURE_ALGORITHMS if not n.startswith(("SHA1", "SHA224"))]


def signature_algorithm(name: str) -> SignatureAlgorithm:
    try:
        return _LOWER[name.strip().lower()]
    except KeyError:
        raise ValueError(f"Unknown signature algorithm '{name}'") from None


def key_algorithm_of(public_key) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    raise ValueError(f"Unsupported key type {type(public_key).__name__}")


def default_signature_algorithm(public_key) -> str:
    """A sensible signature algorithm for a CA key."""
    alg = key_algorithm_of(public_key)
    if alg == "RSA":
        return "SHA256WithRSA"
    if alg == "EC":
        size = public_key.curve.key_size
        return "SHA384withECDSA" if size == 384 else "SHA512withECDSA" if size > 384 else "SHA256withECDSA"
    return alg


def check_key_matches(alg: SignatureAlgorithm, public_key) -> None:
    if key_algorithm_of(public_key) != alg.key_algorithm:
        raise ValueError(
            f"Signature algorithm {alg.name} needs a {alg.key_algorithm} key, not {key_algorithm_of(public_key)}"
        )
