"""Bad input to the SCEP message layer: each kind of damage gives its typed error (ScepMessageError for the
plain HTTP 400, a ScepFailure with the right failInfo for a CertRep FAILURE), and nothing else ever escapes."""

from __future__ import annotations

import random

import pytest
from asn1crypto import cms

from protocols.scep.messages import (
    MAX_MESSAGE_SIZE,
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    FailInfo,
    ScepError,
    ScepFailure,
    ScepMessageError,
    decrypt_envelope,
    parse_csr,
    parse_issuer_and_serial,
    parse_issuer_and_subject,
    parse_pki_message,
)
from protocols.scep.messages.client import build_get_cert, build_pkcs_req, parse_cert_rep

from .message_fixtures import certificate, name, parties


def _request(**kw):
    p = parties()
    return build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, **kw)


def _modified(data: bytes, change) -> bytes:
    """Re-encode the message after ``change(content_info)``: a well-formed message with one thing wrong."""
    info = cms.ContentInfo.load(data)
    change(info)
    return info.dump(force=True)


def _scep_attr(info, oid):
    return next(a for a in info["content"]["signer_infos"][0]["signed_attrs"] if a["type"].dotted == oid)


# --- failures answered with a CertRep: the right failInfo, and the request's fields kept ------------------

def test_tampered_signature_is_bad_message_check():
    req = _request()

    def flip(info):
        sig = bytearray(info["content"]["signer_infos"][0]["signature"].native)
        sig[10] ^= 1
        info["content"]["signer_infos"][0]["signature"] = bytes(sig)

    with pytest.raises(BadMessageCheck) as failure:
        parse_pki_message(_modified(req.data, flip))
    assert failure.value.fail_info == FailInfo.BAD_MESSAGE_CHECK == 1
    # enough of the request to answer it
    assert failure.value.message.transaction_id == req.transaction_id
    assert failure.value.message.sender_nonce == req.sender_nonce
    assert failure.value.message.signer_certificate == parties().client_cert


def test_tampered_content_is_bad_message_check():
    req = _request()

    def change(info):
        env = bytearray(info["content"]["encap_content_info"]["content"].native)
        env[-1] ^= 0xFF
        info["content"]["encap_content_info"]["content"] = bytes(env)

    with pytest.raises(BadMessageCheck, match="messageDigest"):
        parse_pki_message(_modified(req.data, change))


def test_tampered_signed_attribute_is_bad_message_check():
    req = _request(transaction_id="TX-ORIGINAL")

    def change(info):
        _scep_attr(info, "2.16.840.1.113733.1.9.7")["values"][0] = \
            _scep_attr(info, "2.16.840.1.113733.1.9.7")["values"][0].load(b"\x13\x0bTX-FORGED!!")

    with pytest.raises(BadMessageCheck, match="signature") as failure:
        parse_pki_message(_modified(req.data, change))
    assert failure.value.message.transaction_id == "TX-FORGED!!"


def test_signed_by_another_key_is_bad_message_check():
    p = parties()
    impostor = certificate(p.other_key, name("user1"))
    req = build_pkcs_req(p.csr, p.client_cert, p.other_key, p.ca_cert)  # claims client_cert, signed by other
    with pytest.raises(BadMessageCheck):
        parse_pki_message(req.data)
    assert parse_pki_message(build_pkcs_req(p.csr, impostor, p.other_key, p.ca_cert).data).signer_certificate \
        == impostor


def test_missing_signer_certificate_is_bad_message_check():
    def change(info):
        del info["content"]["certificates"]

    with pytest.raises(BadMessageCheck, match="certificate of the message's signer") as failure:
        parse_pki_message(_modified(_request().data, change))
    assert failure.value.message.signer_certificate is None


def test_unknown_digest_is_bad_alg():
    def change(info):
        info["content"]["signer_infos"][0]["digest_algorithm"] = {"algorithm": "sha3_256"}

    with pytest.raises(BadAlg) as failure:
        parse_pki_message(_modified(_request().data, change))
    assert failure.value.fail_info == FailInfo.BAD_ALG == 0


def test_unknown_signature_algorithm_is_bad_alg():
    def change(info):
        info["content"]["signer_infos"][0]["signature_algorithm"] = {"algorithm": "1.2.3.4.5"}

    with pytest.raises(BadAlg):
        parse_pki_message(_modified(_request().data, change))


@pytest.mark.parametrize("oid", ["1.2.840.113549.3.2",          # RC2-CBC
                                 "2.16.840.1.101.3.4.1.6",      # AES-128-GCM
                                 "1.2.3.4"])
