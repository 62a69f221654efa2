"""The pkcsPKIEnvelope (RFC 8894 section 3.2.2): a CMS EnvelopedData with one RSA key-transport recipient.

Decryption uses only ``recipient_key.decrypt(ciphertext, padding)``, so a crypto-token key handle that can
decrypt works like a ``cryptography`` RSA key. Content ciphers: DES-CBC (legacy, only when the caller allows
it), DES-EDE3-CBC and AES-128/192/256-CBC; key transport RSA PKCS#1 v1.5 and RSAES-OAEP.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from asn1crypto import algos, cms, core, parser
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import _cms
from .pkimessage import PkiMessage
from .types import (
    CIPHER_BY_OID,
    CIPHERS,
    BadAlg,
    BadMessageCheck,
    BadRequest,
    ScepError,
)


@dataclass(frozen=True)
class DecryptedEnvelope:
    """The decrypted content and how it was protected, so the reply can use the same algorithms.

    ``content``: the PKCS#10 DER (PKCSReq, RenewalReq), IssuerAndSubject (CertPoll/GetCertInitial) or
    IssuerAndSerialNumber (GetCert, GetCRL). ``cipher``: a key of :data:`~.types.CIPHERS` (``des``, ``des3``,
    ``aes128``, ``aes192``, ``aes256``). ``key_transport``: ``pkcs1v15`` or ``oaep`` (``oaep_hash`` is then
    the OAEP/MGF1 hash name).
    """

    content: bytes
    cipher: str
    key_transport: str
    oaep_hash: str | None = None


def _content_cipher(name: str, key: bytes, iv: bytes) -> Cipher:
    if name in ("des", "des3"):
        # Single DES is three-key 3DES with K1 = K2 = K3 (cryptography dropped the DES class).
        return Cipher(TripleDES(key * 3 if name == "des" else key), modes.CBC(iv))
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def _oaep(hash_name: str, label: bytes | None = None) -> padding.OAEP:
    algorithm = _cms.hash_algorithm(hash_name)
    return padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=label or None)


def decrypt_envelope(message: PkiMessage | bytes, recipient_key, recipient_cert: x509.Certificate | None = None, *,
                     allow_des: bool = False) -> DecryptedEnvelope:
    """Decrypt the pkcsPKIEnvelope of ``message`` (a parsed PkiMessage, or the DER EnvelopedData itself).

    ``recipient_key``: an RSA private key or any handle with ``decrypt(ciphertext, padding)``.
    ``recipient_cert``: its certificate, used to pick the recipient info; when no recipient info names it and
    there is exactly one, that one is tried (some clients write a sloppy recipient identifier).

    Raises (all with ``failure.message`` set to ``message`` when it is a PkiMessage):
        BadRequest: no envelope, or it is not a well-formed EnvelopedData with an RSA key-transport recipient.
        BadAlg: key transport or content cipher not supported, or DES when ``allow_des`` is False.
        BadMessageCheck: the key or content does not decrypt (wrong recipient, corrupted ciphertext).
    """
    pki_message = message if isinstance(message, PkiMessage) else None
    data = message.envelope if isinstance(message, PkiMessage) else message
    if not data:
        raise BadRequest("The message has no pkcsPKIEnvelope.", pki_message)
    try:
        return _decrypt(bytes(data), recipient_key, recipient_cert, allow_des, pki_message)
    except ScepError as exc:
        if getattr(exc, "message", True) is None:
            exc.message = pki_message  # type: ignore[attr-defined]
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise BadRequest(f"Malformed pkcsPKIEnvelope: {exc}", pki_message) from exc


def _decrypt(data: bytes, key, cert: x509.Certificate | None, allow_des: bool,
             pki_message: PkiMessage | None) -> DecryptedEnvelope:
    info = cms.ContentInfo.load(data, strict=True)
    if info["content_type"].native != "enveloped_data":
        raise BadRequest("The pkcsPKIEnvelope is not a CMS EnvelopedData.", pki_message)
    env = info["content"]
    ktris = [ri.chosen for ri in env["recipient_infos"] if ri.name == "ktri"]
    if not ktris:
        raise BadRequest("The EnvelopedData has no key-transport recipient.", pki_message)
    chosen = next((k for k in ktris if cert is not None and _cms.matches_certificate(k["rid"], cert)), None)
    if chosen is None:
        if len(ktris) != 1:
            raise BadMessageCheck("The message is not encrypted to this CA/RA certificate.", pki_message)
        chosen = ktris[0]

    kt_alg = chosen["key_encryption_algorithm"]
    kt_name = kt_alg["algorithm"].native
    oaep_hash = None
    if kt_name == "rsaes_pkcs1v15":
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
        transport = "pkcs1v15"
    elif kt_name == "rsaes_oaep":
        params = kt_alg["parameters"]
        oaep_hash = params["hash_algorithm"]["algorithm"].native
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if mgf_hash != oaep_hash:
            raise BadAlg("RSAES-OAEP with different OAEP and MGF1 hashes is not supported.", pki_message)
        label = params["p_source_algorithm"]["parameters"].native
        pad = _oaep(oaep_hash, label)
        transport = "oaep"
    else:
        raise BadAlg(f"Unsupported key transport {kt_alg['algorithm'].dotted}.", pki_message)

    eci = env["encrypted_content_info"]
    enc_alg = eci["content_encryption_algorithm"]
    cipher_name = CIPHER_BY_OID.get(enc_alg["algorithm"].dotted)
    if cipher_name is None:
        raise BadAlg(f"Unsupported content encryption {enc_alg['algorithm'].dotted}.", pki_message)
    if cipher_name == "des" and not allow_des:
        raise BadAlg("DES-CBC is a legacy cipher this alias does not allow.", pki_message)
    _oid, key_len, block = CIPHERS[cipher_name]
    iv = core.OctetString.load(enc_alg["parameters"].dump()).native if enc_alg["parameters"].contents else None
    if not isinstance(iv, bytes) or len(iv) != block:
        raise BadRequest("The content encryption IV is missing or has the wrong length.", pki_message)
    ciphertext = _encrypted_content(eci)
    if not isinstance(ciphertext, bytes) or not ciphertext:
        raise BadRequest("The EnvelopedData has no encrypted content.", pki_message)

    try:
        session_key = key.decrypt(chosen["encrypted_key"].native, pad)
    except ValueError as exc:
        raise BadMessageCheck("The content-encryption key does not decrypt with this CA/RA key.",
                              pki_message) from exc
    if len(session_key) != key_len or len(ciphertext) % block:
        raise BadMessageCheck("The envelope does not decrypt with this CA/RA key.", pki_message)
    decryptor = _content_cipher(cipher_name, session_key, iv).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(block * 8).unpadder()
    try:
        content = unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise BadMessageCheck("The envelope's content does not decrypt (bad padding).", pki_message) from exc
    return DecryptedEnvelope(content=content, cipher=cipher_name, key_transport=transport, oaep_hash=oaep_hash)


def _encrypted_content(eci: cms.EncryptedContentInfo) -> bytes | None:
    """The ciphertext of ``encryptedContent [0] IMPLICIT OCTET STRING``.

    Go's pkcs7 (the Debian/micromdm scepclient) writes it in the constructed form with a definite length
    (``A0 len 04 len ...``): legal BER that asn1crypto refuses for a definite-length OCTET STRING, so the
    chunks are joined here."""
    try:
        return eci["encrypted_content"].native
    except ValueError:
        rest = eci.contents
        for _ in range(2):  # contentType, contentEncryptionAlgorithm
            rest = rest[parser.peek(rest):]
        class_, method, tag, _header, contents, _trailer = parser.parse(rest)
        if (class_, method, tag) != (2, 1, 0):
            raise
        return _join_octet_chunks(contents, depth=0)


def _join_octet_chunks(data: bytes, depth: int) -> bytes:
    """The contents of a constructed OCTET STRING: its OCTET STRING segments (themselves maybe constructed)."""
    if depth > 4:
        raise ValueError("OCTET STRING segments nested too deep.")
    out, pointer = [], 0
    while pointer < len(data):
        class_, method, tag, _header, contents, _trailer = parser.parse(data[pointer:])
        if class_ != 0 or tag != 4:
            raise ValueError("A constructed OCTET STRING holds something other than OCTET STRINGs.")
        out.append(contents if method == 0 else _join_octet_chunks(contents, depth + 1))
        pointer += parser.peek(data[pointer:])
    return b"".join(out)


def check_reply_recipient(recipient_cert: x509.Certificate, envelope: DecryptedEnvelope) -> None:
    """BadAlg unless a reply protected as the request was (``envelope``'s content cipher, key transport and OAEP
    hash, which :func:`~.certrep.build_cert_rep` reuses) can be encrypted to ``recipient_cert``: its key must be
    RSA and long enough for the key transport to carry the content key (RFC 8017: PKCS#1 v1.5 takes k - 11
    bytes, OAEP k - 2 hLen - 2). A server checks this before the request changes anything, so that nothing is
    issued whose answer cannot be delivered."""
    try:
        public = recipient_cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise BadAlg(f"The signer certificate's key cannot be used: {exc}") from exc
    if not isinstance(public, rsa.RSAPublicKey):
        raise BadAlg("SCEP encrypts its reply to the signer certificate's key, which must be RSA.")
    _oid, key_len, _block = CIPHERS[envelope.cipher]
    overhead = 11
    if envelope.key_transport == "oaep":
        overhead = 2 * _cms.hash_algorithm(envelope.oaep_hash or "sha1").digest_size + 2
    size = (public.key_size + 7) // 8
    if size - overhead < key_len:
        transport = f"OAEP-{envelope.oaep_hash}" if envelope.key_transport == "oaep" else "PKCS#1 v1.5"
        raise BadAlg(f"The reply cannot be encrypted to a {public.key_size}-bit RSA key with {transport} key "
                     f"transport; use a longer key or another key transport.")


def encrypt_envelope(content: bytes, recipient_cert: x509.Certificate, *, cipher: str = "aes256",
                     key_transport: str = "pkcs1v15", oaep_hash: str = "sha1") -> bytes:
    """DER ContentInfo(EnvelopedData) of ``content`` (as id-data) for the RSA key of ``recipient_cert``.

    ``cipher``: a key of :data:`~.types.CIPHERS`; ``key_transport``: ``pkcs1v15`` or ``oaep`` (with
    ``oaep_hash`` for both OAEP and MGF1). BadAlg when the recipient key is not RSA or a name is unknown.
    """
    if cipher not in CIPHERS:
        raise BadAlg(f"Unknown content cipher {cipher!r}.")
    public = recipient_cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise BadAlg("SCEP encrypts to RSA keys only; the recipient certificate's key is not RSA.")
    oid, key_len, block = CIPHERS[cipher]
    session_key, iv = os.urandom(key_len), os.urandom(block)
    padder = sym_padding.PKCS7(block * 8).padder()
    encryptor = _content_cipher(cipher, session_key, iv).encryptor()
    ciphertext = encryptor.update(padder.update(content) + padder.finalize()) + encryptor.finalize()

    if key_transport == "pkcs1v15":
        encrypted_key = public.encrypt(session_key, padding.PKCS1v15())
    elif key_transport == "oaep":
        encrypted_key = public.encrypt(session_key, _oaep(oaep_hash))
    else:
        raise BadAlg(f"Unknown key transport {key_transport!r}.")
    return _cms.enveloped_data(recipient_cert=recipient_cert,
                               key_transport_alg_der=_key_transport_der(key_transport, oaep_hash),
                               encrypted_key=encrypted_key, cipher_oid=oid, iv=iv, ciphertext=ciphertext)


@functools.cache
def _key_transport_der(key_transport: str, oaep_hash: str) -> bytes:
    if key_transport == "pkcs1v15":
        return cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()}).dump()
    hash_alg = algos.DigestAlgorithm({"algorithm": oaep_hash})
    # asn1crypto leaves out fields equal to RFC 8017's defaults (SHA-1, MGF1-SHA-1): DER as required.
    params = {"hash_algorithm": hash_alg, "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": hash_alg}}
    return cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep", "parameters": algos.RSAESOAEPParams(params)}).dump()
