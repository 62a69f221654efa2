"""Parse a SCEP pkiMessage (RFC 8894 section 3.2): the outer CMS SignedData, its SCEP signed attributes and
the signer's signature. The pkcsPKIEnvelope inside stays encrypted (see :mod:`.envelope`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from . import _cms
from .types import (
    DIGESTS,
    OID_FAIL_INFO,
    OID_FAIL_INFO_TEXT,
    OID_MESSAGE_TYPE,
    OID_PKI_STATUS,
    OID_RECIPIENT_NONCE,
    OID_SENDER_NONCE,
    OID_TRANSACTION_ID,
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    FailInfo,
    MessageType,
    PkiMessage,
    PkiStatus,
    ScepError,
    ScepMessageError,
)

#: Largest message the parser reads (the server should refuse bigger bodies before even calling it).
MAX_MESSAGE_SIZE = 64 * 1024

_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_TIME = "1.2.840.113549.1.9.5"


MAX_TRANSACTION_ID = 255  # protocols.scep.models: ScepTransaction/ApprovalRequest.transaction_id


def parse_pki_message(data: bytes, *, signer_certificates: Sequence[x509.Certificate] = (),
                      max_size: int = MAX_MESSAGE_SIZE, max_clock_skew: dt.timedelta | None = None,
                      now: dt.datetime | None = None) -> PkiMessage:
    """Parse and verify one SCEP message (request or CertRep).

    The signer certificate is looked up (by the signer info's issuer-and-serial or subject key identifier)
    among the message's own certificates, then among ``signer_certificates`` (a client parsing a CertRep
    passes the CA/RA certificates here). The signature over the signed attributes and the messageDigest over
    the content are both checked.

    ``max_clock_skew``: when given and the message has a signingTime attribute further than that from ``now``
    (default: the current time), BadTime.

    Raises:
        ScepMessageError: not a SCEP message we can reply to (not DER/BER CMS, not SignedData, no signer,
            no messageType or transactionID, a request without senderNonce, too big).
        BadAlg: digest or signature algorithm not supported (``failure.message`` set).
        BadMessageCheck: signer certificate missing, messageDigest or signature wrong (``failure.message`` set).
        BadRequest: unknown messageType value (``failure.message`` set).
        BadTime: signingTime out of ``max_clock_skew``.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ScepMessageError("A SCEP message must be bytes.")
    data = bytes(data)
    if not data:
        raise ScepMessageError("Empty SCEP message.")
    if len(data) > max_size:
        raise ScepMessageError(f"The SCEP message is {len(data)} bytes, more than the limit of {max_size}.")
    try:
        return _parse(data, signer_certificates, max_clock_skew, now)
    except ScepError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            x509.InvalidVersion) as exc:
        # asn1crypto parses lazily and reports malformed encodings as any of these, at any depth.
        raise ScepMessageError(f"Malformed SCEP message: {exc}") from exc


