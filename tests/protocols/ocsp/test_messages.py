"""protocols.ocsp.messages without a server: the lean DER reader agrees with asn1crypto on every request a
client sends and refuses every malformed one as ``MalformedRequest`` (never another error); the DER writer
produces byte for byte what asn1crypto encodes from the same values."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from asn1crypto import core, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp

from protocols.ocsp import der, messages
from protocols.ocsp.messages import MalformedRequest, SingleStatus

NOW = dt.datetime(2026, 12, 7, 1, 2, 3, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pair():
    """A CA certificate and a certificate it issued (a large serial: several INTEGER bytes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name.from_rfc4514_string("CN=Messages CA")

    def cert(subject, serial, ca=False):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
                .serial_number(serial).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
    return cert(ca_name, 1, ca=True), cert(x509.Name.from_rfc4514_string("CN=leaf"), 0x80FF00112233445566778899AA)


def _request(pair, algorithm=hashes.SHA1(), nonce: bytes | None = None, count: int = 1) -> bytes:
    ca, leaf = pair
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, ca, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    request = ocsp.OCSPRequest.load(builder.build().public_bytes(Encoding.DER))
    for _ in range(count - 1):  # cryptography builds one CertID per request; OpenSSL sends several
        request["tbs_request"]["request_list"].append(request["tbs_request"]["request_list"][0].copy())
    return request.dump(force=True)


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
@pytest.mark.parametrize("nonce", [None, b"n", bytes(range(200, 232))], ids=["no-nonce", "1-byte", "32-bytes"])
@pytest.mark.parametrize("count", [1, 3])
def test_requests_read_as_asn1crypto_reads_them(pair, algorithm, nonce, count):
    data = _request(pair, algorithm, nonce, count)
    parsed = messages.parse_request(data)
    reference = ocsp.OCSPRequest.load(data)["tbs_request"]
    assert len(parsed.cert_ids) == count
    for ours, theirs in zip(parsed.cert_ids, reference["request_list"], strict=True):
        cert_id = theirs["req_cert"]
        assert ours.hash_name == cert_id["hash_algorithm"]["algorithm"].native == algorithm.name
        assert ours.issuer_name_hash == cert_id["issuer_name_hash"].native
        assert ours.issuer_key_hash == cert_id["issuer_key_hash"].native
        assert ours.serial == cert_id["serial_number"].native == pair[1].serial_number
        assert ours.der == cert_id.dump()
        assert ours.issuer_key == (algorithm.name, *messages.issuer_hashes(pair[0], algorithm.name))
    expected_nonce = reference["request_extensions"][0]["extn_value"].contents if nonce is not None else None
    assert parsed.nonce == expected_nonce


def _with_extension(pair, oid: str, value: bytes, critical: bool) -> bytes:
    request = ocsp.OCSPRequest.load(_request(pair))
    request["tbs_request"]["request_extensions"] = [
        {"extn_id": oid, "critical": critical, "extn_value": core.ParsableOctetString(value)}]
    return request.dump(force=True)


def _with_serial(pair, serial: int) -> bytes:
    request = ocsp.OCSPRequest.load(_request(pair))
    request["tbs_request"]["request_list"][0]["req_cert"]["serial_number"] = serial
    return request.dump(force=True)


def _nonce_of(length: int):
    return lambda pair: _with_extension(pair, "1.3.6.1.5.5.7.48.1.2", core.OctetString(b"n" * length).dump(),
                                        False)


MALFORMED = {
    "empty": lambda pair: b"",
    "garbage": lambda pair: b"garbage",
    "an INTEGER": lambda pair: b"\x30\x03\x02\x01\x00",
    "trailing byte": lambda pair: _request(pair) + b"\x00",
    "truncated": lambda pair: _request(pair)[:-1],
    "indefinite length": lambda pair: b"\x30\x80" + _request(pair)[2:] + b"\x00\x00",
    "long form of a short length": lambda pair: b"\x30\x81" + _request(pair)[1:],
    "high tag number": lambda pair: b"\x3f\x01\x00",
    "no certificate": lambda pair: b"\x30\x04\x30\x02\x30\x00",
    "negative serial": lambda pair: _with_serial(pair, -5),
    "too many certificates": lambda pair: _request(pair, count=messages.MAX_REQUESTS + 1),
    "nonce over 128 bytes": _nonce_of(messages.MAX_NONCE + 1),
    "unknown critical extension": lambda pair: _with_extension(pair, "1.2.3.4", b"\x05\x00", True),
    "CertID of three fields": lambda pair: b"\x30\x0e\x30\x0c\x30\x0a\x30\x08\x30\x06"
                                           b"\x30\x02\x06\x00\x04\x00",
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_requests_are_refused(pair, case):
    with pytest.raises(MalformedRequest):
        messages.parse_request(MALFORMED[case](pair))


def test_what_is_not_refused_still_reads(pair):
    """A nonce of exactly the limit and an unknown non-critical extension are fine."""
    assert messages.parse_request(_nonce_of(messages.MAX_NONCE - 2)(pair)).nonce is not None
    assert messages.parse_request(_with_extension(pair, "1.2.3.4", b"\x05\x00", False)).nonce is None


def test_mutated_requests_raise_only_malformed(pair):
    """Random byte changes of a real request either read or are MalformedRequest: never another error."""
    data = bytearray(_request(pair, hashes.SHA256(), b"n" * 16, count=2))
    rng = random.Random(6960)
    outcomes = {"read": 0, "malformed": 0}
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if rng.random() < 0.2:
            mutated = mutated[:rng.randrange(len(mutated))]
        try:
            messages.parse_request(bytes(mutated))
            outcomes["read"] += 1
        except MalformedRequest:
            outcomes["malformed"] += 1
    assert outcomes["read"] and outcomes["malformed"]


def _reference(statuses, *, responder_key_id, algorithm, signature, nonce, certs, next_update):
    """The same response through asn1crypto's object tree (what the responder built before)."""
    reasons = {reason: name for name, reason in [("key_compromise", 1), ("certificate_hold", 6)]}
    responses = []
    for item in statuses:
        if item.status == "revoked":
            info = {"revocation_time": item.revoked_at}
            if item.reason is not None:
                info["revocation_reason"] = reasons[item.reason]
            cert_status = ocsp.CertStatus(name="revoked", value=info)
        else:
            cert_status = ocsp.CertStatus(name=item.status, value=core.Null())
        single = {"cert_id": ocsp.CertId.load(item.cert_id.der), "cert_status": cert_status, "this_update": NOW}
        if next_update is not None:
            single["next_update"] = next_update
        responses.append(single)
    data = {"version": "v1", "responder_id": ocsp.ResponderId(name="by_key", value=responder_key_id),
            "produced_at": NOW, "responses": responses}
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False,
                                        "extn_value": core.OctetString.load(nonce)}]
    basic = {"tbs_response_data": ocsp.ResponseData(data), "signature_algorithm": algorithm,
             "signature": signature}
    if certs:
        basic["certs"] = [asn1_x509.Certificate.load(c) for c in certs]
    return ocsp.OCSPResponse({"response_status": "successful", "response_bytes": {
        "response_type": "basic_ocsp_response", "response": ocsp.BasicOCSPResponse(basic)}}).dump()