def test_unknown_cipher_oid_is_bad_alg(oid):
    p = parties()
    message = parse_pki_message(_request().data)
    env = cms.ContentInfo.load(message.envelope)
    env["content"]["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"] = oid
    with pytest.raises(BadAlg, match=oid) as failure:
        decrypt_envelope(env.dump(force=True), p.ca_key, p.ca_cert)
    assert failure.value.fail_info == FailInfo.BAD_ALG


def test_unknown_key_transport_is_bad_alg():
    p = parties()
    message = parse_pki_message(_request().data)
    env = cms.ContentInfo.load(message.envelope)
    env["content"]["recipient_infos"][0].chosen["key_encryption_algorithm"] = {"algorithm": "1.2.3.4.6"}
    with pytest.raises(BadAlg):
        decrypt_envelope(env.dump(force=True), p.ca_key, p.ca_cert)


def test_wrong_recipient_key_is_bad_message_check():
    p = parties()
    message = parse_pki_message(_request().data)
    with pytest.raises(BadMessageCheck) as failure:
        decrypt_envelope(message, p.other_key, p.ca_cert)
    assert failure.value.message is message


@pytest.mark.parametrize("payload_parser", [parse_csr, parse_issuer_and_subject, parse_issuer_and_serial])
def test_wrong_payload_is_bad_request(payload_parser):
    p = parties()
    message = parse_pki_message(build_get_cert(p.ca_cert.subject, 5, p.client_cert, p.client_key, p.ca_cert).data)
    content = decrypt_envelope(message, p.ca_key, p.ca_cert).content
    if payload_parser is parse_issuer_and_serial:
        content = content[:-3]
    with pytest.raises(BadRequest) as failure:
        payload_parser(content)
    assert failure.value.fail_info == FailInfo.BAD_REQUEST == 2


def test_csr_with_bad_self_signature_is_bad_message_check():
    from cryptography.hazmat.primitives.serialization import Encoding

    der = bytearray(parties().csr.public_bytes(Encoding.DER))
    der[-5] ^= 1  # inside the signature
    with pytest.raises(BadMessageCheck):
        parse_csr(bytes(der))


def test_unknown_message_type_is_bad_request():
    with pytest.raises(BadRequest, match="Unknown messageType 99") as failure:
        _signed_with_type(99)
    assert failure.value.message.message_type == 99 and failure.value.message.transaction_id == "T"


def _signed_with_type(value: int):
    from asn1crypto import core

    from protocols.scep.messages import _cms

    p = parties()
    data = _cms.signed_data(content=b"x", digest_name="sha256", signer_cert=p.client_cert, signer_key=p.client_key,
                            attributes=[_cms.attribute("2.16.840.1.113733.1.9.2", core.PrintableString(str(value))),
                                        _cms.attribute("2.16.840.1.113733.1.9.7", core.PrintableString("T")),
                                        _cms.attribute("2.16.840.1.113733.1.9.5", core.OctetString(b"n" * 16))],
                            certificates=[p.client_cert])
    return parse_pki_message(data)


def test_signing_time_out_of_skew_is_bad_time():
    import datetime as dt

    from asn1crypto import core

    from protocols.scep.messages import _cms

    p = parties()
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    data = _cms.signed_data(content=b"x", digest_name="sha256", signer_cert=p.client_cert, signer_key=p.client_key,
                            attributes=[_cms.attribute("2.16.840.1.113733.1.9.2", core.PrintableString("19")),
                                        _cms.attribute("2.16.840.1.113733.1.9.7", core.PrintableString("T")),
                                        _cms.attribute("2.16.840.1.113733.1.9.5", core.OctetString(b"n" * 16)),
                                        _cms.attribute("signing_time", core.UTCTime(old))],
                            certificates=[p.client_cert])
    assert parse_pki_message(data).signing_time == old  # no skew limit: accepted
    with pytest.raises(BadTime) as failure:
        parse_pki_message(data, max_clock_skew=dt.timedelta(minutes=10))
    assert failure.value.fail_info == FailInfo.BAD_TIME == 3


# --- not a SCEP message at all: ScepMessageError (plain HTTP 400) ------------------------------------------

@pytest.mark.parametrize("data", [
    b"",
    b"\x00",
    b"garbage that is not DER",
    b"\x30\x80",                        # indefinite length, never ended
    b"\x30\x03\x02\x01\x01",            # a SEQUENCE, but not a ContentInfo
    b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n",
    bytes(range(256)) * 4,
])
def test_not_a_message(data):
    with pytest.raises(ScepMessageError):
        parse_pki_message(data)


