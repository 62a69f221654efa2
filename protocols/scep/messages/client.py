"""The client side of SCEP: build requests and read CertReps. Used by the tests, the benchmarks and anything
that needs to act as a SCEP client (e.g. an RA talking to an upstream CA). Not used by the server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import _cms
from .degenerate import parse_degenerate
from .envelope import decrypt_envelope, encrypt_envelope
from .payloads import encode_issuer_and_serial, encode_issuer_and_subject
from .pkimessage import MAX_MESSAGE_SIZE, PkiMessage, parse_pki_message
from .types import (
    OID_MESSAGE_TYPE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    FailInfo,
    MessageType,
    PkiStatus,
    ScepMessageError,
)


@dataclass(frozen=True)
class ClientRequest:
    """A built request: ``data`` is what is POSTed; keep ``transaction_id`` and ``sender_nonce`` to check the
    reply (its recipientNonce must equal ``sender_nonce``)."""

    data: bytes
    transaction_id: str
    sender_nonce: bytes
    message_type: MessageType

    def __bytes__(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class CertRepResult:
    """A decoded CertRep: status, failInfo, the certificates/CRLs of a SUCCESS, and the parsed message."""

    message: PkiMessage
    status: PkiStatus
    fail_info: FailInfo | None
    fail_info_text: str | None
    certificates: list[x509.Certificate]
    crls: list[x509.CertificateRevocationList]
    cipher: str | None

    @property
    def transaction_id(self) -> str:
        return self.message.transaction_id

    @property
    def sender_nonce(self) -> bytes | None:
        return self.message.sender_nonce

    @property
    def recipient_nonce(self) -> bytes | None:
        return self.message.recipient_nonce


def transaction_id_for(public_key) -> str:
    """RFC 8894 section 3.2.1.1's suggestion: a hash of the requester's public key, hex-encoded."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest().upper()


def _build(message_type: MessageType, payload: bytes, signer_cert: x509.Certificate, signer_key,
           recipient_cert: x509.Certificate, *, cipher: str, digest: str, key_transport: str, oaep_hash: str,
           transaction_id: str, sender_nonce: bytes | None) -> ClientRequest:
    nonce = sender_nonce or os.urandom(16)
    envelope = encrypt_envelope(payload, recipient_cert, cipher=cipher, key_transport=key_transport,
                                oaep_hash=oaep_hash)
    attributes = [
        _cms.attribute_der(OID_MESSAGE_TYPE, _cms.printable(str(int(message_type)))),
        _cms.attribute_der(OID_TRANSACTION_ID, _cms.printable(transaction_id)),
        _cms.attribute_der(OID_SENDER_NONCE, _cms.octet_string(nonce)),
    ]
    data = _cms.signed_data(content=envelope, digest_name=digest, signer_cert=signer_cert, signer_key=signer_key,
                            attributes=attributes, certificates=(signer_cert,))
    return ClientRequest(data=data, transaction_id=transaction_id, sender_nonce=nonce, message_type=message_type)


def build_pkcs_req(csr: x509.CertificateSigningRequest, signer_cert: x509.Certificate, signer_key,
                   recipient_cert: x509.Certificate, *, cipher: str = "aes256", digest: str = "sha256",
                   key_transport: str = "pkcs1v15", oaep_hash: str = "sha1",
                   message_type: MessageType = MessageType.PKCS_REQ, transaction_id: str | None = None,
                   sender_nonce: bytes | None = None) -> ClientRequest:
    """PKCSReq (or RenewalReq) for ``csr``, signed by ``signer_key``/``signer_cert`` (a self-signed certificate
    for the CSR's key, or the existing certificate for a renewal) and encrypted to ``recipient_cert`` (the
    CA or RA certificate). The transactionID defaults to a hash of the CSR's public key."""
    return _build(MessageType(message_type), csr.public_bytes(Encoding.DER), signer_cert, signer_key,
                  recipient_cert, cipher=cipher, digest=digest, key_transport=key_transport, oaep_hash=oaep_hash,
                  transaction_id=transaction_id or transaction_id_for(csr.public_key()), sender_nonce=sender_nonce)


