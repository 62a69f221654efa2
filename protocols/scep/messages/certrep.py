"""Build a CertRep (RFC 8894 section 3.3.2): the CA's (or RA's) signed reply to every PKIOperation."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from cryptography import x509

from . import _cms
from .degenerate import degenerate_certs_only
from .envelope import DecryptedEnvelope, encrypt_envelope
from .pkimessage import PkiMessage
from .types import (
    DEFAULT_DIGEST,
    DIGESTS,
    LEGACY_DIGESTS,
    OID_FAIL_INFO,
    OID_FAIL_INFO_TEXT,
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_RECIPIENT_NONCE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    FailInfo,
    MessageType,
    PkiStatus,
)

NONCE_SIZE = 16


def reply_digest(requested: str | None, *, allow_legacy_digest: bool = False) -> str:
    """The digest a reply is signed with: the request's, unless it is unknown, or legacy (SHA-1, MD5) and the
    alias does not allow legacy digests; then SHA-256."""
    if requested not in DIGESTS or (requested in LEGACY_DIGESTS and not allow_legacy_digest):
        return DEFAULT_DIGEST
    return requested


def build_cert_rep(*, signer_cert: x509.Certificate, signer_key, status: PkiStatus,
                   request: PkiMessage | None = None, envelope: DecryptedEnvelope | None = None,
                   transaction_id: str | None = None, recipient_nonce: bytes | None = None,
                   fail_info: FailInfo | None = None, fail_info_text: str | None = None,
                   issued_certs: Sequence[x509.Certificate] = (),
                   crls: Iterable[x509.CertificateRevocationList] = (),
                   recipient_cert: x509.Certificate | None = None, cipher: str | None = None,
                   key_transport: str | None = None, oaep_hash: str | None = None,
                   digest: str | None = None, allow_legacy_digest: bool = False,
                   extra_certs_in_signed_data: Sequence[x509.Certificate] = (),
                   sender_nonce: bytes | None = None) -> bytes:
    """DER CertRep: SignedData signed by ``signer_key`` (only its ``.sign()`` is used) with messageType 3,
    transactionID, pkiStatus, a fresh senderNonce, recipientNonce = the request's senderNonce, and failInfo
    (+ failInfoText) on FAILURE.

    On SUCCESS the content is an EnvelopedData, encrypted to the requester's certificate, holding a degenerate
    certificates-only SignedData with ``issued_certs`` (put the issued certificate first, then, when the alias
    includes it, the CA certificate) and ``crls`` (the GetCRL reply). On PENDING and FAILURE the content is empty
    (an empty OCTET STRING: OpenSSL-based clients cannot verify a SignedData without any).

    The values default from ``request`` (transaction_id, recipient_nonce = its sender_nonce, recipient_cert =
    its signer certificate, digest = its digest) and ``envelope`` (cipher, key_transport, oaep_hash), so a
    server usually passes those two. Explicit arguments win. The digest falls back to SHA-256 when it is
    legacy (SHA-1/MD5) and ``allow_legacy_digest`` is False. ``extra_certs_in_signed_data``: more certificates
    for the outer SignedData next to the signer's (e.g. the CA certificate when an RA signs).
    """
    if request is not None:
        transaction_id = transaction_id or request.transaction_id
        recipient_nonce = recipient_nonce if recipient_nonce is not None else request.sender_nonce
        recipient_cert = recipient_cert or request.signer_certificate
        digest = digest or request.digest_algorithm
    if envelope is not None:
        cipher = cipher or envelope.cipher
        key_transport = key_transport or envelope.key_transport
        oaep_hash = oaep_hash or envelope.oaep_hash
    if not transaction_id:
        raise ValueError("A CertRep needs the request's transactionID.")
    status = PkiStatus(status)
    if status == PkiStatus.FAILURE and fail_info is None:
        raise ValueError("A FAILURE CertRep needs a failInfo.")
    digest_name = reply_digest(digest, allow_legacy_digest=allow_legacy_digest)

    attributes = [
        _cms.attribute_der(OID_MESSAGE_TYPE, _cms.printable(str(int(MessageType.CERT_REP)))),
        _cms.attribute_der(OID_TRANSACTION_ID, _cms.printable(transaction_id)),
        _cms.attribute_der(OID_PKI_STATUS, _cms.printable(str(int(status)))),
        _cms.attribute_der(OID_SENDER_NONCE, _cms.octet_string(sender_nonce or os.urandom(NONCE_SIZE))),
    ]
    if recipient_nonce is not None:
        attributes.append(_cms.attribute_der(OID_RECIPIENT_NONCE, _cms.octet_string(recipient_nonce)))
    if status == PkiStatus.FAILURE:
        attributes.append(_cms.attribute_der(OID_FAIL_INFO, _cms.printable(str(int(FailInfo(fail_info))))))
        if fail_info_text:
            attributes.append(_cms.attribute_der(OID_FAIL_INFO_TEXT, _cms.utf8(fail_info_text)))

    # PENDING and FAILURE: an empty eContent rather than none (RFC 8894 allows either; EJBCA sends this). OpenSSL's
    # PKCS7_verify refuses a SignedData without content ("no content"), so certmonger and sscep could not read a
    # refusal (certmonger reported CA_UNREACHABLE instead of CA_REJECTED) nor a PENDING (and never polled).
    content = b""
    if status == PkiStatus.SUCCESS:
        if recipient_cert is None:
            raise ValueError("A SUCCESS CertRep is encrypted to the requester: recipient_cert is needed.")
        inner = degenerate_certs_only(issued_certs, crls)
        content = encrypt_envelope(inner, recipient_cert, cipher=cipher or "aes256",
                                   key_transport=key_transport or "pkcs1v15", oaep_hash=oaep_hash or "sha1")
    return _cms.signed_data(content=content, digest_name=digest_name, signer_cert=signer_cert,
                            signer_key=signer_key, attributes=attributes,
                            certificates=(signer_cert, *extra_certs_in_signed_data))