def test_truncated_messages():
    data = _request().data
    for cut in (1, 2, 10, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(ScepMessageError):
            parse_pki_message(data[:cut])


def test_huge_message_refused_before_parsing():
    with pytest.raises(ScepMessageError, match="limit"):
        parse_pki_message(b"\x30\x84" + b"\x00" * (MAX_MESSAGE_SIZE + 10))
    with pytest.raises(ScepMessageError, match="limit"):
        parse_pki_message(_request().data, max_size=100)


def test_enveloped_data_is_not_a_signed_message():
    message = parse_pki_message(_request().data)
    with pytest.raises(ScepMessageError, match="SignedData"):
        parse_pki_message(message.envelope)


def test_request_without_sender_nonce():
    from asn1crypto import core

    from protocols.scep.messages import _cms

    p = parties()
    data = _cms.signed_data(content=b"x", digest_name="sha256", signer_cert=p.client_cert, signer_key=p.client_key,
                            attributes=[_cms.attribute("2.16.840.1.113733.1.9.2", core.PrintableString("19")),
                                        _cms.attribute("2.16.840.1.113733.1.9.7", core.PrintableString("T"))],
                            certificates=[p.client_cert])
    with pytest.raises(ScepMessageError, match="senderNonce"):
        parse_pki_message(data)


def test_cert_rep_expected():
    p = parties()
    with pytest.raises(ScepMessageError, match="Expected a CertRep"):
        parse_cert_rep(_request().data, p.client_key)


def test_error_kinds():
    """The server tells the two kinds apart: ScepMessageError -> HTTP 400, ScepFailure -> CertRep FAILURE."""
    assert not issubclass(ScepMessageError, ScepFailure)
    for cls, value in [(BadAlg, 0), (BadMessageCheck, 1), (BadRequest, 2), (BadTime, 3)]:
        assert issubclass(cls, ScepFailure) and issubclass(cls, ScepError) and cls.fail_info == value


# --- fuzzing: mutated messages raise only the layer's typed errors ----------------------------------------

def _mutations(data: bytes, rng: random.Random, count: int):
    for _ in range(count):
        buf = bytearray(data)
        kind = rng.randrange(5)
        if kind == 0:                                   # flip a few bits
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif kind == 1:                                 # overwrite a byte (often a tag or a length)
            buf[rng.randrange(len(buf))] = rng.choice([0x00, 0x01, 0x30, 0x31, 0x80, 0x81, 0x84, 0xA0, 0xFF])
        elif kind == 2:                                 # cut
            del buf[rng.randrange(len(buf)):]
        elif kind == 3:                                 # insert junk
            pos = rng.randrange(len(buf))
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:                                           # delete a slice
            pos = rng.randrange(len(buf))
            del buf[pos:pos + rng.randint(1, 16)]
        yield bytes(buf)


def _process(data: bytes) -> None:
    """What the server does with a body: parse, decrypt, read the payload."""
    p = parties()
    message = parse_pki_message(data)
    inner = decrypt_envelope(message, p.ca_key, p.ca_cert)
    parse_csr(inner.content, message=message)


def test_fuzz_outer_message_raises_only_typed_errors():
    rng = random.Random(8894)
    data = _request().data
    outcomes: dict[str, int] = {}
    for mutated in _mutations(data, rng, 1500):
        try:
            _process(mutated)
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except ScepError as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
    # the loop really exercised both kinds of refusal
    assert outcomes.get("ScepMessageError", 0) > 100 and outcomes.get("BadMessageCheck", 0) > 100, outcomes


def test_fuzz_envelope_and_payload_raise_only_typed_errors():
    """The envelope inside a validly signed message is attacker-controlled too: mutate it and re-sign."""
    from asn1crypto import core

    from protocols.scep.messages import _cms

    p = parties()
    rng = random.Random(5652)
    envelope = parse_pki_message(_request().data).envelope
    outcomes: dict[str, int] = {}
    for mutated in _mutations(envelope, rng, 400):
        data = _cms.signed_data(content=mutated, digest_name="sha256", signer_cert=p.client_cert,
                                signer_key=p.client_key,
                                attributes=[_cms.attribute("2.16.840.1.113733.1.9.2", core.PrintableString("19")),
                                            _cms.attribute("2.16.840.1.113733.1.9.7", core.PrintableString("T")),
                                            _cms.attribute("2.16.840.1.113733.1.9.5", core.OctetString(b"n" * 16))],
                                certificates=[p.client_cert])
        try:
            _process(data)
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except ScepFailure as exc:
            assert exc.message is not None  # always answerable with a CertRep
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
    assert outcomes.get("BadRequest", 0) > 20 and outcomes.get("BadMessageCheck", 0) > 20, outcomes