@pytest.mark.parametrize("nonce", [None, b"n" * 16])
@pytest.mark.parametrize("with_certs", [False, True])
@pytest.mark.parametrize("next_update", [None, NOW + dt.timedelta(minutes=5)])
def test_responses_are_asn1crypto_s_encoding(pair, nonce, with_certs, next_update):
    from asn1crypto import algos

    cert_ids = messages.parse_request(_request(pair, count=4)).cert_ids
    revoked_at = dt.datetime(2026, 12, 1, 8, 0, 0, tzinfo=dt.UTC)
    statuses = [SingleStatus(cert_ids[0], "good"), SingleStatus(cert_ids[1], "revoked", revoked_at, 1),
                SingleStatus(cert_ids[2], "revoked", revoked_at, None), SingleStatus(cert_ids[3], "unknown")]
    nonce_value = core.OctetString(nonce).dump() if nonce else None
    certs = [pair[0].public_bytes(Encoding.DER)] if with_certs else []
    algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    signature = b"\x30\x06\x02\x01\x01\x02\x01\x02"
    ours = messages.build_response(
        statuses, responder_key_id=messages.key_id(pair[0]), signature_algorithm=algorithm.dump(),
        sign=lambda tbs: signature, produced_at=NOW, this_update=NOW, next_update=next_update,
        nonce=nonce_value, certs=certs)
    assert ours == _reference(statuses, responder_key_id=messages.key_id(pair[0]), algorithm=algorithm,
                              signature=signature, nonce=nonce_value, certs=certs, next_update=next_update)
    parsed = x509_ocsp.load_der_ocsp_response(ours)  # and cryptography reads it
    assert parsed.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert [r.certificate_status for r in parsed.responses] == [
        x509_ocsp.OCSPCertStatus.GOOD, x509_ocsp.OCSPCertStatus.REVOKED, x509_ocsp.OCSPCertStatus.REVOKED,
        x509_ocsp.OCSPCertStatus.UNKNOWN]


def test_the_signed_bytes_are_the_tbs_response_data(pair):
    key = ec.generate_private_key(ec.SECP256R1())
    cert_ids = messages.parse_request(_request(pair, nonce=b"x" * 8)).cert_ids
    answer = messages.build_response(
        [SingleStatus(cert_ids[0], "good")], responder_key_id=b"k" * 20,
        signature_algorithm=bytes.fromhex("300a06082a8648ce3d040302"),
        sign=lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA256())), produced_at=NOW, this_update=NOW,
        next_update=None, nonce=core.OctetString(b"x" * 8).dump())
    parsed = x509_ocsp.load_der_ocsp_response(answer)
    key.public_key().verify(parsed.signature, parsed.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"x" * 8


@pytest.mark.parametrize(("data", "error"), [
    (b"\x30", "truncated"), (b"\x30\x85\x00\x00\x00\x00\x01\x00", "bad length"),
    (b"\x30\x81\x7f" + b"\x00" * 127, "shortest form"), (b"\x30\x82\x00\x80" + b"\x00" * 128, "shortest form"),
    (b"\x30\x05\x00", "longer than its parent"),
])
def test_der_reader_refuses(data, error):
    with pytest.raises(der.DerError, match=error):
        list(der.elements(data))


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_der_lengths_round_trip(size):
    encoded = der.tlv(der.OCTET_STRING, b"\x00" * size)
    assert list(der.elements(encoded)) == [(der.OCTET_STRING, len(encoded) - size, len(encoded))]
    assert core.OctetString.load(encoded).native == b"\x00" * size