def build_get_cert_initial(issuer: x509.Name, subject: x509.Name, signer_cert: x509.Certificate, signer_key,
                           recipient_cert: x509.Certificate, *, transaction_id: str, cipher: str = "aes256",
                           digest: str = "sha256", key_transport: str = "pkcs1v15", oaep_hash: str = "sha1",
                           sender_nonce: bytes | None = None) -> ClientRequest:
    """CertPoll (GetCertInitial) for a PENDING request: same transactionID as its PKCSReq."""
    return _build(MessageType.CERT_POLL, encode_issuer_and_subject(issuer, subject), signer_cert, signer_key,
                  recipient_cert, cipher=cipher, digest=digest, key_transport=key_transport, oaep_hash=oaep_hash,
                  transaction_id=transaction_id, sender_nonce=sender_nonce)


def build_get_cert(issuer: x509.Name, serial_number: int, signer_cert: x509.Certificate, signer_key,
                   recipient_cert: x509.Certificate, *, transaction_id: str | None = None, cipher: str = "aes256",
                   digest: str = "sha256", key_transport: str = "pkcs1v15", oaep_hash: str = "sha1",
                   sender_nonce: bytes | None = None) -> ClientRequest:
    """GetCert for the certificate ``issuer`` / ``serial_number``."""
    return _build(MessageType.GET_CERT, encode_issuer_and_serial(issuer, serial_number), signer_cert, signer_key,
                  recipient_cert, cipher=cipher, digest=digest, key_transport=key_transport, oaep_hash=oaep_hash,
                  transaction_id=transaction_id or os.urandom(16).hex().upper(), sender_nonce=sender_nonce)


def build_get_crl(issuer: x509.Name, serial_number: int, signer_cert: x509.Certificate, signer_key,
                  recipient_cert: x509.Certificate, *, transaction_id: str | None = None, cipher: str = "aes256",
                  digest: str = "sha256", key_transport: str = "pkcs1v15", oaep_hash: str = "sha1",
                  sender_nonce: bytes | None = None) -> ClientRequest:
    """GetCRL for the CRL covering the certificate ``issuer`` / ``serial_number``."""
    return _build(MessageType.GET_CRL, encode_issuer_and_serial(issuer, serial_number), signer_cert, signer_key,
                  recipient_cert, cipher=cipher, digest=digest, key_transport=key_transport, oaep_hash=oaep_hash,
                  transaction_id=transaction_id or os.urandom(16).hex().upper(), sender_nonce=sender_nonce)


def parse_cert_rep(data: bytes, requester_key, requester_cert: x509.Certificate | None = None, *,
                   ca_certs: Sequence[x509.Certificate] = (), allow_des: bool = True,
                   max_size: int = 4 * MAX_MESSAGE_SIZE) -> CertRepResult:
    """Verify and decode a CertRep. ``ca_certs``: the CA/RA certificates the signer may be (when the reply
    does not carry its signer's certificate). On SUCCESS the envelope is decrypted with ``requester_key`` and
    the certificates and CRLs inside are returned. Raises the message layer's errors (ScepMessageError when
    this is no CertRep)."""
    message = parse_pki_message(data, signer_certificates=ca_certs, max_size=max_size)
    if message.message_type != MessageType.CERT_REP or message.pki_status is None:
        raise ScepMessageError(f"Expected a CertRep, got messageType {int(message.message_type)}.")
    certs: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    cipher = None
    if message.pki_status == PkiStatus.SUCCESS:
        inner = decrypt_envelope(message, requester_key, requester_cert, allow_des=allow_des)
        certs, crls = parse_degenerate(inner.content)
        cipher = inner.cipher
    return CertRepResult(message=message, status=message.pki_status, fail_info=message.fail_info,
                         fail_info_text=message.fail_info_text, certificates=certs, crls=crls, cipher=cipher)