def _parse(data: bytes, extra_signers: Sequence[x509.Certificate], max_clock_skew: dt.timedelta | None,
           now: dt.datetime | None) -> PkiMessage:
    info = cms.ContentInfo.load(data, strict=True)
    if info["content_type"].native != "signed_data":
        raise ScepMessageError("A SCEP message is a CMS SignedData.")
    sd = info["content"]
    signer_infos = sd["signer_infos"]
    if len(signer_infos) != 1:
        raise ScepMessageError(f"A SCEP message has exactly one signer, this one has {len(signer_infos)}.")
    signer_info = signer_infos[0]
    signed_attrs = signer_info["signed_attrs"]
    if not isinstance(signed_attrs, cms.CMSAttributes) or len(signed_attrs) == 0:
        raise ScepMessageError("A SCEP message carries its fields as signed attributes; this one has none.")
    attrs = _cms.attribute_values(signed_attrs)

    if OID_MESSAGE_TYPE not in attrs or OID_TRANSACTION_ID not in attrs:
        raise ScepMessageError("The messageType or transactionID attribute is missing.")
    type_text = _cms.text_of(attrs[OID_MESSAGE_TYPE], "messageType").strip()
    if not _ascii_digits(type_text) or len(type_text) > 4:
        raise ScepMessageError(f"messageType {type_text!r} is not a number.")
    type_value = int(type_text)
    message_type: MessageType | int = (MessageType(type_value) if type_value in MessageType._value2member_map_
                                       else type_value)
    transaction_id = _cms.text_of(attrs[OID_TRANSACTION_ID], "transactionID")
    if not transaction_id:
        raise ScepMessageError("The transactionID is empty.")
    # Clients send a hex or base64 digest; control characters (NUL above all) or a length no column holds are
    # no transactionID, and must be refused here, before anything is stored under it.
    if len(transaction_id) > MAX_TRANSACTION_ID or any(ord(c) < 32 or ord(c) == 127 for c in transaction_id):
        raise ScepMessageError("The transactionID is longer than 255 characters or holds control characters.")
    sender_nonce = _octets(attrs, OID_SENDER_NONCE, "senderNonce")
    recipient_nonce = _octets(attrs, OID_RECIPIENT_NONCE, "recipientNonce")
    pki_status = fail_info = None
    fail_info_text = None
    if message_type == MessageType.CERT_REP:
        if OID_PKI_STATUS not in attrs:
            raise ScepMessageError("A CertRep without pkiStatus.")
        pki_status = PkiStatus(_small_int(attrs[OID_PKI_STATUS], "pkiStatus", PkiStatus))
        if OID_FAIL_INFO in attrs:
            fail_info = FailInfo(_small_int(attrs[OID_FAIL_INFO], "failInfo", FailInfo))
        if OID_FAIL_INFO_TEXT in attrs:
            fail_info_text = _cms.text_of(attrs[OID_FAIL_INFO_TEXT], "failInfoText")
    elif sender_nonce is None:
        raise ScepMessageError("A SCEP request without senderNonce.")
    signing_time = None
    if _OID_SIGNING_TIME in attrs:
        value = attrs[_OID_SIGNING_TIME]
        if not isinstance(value, core.UTCTime | core.GeneralizedTime):
            raise ScepMessageError("signingTime is not a time.")
        signing_time = value.native

    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    certificates = tuple(_cms.load_certificates(sd["certificates"]))
    encap = sd["encap_content_info"]
    if encap["content_type"].native != "data":
        raise ScepMessageError("The signed content of a SCEP message is id-data.")
    econtent = encap["content"]
    content = None if isinstance(econtent, core.Void) else econtent.native  # absent in PENDING/FAILURE replies
    if content is not None and not isinstance(content, bytes):
        raise ScepMessageError("The signed content is not an OCTET STRING.")
    signer_cert = next((c for c in (*certificates, *extra_signers)
                        if _cms.matches_certificate(signer_info["sid"], c)), None)

    message = PkiMessage(
        raw=data, message_type=message_type, transaction_id=transaction_id, sender_nonce=sender_nonce,
        recipient_nonce=recipient_nonce, pki_status=pki_status, fail_info=fail_info,
        fail_info_text=fail_info_text, digest_algorithm=digest_name, signer_certificate=signer_cert,
        certificates=certificates, envelope=content or None, signing_time=signing_time,
    )

    if digest_name not in DIGESTS:
        raise BadAlg(f"Unsupported digest algorithm {signer_info['digest_algorithm']['algorithm'].dotted}.", message)
    if signer_cert is None:
        raise BadMessageCheck("The certificate of the message's signer is not in the message.", message)
    expected_digest = _octets(attrs, _OID_MESSAGE_DIGEST, "messageDigest")
    if expected_digest is None or expected_digest != _cms.digest(digest_name, content or b""):
        raise BadMessageCheck("The messageDigest attribute does not match the content.", message)
    if _content_type_mismatch(attrs):
        raise BadMessageCheck("The contentType attribute does not match the content.", message)
    # The signature is over the DER SET OF the attributes: the received [0] IMPLICIT bytes, retagged.
    signed_bytes = b"\x31" + signed_attrs.dump()[1:]
    try:
        signer_public_key = signer_cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise BadAlg(f"The signer certificate's key cannot be used: {exc}", message) from exc
    if not _cms.verify_bytes(signer_public_key, signer_info["signature"].native, signed_bytes,
                             signer_info["signature_algorithm"], digest_name):
        raise BadMessageCheck("The signature of the SCEP message does not verify.", message)
    try:  # read lazily by cryptography: a name it cannot read would fail later, wherever it is first used
        signer_cert.issuer, signer_cert.subject  # noqa: B018
    except (ValueError, KeyError) as exc:
        raise BadRequest(f"The signer certificate's names cannot be read: {exc}", message) from exc
    if not isinstance(message_type, MessageType):
        raise BadRequest(f"Unknown messageType {type_value}.", message)
    if max_clock_skew is not None and signing_time is not None:
        reference = now or dt.datetime.now(dt.UTC)
        if abs(reference - signing_time) > max_clock_skew:
            raise BadTime(f"signingTime {signing_time.isoformat()} is too far from {reference.isoformat()}.",
                          message)
    return message


def _ascii_digits(text: str) -> bool:
    """Decimal as RFC 8894 writes it: str.isdigit() and int() also take other scripts' digits ("١٩" is 19)."""
    return text.isascii() and text.isdigit()


def _content_type_mismatch(attrs: dict[str, core.Asn1Value]) -> bool:
    """True when a contentType attribute is present and is not id-data (RFC 5652 requires it to match)."""
    value = attrs.get(_OID_CONTENT_TYPE)
    if value is None:
        return False
    return not isinstance(value, core.ObjectIdentifier) or value.dotted != "1.2.840.113549.1.7.1"


def _octets(attrs: dict[str, core.Asn1Value], oid: str, what: str) -> bytes | None:
    value = attrs.get(oid)
    return None if value is None else _cms.octets_of(value, what)


def _small_int(value: core.Asn1Value, what: str, enum_cls) -> int:
    text = _cms.text_of(value, what).strip()
    if not _ascii_digits(text) or int(text) not in enum_cls._value2member_map_:
        raise ScepMessageError(f"{what} {text!r} is not a known value.")
    return int(text)
