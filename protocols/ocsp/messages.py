"""OCSP messages (RFC 6960): parse a request, build a signed or an error response.

Pure: bytes and values in, bytes out; no database. ``cryptography``'s OCSP classes take one certificate
per request and per response, and clients (OpenSSL among them) ask for several at once, so requests are read
and responses written as DER here (protocols.ocsp.der: asn1crypto's object tree cost more than the signature),
signed through any private-key handle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import keys, ocsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import der

# The CertID hash algorithms answered (SHA-1 is what most clients send; RFC 6960 allows any).
HASHES = ("sha1", "sha256", "sha384", "sha512")
MAX_REQUESTS = 20  # certificates in one request; more is refused as malformed (a cheap amplification)


class MalformedRequest(ValueError):
    """Not an OCSP request this responder can read (answered ``malformedRequest``)."""


@dataclass(frozen=True)
class CertId:
    """One certificate asked about: the issuer's name and key hashes under ``hash_name``, and the serial;
    ``der`` is the CertID as the request encoded it (echoed in the answer)."""

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes

    @property
    def issuer_key(self) -> tuple[str, bytes, bytes]:
        return self.hash_name, self.issuer_name_hash, self.issuer_key_hash


@dataclass(frozen=True)
class ParsedRequest:
    cert_ids: list[CertId]
    nonce: bytes | None  # the nonce extension's extnValue content, echoed as it came


@dataclass(frozen=True)
class SingleStatus:
    """The answer for one CertID: ``good``, ``revoked`` (time and RFC 5280 reason code) or ``unknown``."""

    cert_id: CertId
    status: str
    revoked_at: datetime | None = None
    reason: int | None = None


# CertID hash algorithm OIDs (content bytes) -> the names of HASHES; any other is kept as its hex digits.
_HASH_OIDS = {
    bytes.fromhex("2b0e03021a"): "sha1",
    bytes.fromhex("608648016503040201"): "sha256",
    bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512",
}
_NONCE = bytes.fromhex("2b0601050507300102")  # id-pkix-ocsp-nonce
MAX_NONCE = 128


def parse_request(data: bytes) -> ParsedRequest:
    """Read an OCSPRequest (RFC 6960 4.1.1); raises :class:`MalformedRequest` on anything else.

    The signature of a signed request, a requestor name and per-certificate extensions are not used (as
    before: this responder answers anyone); a critical request extension other than the nonce is refused.
    """
    try:
        cert_ids, nonce = _read_request(data)
    except der.DerError as exc:
        raise MalformedRequest(f"not an OCSP request: {exc}") from None
    if not cert_ids:
        raise MalformedRequest("the request names no certificate")
    return ParsedRequest(cert_ids, nonce)


def _read_request(data: bytes) -> tuple[list[CertId], bytes | None]:
    fields = der.children(data, der.only(data), der.SEQUENCE)  # OCSPRequest
    if not fields or len(fields) > 2 or (len(fields) == 2 and fields[1][0] != 0xA0):
        raise der.DerError("not an OCSPRequest")
    tbs = der.children(data, fields[0], der.SEQUENCE)  # TBSRequest
    if tbs and tbs[0][0] == 0xA0:  # version [0] EXPLICIT INTEGER
        der.content(data, der.only(data, tbs[0][1], tbs[0][2]), der.INTEGER)
        tbs = tbs[1:]
    if tbs and tbs[0][0] == 0xA1:  # requestorName [1] EXPLICIT GeneralName
        der.only(data, tbs[0][1], tbs[0][2])
        tbs = tbs[1:]
    if not tbs or len(tbs) > 2 or (len(tbs) == 2 and tbs[1][0] != 0xA2):
        raise der.DerError("not a TBSRequest")
    requests = der.children(data, tbs[0], der.SEQUENCE)
    if len(requests) > MAX_REQUESTS:
        raise MalformedRequest(f"more than {MAX_REQUESTS} certificates in one request")
    cert_ids = [_cert_id(data, request) for request in requests]
    nonce = None
    if len(tbs) == 2:
        for extension in der.children(data, der.only(data, tbs[1][1], tbs[1][2]), der.SEQUENCE):
            parts = der.children(data, extension, der.SEQUENCE)
            if len(parts) not in (2, 3):
                raise der.DerError("not an Extension")
            critical = len(parts) == 3 and der.content(data, parts[1], der.BOOLEAN) != b"\x00"
            if len(parts) == 3 and parts[1][2] - parts[1][1] != 1:
                raise der.DerError("not a BOOLEAN")
            oid = der.content(data, parts[0], der.OID)
            value = der.content(data, parts[-1], der.OCTET_STRING)
            if oid == _NONCE:
                if len(value) > MAX_NONCE:
                    raise MalformedRequest(f"nonce longer than {MAX_NONCE} bytes")
                nonce = value
            elif critical:
                raise MalformedRequest(f"unsupported critical extension {oid.hex()}")
    return cert_ids, nonce


def _cert_id(data: bytes, request: tuple[int, int, int]) -> CertId:
    parts = der.children(data, request, der.SEQUENCE)  # Request
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1][0] != 0xA0):
        raise der.DerError("not a Request")
    fields = der.children(data, parts[0], der.SEQUENCE)  # CertID
    if len(fields) != 4:
        raise der.DerError("not a CertID")
    algorithm = der.children(data, fields[0], der.SEQUENCE)
    if not algorithm or len(algorithm) > 2:
        raise der.DerError("not an AlgorithmIdentifier")
    oid = der.content(data, algorithm[0], der.OID)
    serial = der.content(data, fields[3], der.INTEGER)
    if not serial or serial[0] & 0x80:
        raise MalformedRequest("bad serial number")
    return CertId(_HASH_OIDS.get(oid, oid.hex()), der.content(data, fields[1], der.OCTET_STRING),
                  der.content(data, fields[2], der.OCTET_STRING), int.from_bytes(serial, "big"),
                  # Lengths were read in their shortest form only, so this is the request's own encoding.
                  der.tlv(der.SEQUENCE, data[parts[0][1]:parts[0][2]]))


def issuer_hashes(cert: x509.Certificate, hash_name: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of CertIDs for certificates issued under ``cert``'s name and key."""
    name = cert.subject.public_bytes()
    spki = keys.PublicKeyInfo.load(cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    key_bits = bytes(spki["public_key"].contents[1:])  # the BIT STRING's bytes, without its unused-bits octet
    return hashlib.new(hash_name, name).digest(), hashlib.new(hash_name, key_bits).digest()


def key_id(cert: x509.Certificate) -> bytes:
    """ResponderID byKey: SHA-1 of the responder's public key bits."""
    return issuer_hashes(cert, "sha1")[1]


def error_response(status: str) -> bytes:
    """An unsigned OCSPResponse carrying only an error status (``malformed_request``, ``try_later``, ...)."""
    return ocsp.OCSPResponse({"response_status": status}).dump()


def build_response(statuses: Sequence[SingleStatus], *, responder_key_id: bytes, signature_algorithm: bytes,
                   sign: Callable[[bytes], bytes], produced_at: datetime, this_update: datetime,
                   next_update: datetime | None, nonce: bytes | None = None, certs: Sequence[bytes] = ()) -> bytes:
    """A successful OCSPResponse: a BasicOCSPResponse over ``statuses``, signed with ``sign``.

    ``responder_key_id`` names the signer (ResponderID byKey, :func:`key_id`); ``signature_algorithm`` is
    the DER AlgorithmIdentifier; ``nonce`` the request's nonce extnValue content; ``certs`` (DER) go into the
    response so a client can verify a delegated responder (the CA's own certificate is not needed there).

    Written as DER directly (protocols.ocsp.der), in RFC 6960's layout (4.2.1); each CertID is echoed with
    the bytes the request carried, so a client finds its own CertID whatever encoding details it chose; times
    are whole seconds. tests/protocols/ocsp/test_messages.py holds it to asn1crypto's encoding of the same
    values, byte for byte.
    """
    this_update_der = der.generalized_time(this_update)
    next_update_der = der.tlv(0xA0, der.generalized_time(next_update)) if next_update is not None else b""
    responses = []
    for item in statuses:
        if item.status == "good":
            cert_status = b"\x80\x00"
        elif item.status == "unknown":
            cert_status = b"\x82\x00"
        elif item.status == "revoked":
            info = der.generalized_time(item.revoked_at)  # type: ignore[arg-type]
            if item.reason is not None:
                if item.reason not in _REASONS:
                    raise ValueError(f"not a CRLReason: {item.reason}")
                info += b"\xa0\x03\x0a\x01" + bytes([item.reason])
            cert_status = der.tlv(0xA1, info)
        else:
            raise ValueError(f"not a certificate status: {item.status!r}")
        responses.append(der.tlv(der.SEQUENCE, item.cert_id.der + cert_status + this_update_der + next_update_der))
    tbs = (der.tlv(0xA2, der.tlv(der.OCTET_STRING, responder_key_id)) + der.generalized_time(produced_at)
           + der.tlv(der.SEQUENCE, b"".join(responses)))
    if nonce is not None:
        extension = der.tlv(der.SEQUENCE, der.tlv(der.OID, _NONCE) + der.tlv(der.OCTET_STRING, nonce))
        tbs += der.tlv(0xA1, der.tlv(der.SEQUENCE, extension))
    tbs = der.tlv(der.SEQUENCE, tbs)
    basic = tbs + signature_algorithm + der.tlv(der.BIT_STRING, b"\x00" + sign(tbs))
    if certs:
        basic += der.tlv(0xA0, der.tlv(der.SEQUENCE, b"".join(certs)))
    basic = der.tlv(der.SEQUENCE, basic)
    response_bytes = der.tlv(der.SEQUENCE, der.tlv(der.OID, _BASIC) + der.tlv(der.OCTET_STRING, basic))
    return der.tlv(der.SEQUENCE, b"\x0a\x01\x00" + der.tlv(0xA0, response_bytes))


_BASIC = bytes.fromhex("2b0601050507300101")  # id-pkix-ocsp-basic


_REASONS = {
    0: "unspecified", 1: "key_compromise", 2: "ca_compromise", 3: "affiliation_changed", 4: "superseded",
    5: "cessation_of_operation", 6: "certificate_hold", 8: "remove_from_crl", 9: "privilege_withdrawn",
    10: "aa_compromise",
}
