"""Shared CMS glue: SCEP attribute encoding/decoding, conversions between ``cryptography`` and asn1crypto
objects, and signing/verifying SignedData signer infos.

Parsing goes through asn1crypto's CMS classes. asn1crypto does not know the SCEP attributes; rather than
registering them in its global tables (which would change how every other user of asn1crypto parses CMS),
they are read by OID with their values as raw ``Any``.

Writing is different: building a SignedData or EnvelopedData out of asn1crypto objects cost ~1.5 ms of
Python per reply (five times the RSA signature in it), so the few fixed-shape structures SCEP sends are
written as DER directly (:func:`signed_data`, and ``encrypt_envelope``/``degenerate_certs_only``), with the
variable pieces (OIDs, algorithm identifiers, certificate names) encoded once by asn1crypto and cached. The
tests read every written structure back with asn1crypto and with ``openssl cms``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from pki.x509.der import sequence, tlv

from .types import BadAlg, ScepMessageError

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5, "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    """``cryptography``'s hash object for one of our digest names; BadAlg for any other."""
    cls = HASHES.get(name)
    if cls is None:
        raise BadAlg(f"Unsupported digest algorithm {name!r}.")
    return cls()


def digest(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


# --- attributes --------------------------------------------------------------------------------------------

def attribute_values(attrs: cms.CMSAttributes) -> dict[str, core.Asn1Value]:
    """The first value of each attribute, keyed by dotted OID, decoded to its universal ASN.1 type.

    Raises ScepMessageError when an attribute is malformed or repeated (RFC 5652 forbids duplicates, and
    two transactionIDs would let a signer say two things at once)."""
    values: dict[str, core.Asn1Value] = {}
    for attr in attrs:
        oid = attr["type"].dotted
        if oid in values:
            raise ScepMessageError(f"Signed attribute {oid} appears twice.")
        raw_values = attr["values"]
        if len(raw_values) != 1:
            raise ScepMessageError(f"Signed attribute {oid} must have exactly one value.")
        values[oid] = core.Asn1Value.load(raw_values[0].dump())
    return values


def text_of(value: core.Asn1Value, what: str) -> str:
    """A string attribute (PrintableString per RFC 8894; other string types accepted from lenient clients)."""
    if not isinstance(value, core.AbstractString):
        raise ScepMessageError(f"The {what} attribute is not a string.")
    return value.native


def octets_of(value: core.Asn1Value, what: str) -> bytes:
    if not isinstance(value, core.OctetString):
        raise ScepMessageError(f"The {what} attribute is not an OCTET STRING.")
    return value.native


# --- conversions -------------------------------------------------------------------------------------------

def to_asn1_name(name: x509.Name) -> asn1_x509.Name:
    return asn1_x509.Name.load(name.public_bytes())


@functools.lru_cache(maxsize=512)
def _cert_identity(cert: x509.Certificate) -> tuple[bytes, int, bytes | None, bytes]:
    """(issuer Name DER as written in the certificate, serial, subject key identifier, certificate DER).

    The issuer's own bytes (not a re-encoding) so identifiers compare byte for byte. Cached: the CA and RA
    certificates take part in every message."""
    der = cert.public_bytes(Encoding.DER)
    issuer = asn1_x509.Certificate.load(der)["tbs_certificate"]["issuer"].dump()
    return issuer, cert.serial_number, subject_key_id_of(cert), der


def certificate_der(cert: x509.Certificate) -> bytes:
    # Not through _cert_identity: a CertRep's issued certificate is new every time (parsing it for its issuer and
    # caching it would be wasted).
    return cert.public_bytes(Encoding.DER)


def issuer_and_serial_der(cert: x509.Certificate) -> bytes:
    """DER IssuerAndSerialNumber naming ``cert`` (CMS signer and recipient identifiers)."""
    issuer, serial, _ski, _der = _cert_identity(cert)
    return sequence(issuer + integer(serial))


def subject_key_id_of(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        return None


def matches_certificate(identifier: core.Choice, cert: x509.Certificate) -> bool:
    """Whether a SignerIdentifier / RecipientIdentifier names ``cert``."""
    issuer, serial, ski, _der = _cert_identity(cert)
    if identifier.name == "issuer_and_serial_number":
        ias = identifier.chosen
        return ias["serial_number"].native == serial and ias["issuer"].dump() == issuer
    if identifier.name == "subject_key_identifier":
        return ski is not None and identifier.chosen.native == ski
    return False


def load_certificates(certificate_set: Iterable[cms.CertificateChoices] | None) -> list[x509.Certificate]:
    """The X.509 certificates of a CMS CertificateSet (other choices, e.g. attribute certificates, ignored)."""
    out: list[x509.Certificate] = []
    for choice in certificate_set or ():
        if choice.name != "certificate":
            continue
        try:
            out.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except (ValueError, x509.InvalidVersion) as exc:
            raise ScepMessageError(f"A certificate in the message cannot be read: {exc}") from exc
    return out


def load_crls(crl_set: Iterable[cms.RevocationInfoChoice] | None) -> list[x509.CertificateRevocationList]:
    out: list[x509.CertificateRevocationList] = []
    for choice in crl_set or ():
        if choice.name != "crl":
            continue
        try:
            out.append(x509.load_der_x509_crl(choice.chosen.dump()))
        except ValueError as exc:
            raise ScepMessageError(f"A CRL in the message cannot be read: {exc}") from exc
    return out


# --- signing and verifying -----------------------------------------------------------------------------------

def sign_bytes(key, data: bytes, digest_name: str) -> bytes:
    """Sign with ``key.sign`` only, so crypto-token handles sign as well as software keys."""
    algorithm = hash_algorithm(digest_name)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return key.sign(data, ec.ECDSA(algorithm))
    raise BadAlg(f"SCEP messages cannot be signed with a {type(public).__name__} key.")


def verify_bytes(public_key, signature: bytes, data: bytes, sig_alg: algos.SignedDigestAlgorithm,
                 digest_name: str) -> bool:
    """Verify one signature; False when it does not verify, BadAlg when the algorithm is not one we take."""
    try:
        scheme = sig_alg.signature_algo
    except ValueError as exc:
        raise BadAlg(f"Unsupported signature algorithm {sig_alg['algorithm'].dotted}.") from exc
    algorithm = hash_algorithm(digest_name)
    try:
        if scheme == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif scheme == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
            params = sig_alg["parameters"]
            pss_hash = hash_algorithm(params["hash_algorithm"]["algorithm"].native)
            mgf_hash = hash_algorithm(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
            public_key.verify(signature, data, padding.PSS(padding.MGF1(mgf_hash), params["salt_length"].native),
                              pss_hash)
        elif scheme == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            raise BadAlg(f"Signature algorithm {sig_alg['algorithm'].native} does not fit the signer's key.")
    except InvalidSignature:
        return False
    except (ValueError, TypeError):
        # e.g. an ECDSA signature that is not DER, or a digest the OpenSSL build refuses (MD5 in FIPS mode)
        return False
    return True


# --- DER writing ------------------------------------------------------------------------------------------

def integer(value: int) -> bytes:
    """DER INTEGER, negative values included (some clients' self-signed certificates have negative serials)."""
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1  # the fewest two's-complement bytes
    return tlv(0x02, value.to_bytes(size, "big", signed=True))


def octet_string(data: bytes) -> bytes:
    return tlv(0x04, data)


def set_of(elements: Iterable[bytes]) -> bytes:
    """DER SET OF: the encodings sorted (X.690 11.6)."""
    return tlv(0x31, b"".join(sorted(elements)))


@functools.cache
def oid(dotted_or_name: str) -> bytes:
    """DER OBJECT IDENTIFIER of a dotted OID or of a CMS attribute name asn1crypto knows (``message_digest``)."""
    return core.ObjectIdentifier(dotted_or_name).dump() if dotted_or_name[0].isdigit() \
        else cms.CMSAttributeType(dotted_or_name).dump()


@functools.cache
def digest_algorithm_der(name: str) -> bytes:
    hash_algorithm(name)  # BadAlg for a name we do not take
    return algos.DigestAlgorithm({"algorithm": name}).dump()


@functools.cache
def _signature_algorithm_der(kind: str, digest_name: str) -> bytes:
    if kind == "rsa":
        # rsaEncryption (what SCEP clients and OpenSSL write) rather than shaNNNWithRSAEncryption
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}).dump()
    if digest_name == "md5":
        raise BadAlg("ECDSA cannot be used with MD5.")
    return algos.SignedDigestAlgorithm({"algorithm": f"{digest_name}_ecdsa"}).dump()


def attribute_der(oid_dotted_or_name: str, value_der: bytes) -> bytes:
    """One CMS Attribute with one value: SEQUENCE { type, SET { value } }."""
    return sequence(oid(oid_dotted_or_name) + tlv(0x31, value_der))


_PRINTABLE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def printable(text: str) -> bytes:
    """PrintableString, as RFC 8894 types transactionID and the numeric attributes; UTF8String when the text
    (a transactionID echoed from a lenient client) has characters PrintableString cannot carry."""
    raw = text.encode()
    return tlv(0x13 if _PRINTABLE.issuperset(raw) else 0x0C, raw)


def utf8(text: str) -> bytes:
    return tlv(0x0C, text.encode())


def attribute(oid_dotted_or_name: str, value: core.Asn1Value) -> bytes:
    """:func:`attribute_der` for an asn1crypto value."""
    return attribute_der(oid_dotted_or_name, value.dump())


_ID_DATA = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"


def content_info(content_type: str, content_der: bytes) -> bytes:
    """ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }."""
    return sequence(oid(content_type) + tlv(0xA0, content_der))


def _cert_and_crl_fields(certificates: Sequence[x509.Certificate],
                         crls: Iterable[x509.CertificateRevocationList]) -> bytes:
    out = b""
    if certificates:
        # [0] IMPLICIT SET OF, in the caller's order: SCEP clients (micromdm's scepclient among them) take the
        # first certificate of a CertRep as their own, and EJBCA, Cisco and micromdm put the issued one first.
        # CMS is BER, so the DER sorting of SET OF is not required here.
        out += tlv(0xA0, b"".join(certificate_der(c) for c in certificates))
    crl_ders = [c.public_bytes(Encoding.DER) for c in crls]
    if crl_ders:
        out += tlv(0xA1, b"".join(sorted(crl_ders)))  # [1] IMPLICIT SET OF
    return out


def degenerate_signed_data(certificates: Sequence[x509.Certificate],
                           crls: Iterable[x509.CertificateRevocationList] = ()) -> bytes:
    """ContentInfo(SignedData) with no signer and no content: certificates and CRLs only (RFC 8894 3.4)."""
    body = (integer(1) + b"\x31\x00" + sequence(oid(_ID_DATA)) + _cert_and_crl_fields(certificates, crls)
            + b"\x31\x00")
    return content_info(_ID_SIGNED_DATA, sequence(body))


def signed_data(*, content: bytes | None, digest_name: str, signer_cert: x509.Certificate, signer_key,
                attributes: Sequence[bytes], certificates: Sequence[x509.Certificate]) -> bytes:
    """DER ContentInfo(SignedData) over ``content`` (id-data; absent when None) with one signer whose signed
    attributes are contentType, messageDigest and ``attributes`` (each an :func:`attribute_der`)."""
    digest_alg = digest_algorithm_der(digest_name)
    public = signer_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        sig_alg = _signature_algorithm_der("rsa", digest_name)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        sig_alg = _signature_algorithm_der("ec", digest_name)
    else:
        raise BadAlg(f"SCEP messages cannot be signed with a {type(public).__name__} key.")
    attrs = [
        attribute_der("content_type", oid(_ID_DATA)),
        attribute_der("message_digest", octet_string(digest(digest_name, content or b""))),
        *attributes,
    ]
    # What is signed is the DER SET OF the attributes (RFC 5652 section 5.4); the SignerInfo carries the same
    # bytes under the [0] IMPLICIT tag.
    attrs_set = set_of(attrs)
    signature = sign_bytes(signer_key, attrs_set, digest_name)
    signer_info = sequence(
        integer(1) + issuer_and_serial_der(signer_cert) + digest_alg + b"\xa0" + attrs_set[1:]
        + sig_alg + octet_string(signature)
    )
    encap = oid(_ID_DATA)
    if content is not None:
        encap += tlv(0xA0, octet_string(content))
    body = (integer(1) + tlv(0x31, digest_alg) + sequence(encap) + _cert_and_crl_fields(certificates, ())
            + tlv(0x31, signer_info))
    return content_info(_ID_SIGNED_DATA, sequence(body))


def enveloped_data(*, recipient_cert: x509.Certificate, key_transport_alg_der: bytes, encrypted_key: bytes,
                   cipher_oid: str, iv: bytes, ciphertext: bytes) -> bytes:
    """ContentInfo(EnvelopedData) v0 with one KeyTransRecipientInfo (issuer and serial) and id-data content."""
    ktri = sequence(integer(0) + issuer_and_serial_der(recipient_cert) + key_transport_alg_der
                    + octet_string(encrypted_key))
    eci = sequence(oid(_ID_DATA) + sequence(oid(cipher_oid) + octet_string(iv)) + tlv(0x80, ciphertext))
    return content_info(_ID_ENVELOPED_DATA, sequence(integer(0) + tlv(0x31, ktri) + eci))

