"""The SCEP message layer (RFC 8894): pure functions, no Django, no database. Bytes and values in, bytes and
values out, on asn1crypto's CMS structures and ``cryptography``'s primitives.

Server side, one PKIOperation::

    try:
        request = parse_pki_message(body)                        # verifies the signer's signature
        inner = decrypt_envelope(request, ca_key, ca_cert)       # ca_key: any handle with .decrypt()
        if request.message_type in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ):
            csr = parse_csr(inner.content, message=request)      # csr.username, csr.challenge_password
        elif request.message_type == MessageType.CERT_POLL:
            ias = parse_issuer_and_subject(inner.content, message=request)
        else:                                                    # GET_CERT, GET_CRL
            iasn = parse_issuer_and_serial(inner.content, message=request)
    except ScepMessageError:
        ...                                                      # plain HTTP 400
    except ScepFailure as failure:                               # BadAlg, BadMessageCheck, BadRequest, ...
        if failure.message is None: ...                          # nothing to reply to: HTTP 400
        reply = build_cert_rep(request=failure.message, status=PkiStatus.FAILURE,
                               fail_info=failure.fail_info, signer_cert=ca_cert, signer_key=ca_key)
    ...
    reply = build_cert_rep(request=request, status=PkiStatus.SUCCESS, issued_certs=[cert, ca_cert],
                           cipher=inner.cipher, signer_cert=ca_cert, signer_key=ca_key,
                           allow_legacy_digest=alias_allows_sha1)
    # HTTP 200, Content-Type: application/x-pki-message

GetCACert chain / GetNextCACert: :func:`degenerate_certs_only` (Content-Type application/x-x509-ca-ra-cert
resp. application/x-x509-next-ca-cert; the latter should be signed by the current CA in a real server:
:func:`build_signed_certs` does that).

Client side (tests, benchmarks): :mod:`protocols.scep.messages.client` — ``build_pkcs_req``,
``build_get_cert_initial``, ``build_get_cert``, ``build_get_crl`` and ``parse_cert_rep``.

Interoperability notes: Debian's ``scepclient`` (micromdm 2.1) always sends DES-CBC and SHA-1, whatever
GetCACaps says, so it enrolls only where DES is allowed (``allow_des=True``); its SHA-1 is answered with
SHA-256 unless legacy digests are allowed. Requests may be BER (indefinite lengths, chunked OCTET STRINGs).
The decrypting key must be RSA; a PKCS#11 handle that refuses ``decrypt`` cannot serve SCEP.

Errors: see :mod:`protocols.scep.messages.types` — every failure is a :class:`ScepError`:
:class:`ScepMessageError` (HTTP 400) or a :class:`ScepFailure` subclass (CertRep FAILURE with its
``fail_info``, ``failure.message`` is the parsed request when there is one).
"""

from .certrep import build_cert_rep
from .degenerate import build_signed_certs, degenerate_certs_only, parse_degenerate
from .envelope import DecryptedEnvelope, check_reply_recipient, decrypt_envelope, encrypt_envelope
from .payloads import (
    CsrInfo,
    IssuerAndSerial,
    IssuerAndSubject,
    encode_issuer_and_serial,
    encode_issuer_and_subject,
    parse_csr,
    parse_issuer_and_serial,
    parse_issuer_and_subject,
)
from .pkimessage import MAX_MESSAGE_SIZE, PkiMessage, parse_pki_message
from .types import (
    CIPHERS,
    DIGESTS,
    LEGACY_DIGESTS,
    BadAlg,
    BadCertId,
    BadMessageCheck,
    BadRequest,
    BadTime,
    FailInfo,
    MessageType,
    PkiStatus,
    ScepError,
    ScepFailure,
    ScepMessageError,
)

__all__ = [
    "CIPHERS", "DIGESTS", "LEGACY_DIGESTS", "MAX_MESSAGE_SIZE",
    "BadAlg", "BadCertId", "BadMessageCheck", "BadRequest", "BadTime", "CsrInfo", "DecryptedEnvelope",
    "FailInfo", "IssuerAndSerial", "IssuerAndSubject", "MessageType", "PkiMessage", "PkiStatus",
    "ScepError", "ScepFailure", "ScepMessageError",
    "build_cert_rep", "build_signed_certs", "check_reply_recipient",
    "decrypt_envelope", "degenerate_certs_only", "encode_issuer_and_serial",
    "encode_issuer_and_subject", "encrypt_envelope", "parse_csr", "parse_degenerate", "parse_issuer_and_serial",
    "parse_issuer_and_subject", "parse_pki_message",
]
