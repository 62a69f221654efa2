"""OCSP messages (RFC 6960) on asn1crypto: parse a request, build a signed or an error response.

Pure: bytes and values in, bytes out; no database. ``cryptography``'s OCSP classes take one certificate
per request and per response, and clients (OpenSSL among them) ask for several at once, so both sides are
built here on asn1crypto's structures and signed through any private-key handle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, core, keys, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# The CertID hash algorithms answered (SHA-1 is what most clients send; RFC 6960 allows any).
HASHES = ("sha1", "sha256", "sha384", "sha512")
MAX_REQUESTS = 20  # certificates in one request; more is refused as malformed (a cheap amplification)


class MalformedRequest(ValueError):
    """Not an OCSP request this responder can read (answered ``malformedRequest``)."""


@dataclass(frozen=True)
class CertId:
    """One certificate asked about: the issuer's name and key hashes under ``hash_name``, and the serial."""

    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    asn1: ocsp.CertId

    @property
    def issuer_key(self) -> tuple[str, bytes, bytes]:
        return self.hash_name, self.issuer_name_hash, self.issuer_key_hash


@dataclass(frozen=True)
class ParsedRequest:
    cert_ids: list[CertId]
    nonce: ocsp.TBSRequestExtension | None  # echoed as it came


@dataclass(frozen=True)
class SingleStatus:
    """The answer for one CertID: ``good``, ``revoked`` (time and RFC 5280 reason code) or ``unknown``."""

    cert_id: CertId
    status: str
    revoked_at: datetime | None = None
    reason: int | None = None


def parse_request(data: bytes) -> ParsedRequest:
    """Read an OCSPRequest; raises :class:`MalformedRequest` on anything else."""
    try:
        request = ocsp.OCSPRequest.load(data, strict=True)
        tbs = request["tbs_request"]
        items = list(tbs["request_list"])
        cert_ids = [_cert_id(item["req_cert"]) for item in items]
        nonce = None
        for ext in tbs["request_extensions"] or []:
            if ext["extn_id"].native == "nonce":
                if len(ext["extn_value"].contents) > 128:
                    raise MalformedRequest("nonce longer than 128 bytes")
                nonce = ext
            elif ext["critical"].native:
                raise MalformedRequest(f"unsupported critical extension {ext['extn_id'].dotted}")
    except MalformedRequest:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise MalformedRequest(f"not an OCSP request: {exc.__class__.__name__}") from None
    if not cert_ids:
        raise MalformedRequest("the request names no certificate")
    if len(cert_ids) > MAX_REQUESTS:
        raise MalformedRequest(f"more than {MAX_REQUESTS} certificates in one request")
    return ParsedRequest(cert_ids, nonce)


def _cert_id(cert_id: ocsp.CertId) -> CertId:
    hash_name = cert_id["hash_algorithm"]["algorithm"].native
    serial = cert_id["serial_number"].native
    if not isinstance(serial, int) or serial < 0:
        raise MalformedRequest("bad serial number")
    return CertId(hash_name, bytes(cert_id["issuer_name_hash"].native), bytes(cert_id["issuer_key_hash"].native),
                  serial, cert_id)


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


def build_response(statuses: Sequence[SingleStatus], *, responder: x509.Certificate,
                   signature_algorithm: algos.SignedDigestAlgorithm, sign: Callable[[bytes], bytes],
                   produced_at: datetime, this_update: datetime, next_update: datetime | None,
                   nonce: ocsp.TBSRequestExtension | None = None,
                   certs: Sequence[x509.Certificate] = ()) -> bytes:
    """A successful OCSPResponse: a BasicOCSPResponse over ``statuses``, signed with ``sign``.

    ``responder`` names the signer (byKey); ``certs`` go into the response so a client can verify a
    delegated responder (the CA's own certificate is not needed there).
    """
    responses = []
    for item in statuses:
        if item.status == "revoked":
            info = {"revocation_time": item.revoked_at}
            if item.reason is not None:
                info["revocation_reason"] = _REASONS[item.reason]
            cert_status = ocsp.CertStatus(name="revoked", value=info)
        else:
            cert_status = ocsp.CertStatus(name=item.status, value=core.Null())
        single = {"cert_id": item.cert_id.asn1, "cert_status": cert_status, "this_update": this_update}
        if next_update is not None:
            single["next_update"] = next_update
        responses.append(single)
    data = {
        "version": "v1",
        "responder_id": ocsp.ResponderId(name="by_key", value=key_id(responder)),
        "produced_at": produced_at,
        "responses": responses,
    }
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False,
                                        "extn_value": nonce["extn_value"].parsed}]
    tbs = ocsp.ResponseData(data)
    basic = {"tbs_response_data": tbs, "signature_algorithm": signature_algorithm,
             "signature": sign(tbs.dump())}
    if certs:
        basic["certs"] = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in certs]
    return ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": ocsp.BasicOCSPResponse(basic)},
    }).dump()


_REASONS = {
    0: "unspecified", 1: "key_compromise", 2: "ca_compromise", 3: "affiliation_changed", 4: "superseded",
    5: "cessation_of_operation", 6: "certificate_hold", 8: "remove_from_crl", 9: "privilege_withdrawn",
    10: "aa_compromise",
}
