"""SCEP vocabulary (RFC 8894 section 3.2): message types, pkiStatus, failInfo, attribute OIDs, algorithms,
the parsed message value (:class:`PkiMessage`, here because the failures carry it) and the typed errors of the
message layer.

Errors come in two kinds, so the server can tell them apart with one ``except`` each:

- :class:`ScepMessageError`: the bytes are not a SCEP message we can answer (malformed, truncated, no
  transactionID...). The server answers a plain HTTP 400.
- :class:`ScepFailure` and its subclasses :class:`BadAlg`, :class:`BadMessageCheck`, :class:`BadRequest`,
  :class:`BadTime`, :class:`BadCertId`: the message was understood well enough to answer, and the answer is
  a CertRep with pkiStatus FAILURE and ``failure.fail_info``. ``failure.message`` is the parsed
  :class:`PkiMessage` (its transactionID, senderNonce and signer certificate are what the reply needs); it is
  None only when the failure was raised before parsing got that far (then the server has nothing to reply to
  and answers HTTP 400).

Both derive from :class:`ScepError`; nothing else ever escapes the parser (a fuzz test checks it).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from cryptography import x509


class MessageType(enum.IntEnum):
    """messageType attribute values (RFC 8894 section 3.2.1.2), carried as a decimal PrintableString."""

    CERT_REP = 3
    RENEWAL_REQ = 17
    PKCS_REQ = 19
    CERT_POLL = 20  # draft-nourse-scep's GetCertInitial
    GET_CERT = 21
    GET_CRL = 22

    GET_CERT_INITIAL = 20  # alias: the name EJBCA and older clients use


class PkiStatus(enum.IntEnum):
    """pkiStatus attribute values (RFC 8894 section 3.2.1.3)."""

    SUCCESS = 0
    FAILURE = 2
    PENDING = 3


class FailInfo(enum.IntEnum):
    """failInfo attribute values (RFC 8894 section 3.2.1.4)."""

    BAD_ALG = 0
    BAD_MESSAGE_CHECK = 1
    BAD_REQUEST = 2
    BAD_TIME = 3
    BAD_CERT_ID = 4


# SCEP signed attributes (VeriSign arc 2.16.840.1.113733.1.9, RFC 8894 section 3.2.1).
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"  # id-scep-failInfoText, RFC 8894 section 3.2.1.4

# asn1crypto's names for the attributes once registered (see pkimessage.py).
ATTR_MESSAGE_TYPE = "scep_message_type"
ATTR_PKI_STATUS = "scep_pki_status"
ATTR_FAIL_INFO = "scep_fail_info"
ATTR_SENDER_NONCE = "scep_sender_nonce"
ATTR_RECIPIENT_NONCE = "scep_recipient_nonce"
ATTR_TRANSACTION_ID = "scep_transaction_id"
ATTR_FAIL_INFO_TEXT = "scep_fail_info_text"

# Content-encryption algorithms: our short name -> (OID, key length in bytes, block size in bytes).
CIPHERS: dict[str, tuple[str, int, int]] = {
    "des": ("1.3.14.3.2.7", 8, 8),
    "des3": ("1.2.840.113549.3.7", 24, 8),
    "aes128": ("2.16.840.1.101.3.4.1.2", 16, 16),
    "aes192": ("2.16.840.1.101.3.4.1.22", 24, 16),
    "aes256": ("2.16.840.1.101.3.4.1.42", 32, 16),
}
CIPHER_BY_OID = {oid: name for name, (oid, _k, _b) in CIPHERS.items()}

# Key transport: our short name -> OID (rsaEncryption = PKCS#1 v1.5, id-RSAES-OAEP).
KEY_TRANSPORTS = {"pkcs1v15": "1.2.840.113549.1.1.1", "oaep": "1.2.840.113549.1.1.7"}

# Message digests we verify and sign with; SHA-1 and MD5 only as "legacy" (the alias must allow them).
DIGESTS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
LEGACY_DIGESTS = frozenset({"md5", "sha1"})
DEFAULT_DIGEST = "sha256"


@dataclass(frozen=True)
class PkiMessage:
    """A parsed, signature-checked SCEP message.

    ``message_type`` is a :class:`MessageType` (a plain int only inside a BadRequest for an unknown type).
    ``signer_certificate`` is the certificate whose key signed the message (for a request: the client's
    self-signed or existing certificate, which the reply is encrypted to); None only inside a failure raised
    because it could not be found. ``envelope`` is the DER ContentInfo(EnvelopedData) still encrypted, None
    when the message carries no content (CertRep PENDING/FAILURE). ``digest_algorithm`` is one of
    ``sha256``, ``sha384``, ``sha512``, ``sha224``, or the legacy ``sha1``/``md5`` (see ``legacy_digest``).
    """

    raw: bytes
    message_type: MessageType | int
    transaction_id: str
    sender_nonce: bytes | None
    recipient_nonce: bytes | None
    pki_status: PkiStatus | None
    fail_info: FailInfo | None
    fail_info_text: str | None
    digest_algorithm: str
    signer_certificate: x509.Certificate | None
    certificates: tuple[x509.Certificate, ...]
    envelope: bytes | None
    signing_time: dt.datetime | None = None

    @property
    def legacy_digest(self) -> bool:
        """SHA-1 or MD5: accepted only when the alias allows legacy digests."""
        return self.digest_algorithm in LEGACY_DIGESTS

    @property
    def is_request(self) -> bool:
        return self.message_type != MessageType.CERT_REP


class ScepError(Exception):
    """Base of every error the message layer raises."""


class ScepMessageError(ScepError):
    """Not a SCEP message we can answer (malformed, truncated, missing mandatory attributes): HTTP 400."""


class ScepFailure(ScepError):
    """A SCEP message that must be answered with a CertRep FAILURE carrying :attr:`fail_info`."""

    fail_info: FailInfo = FailInfo.BAD_REQUEST

    def __init__(self, text: str, message: PkiMessage | None = None):
        super().__init__(text)
        self.text = text
        self.message = message


class BadAlg(ScepFailure):
    """Unrecognized or unsupported algorithm (digest, signature, key transport or content cipher)."""

    fail_info = FailInfo.BAD_ALG


class BadMessageCheck(ScepFailure):
    """Integrity check failed: bad signature or message digest, or the envelope does not decrypt."""

    fail_info = FailInfo.BAD_MESSAGE_CHECK


class BadRequest(ScepFailure):
    """Transaction not permitted or supported, or the decrypted content is not what the type requires."""

    fail_info = FailInfo.BAD_REQUEST


class BadTime(ScepFailure):
    """The signingTime attribute was not sufficiently close to the system time."""

    fail_info = FailInfo.BAD_TIME


class BadCertId(ScepFailure):
    """No certificate could be identified matching the provided criteria."""

    fail_info = FailInfo.BAD_CERT_ID


FAILURE_CLASSES: dict[FailInfo, type[ScepFailure]] = {
    cls.fail_info: cls for cls in (BadAlg, BadMessageCheck, BadRequest, BadTime, BadCertId)
}
