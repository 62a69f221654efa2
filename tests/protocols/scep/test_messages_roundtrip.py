"""SCEP messages built by the client helpers, parsed and answered by the server functions, and the answers
read back: every cipher x digest x key transport, every status and failInfo, every request type."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import core
from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from protocols.scep.messages import (
    BadAlg,
    FailInfo,
    MessageType,
    PkiStatus,
    build_cert_rep,
    build_signed_certs,
    decrypt_envelope,
    degenerate_certs_only,
    parse_csr,
    parse_degenerate,
    parse_issuer_and_serial,
    parse_issuer_and_subject,
    parse_pki_message,
)
from protocols.scep.messages.client import (
    build_get_cert,
    build_get_cert_initial,
    build_get_crl,
    build_pkcs_req,
    parse_cert_rep,
)

from .message_fixtures import csr_for, name, parties

CIPHERS = ["des", "des3", "aes128", "aes192", "aes256"]
DIGESTS = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]
TRANSPORTS = [("pkcs1v15", "sha1"), ("oaep", "sha1"), ("oaep", "sha256")]


@pytest.mark.parametrize("key_transport,oaep_hash", TRANSPORTS)
@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize("cipher", CIPHERS)
def test_pkcs_req_round_trip(cipher, digest, key_transport, oaep_hash):
    p = parties()
    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, cipher=cipher, digest=digest,
                         key_transport=key_transport, oaep_hash=oaep_hash)

    message = parse_pki_message(req.data)
    assert message.message_type == MessageType.PKCS_REQ
    assert message.transaction_id == req.transaction_id
    assert message.sender_nonce == req.sender_nonce and len(req.sender_nonce) == 16
    assert message.digest_algorithm == digest
    assert message.legacy_digest == (digest in ("md5", "sha1"))
    assert message.signer_certificate == p.client_cert

    inner = decrypt_envelope(message, p.ca_key, p.ca_cert, allow_des=True)
    assert (inner.cipher, inner.key_transport) == (cipher, key_transport)
    assert inner.oaep_hash == (oaep_hash if key_transport == "oaep" else None)
    csr = parse_csr(inner.content)
    assert csr.csr == p.csr and csr.username == "user1" and csr.challenge_password == "foo123"

    issued = p.issue()
    reply = build_cert_rep(request=message, envelope=inner, status=PkiStatus.SUCCESS,
                           issued_certs=[issued, p.ca_cert], signer_cert=p.ca_cert, signer_key=p.ca_key,
                           allow_legacy_digest=True)
    result = parse_cert_rep(reply, p.client_key, p.client_cert, ca_certs=[p.ca_cert])
    assert result.status == PkiStatus.SUCCESS and result.fail_info is None
    assert result.certificates == [issued, p.ca_cert]
    assert result.cipher == cipher  # the reply reuses the request's cipher
    assert result.message.digest_algorithm == digest
    assert result.transaction_id == req.transaction_id
    assert result.recipient_nonce == req.sender_nonce
    assert result.sender_nonce not in (None, req.sender_nonce) and len(result.sender_nonce) == 16


@pytest.mark.parametrize("request_digest,allow_legacy,reply_digest", [
    ("sha1", False, "sha256"),
    ("md5", False, "sha256"),
    ("sha1", True, "sha1"),
    ("md5", True, "md5"),
    ("sha512", False, "sha512"),
    ("sha384", False, "sha384"),
])
def test_reply_digest_falls_back_to_sha256_unless_legacy_is_allowed(request_digest, allow_legacy, reply_digest):
    p = parties()
    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, digest=request_digest)
    message = parse_pki_message(req.data)
    reply = build_cert_rep(request=message, status=PkiStatus.PENDING, signer_cert=p.ca_cert, signer_key=p.ca_key,
                           allow_legacy_digest=allow_legacy)
    assert parse_pki_message(reply).digest_algorithm == reply_digest


def test_des_is_refused_unless_allowed():
    p = parties()
    message = parse_pki_message(build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, cipher="des").data)
    with pytest.raises(BadAlg) as failure:
        decrypt_envelope(message, p.ca_key, p.ca_cert)
    assert failure.value.fail_info == FailInfo.BAD_ALG and failure.value.message is message
    assert decrypt_envelope(message, p.ca_key, p.ca_cert, allow_des=True).cipher == "des"


def test_renewal_req_type_and_explicit_transaction_id():
    p = parties()
    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, message_type=MessageType.RENEWAL_REQ,
                         transaction_id="tx-4711", sender_nonce=b"\x01" * 16)
    message = parse_pki_message(req.data)
    assert (message.message_type, message.transaction_id, message.sender_nonce) == (
        MessageType.RENEWAL_REQ, "tx-4711", b"\x01" * 16)


def test_default_transaction_id_is_a_hash_of_the_public_key():
    import hashlib

    p = parties()
    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert)
    spki = p.client_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert req.transaction_id == hashlib.sha256(spki).hexdigest().upper()
    # two requests of one transaction: same ID, fresh nonces
    again = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert)
    assert again.transaction_id == req.transaction_id and again.sender_nonce != req.sender_nonce


@pytest.mark.parametrize("status,fail_info,text", [
    (PkiStatus.PENDING, None, None),
    (PkiStatus.FAILURE, FailInfo.BAD_ALG, None),
    (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK, "signature does not verify"),
    (PkiStatus.FAILURE, FailInfo.BAD_REQUEST, "wrong challenge password"),
    (PkiStatus.FAILURE, FailInfo.BAD_TIME, None),
    (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID, "no such certificate"),
])
def test_pending_and_failure_replies(status, fail_info, text):
    p = parties()
    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert)
    message = parse_pki_message(req.data)
    reply = build_cert_rep(request=message, status=status, fail_info=fail_info, fail_info_text=text,
                           signer_cert=p.ca_cert, signer_key=p.ca_key)
    result = parse_cert_rep(reply, p.client_key, p.client_cert)
    assert result.status == status
    assert result.fail_info == fail_info
    assert result.fail_info_text == text
    assert result.certificates == [] and result.message.envelope is None  # empty content unless SUCCESS
    assert result.transaction_id == req.transaction_id and result.recipient_nonce == req.sender_nonce


@pytest.mark.parametrize("fail_info,wire", [(FailInfo.BAD_ALG, "0"), (FailInfo.BAD_MESSAGE_CHECK, "1"),
                                            (FailInfo.BAD_REQUEST, "2"), (FailInfo.BAD_TIME, "3"),
                                            (FailInfo.BAD_CERT_ID, "4")])
def test_fail_info_wire_values(fail_info, wire):
    """RFC 8894 section 3.2.1.4: failInfo is the decimal number as a PrintableString; pkiStatus FAILURE is 2."""
    from asn1crypto import cms

    p = parties()
    reply = build_cert_rep(transaction_id="T1", recipient_nonce=b"n" * 16, status=PkiStatus.FAILURE,
                           fail_info=fail_info, signer_cert=p.ca_cert, signer_key=p.ca_key)
    attrs = {a["type"].dotted: core.Asn1Value.load(a["values"][0].dump())
             for a in cms.ContentInfo.load(reply)["content"]["signer_infos"][0]["signed_attrs"]}
    assert isinstance(attrs["2.16.840.1.113733.1.9.4"], core.PrintableString)
    assert attrs["2.16.840.1.113733.1.9.4"].native == wire
    assert attrs["2.16.840.1.113733.1.9.3"].native == "2"
    assert attrs["2.16.840.1.113733.1.9.2"].native == "3"


def test_failure_needs_fail_info():
    p = parties()
    with pytest.raises(ValueError):
        build_cert_rep(transaction_id="T", recipient_nonce=b"x", status=PkiStatus.FAILURE, signer_cert=p.ca_cert,
                       signer_key=p.ca_key)


def test_get_cert_initial_round_trip():
    p = parties()
    req = build_get_cert_initial(p.ca_cert.subject, p.csr.subject, p.client_cert, p.client_key, p.ca_cert,
                                 transaction_id="TX-POLL")
    message = parse_pki_message(req.data)
    assert message.message_type == MessageType.CERT_POLL == MessageType.GET_CERT_INITIAL
    payload = parse_issuer_and_subject(decrypt_envelope(message, p.ca_key, p.ca_cert).content)
    assert payload.issuer == p.ca_cert.subject and payload.subject == p.csr.subject
    assert payload.issuer.public_bytes() == p.ca_cert.subject.public_bytes()


@pytest.mark.parametrize("builder,message_type", [(build_get_cert, MessageType.GET_CERT),
                                                  (build_get_crl, MessageType.GET_CRL)])
def test_get_cert_and_get_crl_payloads(builder, message_type):
    p = parties()
    serial = p.client_cert.serial_number
    req = builder(p.ca_cert.subject, serial, p.client_cert, p.client_key, p.ca_cert, cipher="des3")
    message = parse_pki_message(req.data)
    assert message.message_type == message_type
    payload = parse_issuer_and_serial(decrypt_envelope(message, p.ca_key, p.ca_cert).content)
    assert (payload.issuer, payload.serial_number) == (p.ca_cert.subject, serial)


def test_get_crl_success_carries_the_crl():
    p = parties()
    now = dt.datetime.now(dt.UTC)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(p.ca_cert.subject).last_update(now)
           .next_update(now + dt.timedelta(days=1))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(42).revocation_date(now).build())
           .sign(p.ca_key, hashes.SHA256()))
    req = build_get_crl(p.ca_cert.subject, 42, p.client_cert, p.client_key, p.ca_cert, cipher="aes128")
    message = parse_pki_message(req.data)
    inner = decrypt_envelope(message, p.ca_key, p.ca_cert)
    reply = build_cert_rep(request=message, envelope=inner, status=PkiStatus.SUCCESS, crls=[crl],
                           signer_cert=p.ca_cert, signer_key=p.ca_key)
    result = parse_cert_rep(reply, p.client_key, p.client_cert)
    assert result.crls == [crl] and result.certificates == [] and result.cipher == "aes128"


def test_degenerate_certs_only_and_signed_next_ca_cert():
    p = parties()
    data = degenerate_certs_only([p.client_cert, p.ca_cert])
    assert parse_degenerate(data) == ([p.client_cert, p.ca_cert], [])
    signed = build_signed_certs([p.client_cert], p.ca_cert, p.ca_key)
    message_free = parse_degenerate(signed)  # the outer SignedData carries the signer's certificate
    assert message_free[0] == [p.ca_cert]
    from asn1crypto import cms

    inner = cms.ContentInfo.load(signed)["content"]["encap_content_info"]["content"].native
    assert parse_degenerate(inner)[0] == [p.client_cert]


def test_extra_certs_in_signed_data():
    p = parties()
    reply = build_cert_rep(transaction_id="T", recipient_nonce=b"n" * 16, status=PkiStatus.PENDING,
                           signer_cert=p.ca_cert, signer_key=p.ca_key, extra_certs_in_signed_data=[p.client_cert])
    # CMS certificates are a SET OF: order is the DER sort order, not ours
    assert set(parse_pki_message(reply).certificates) == {p.ca_cert, p.client_cert}


def test_cert_rep_signer_found_among_given_ca_certs():
    """A CertRep that does not carry its signer's certificate verifies against the CA certificate given."""
    from asn1crypto import cms

    p = parties()
    reply = build_cert_rep(transaction_id="T", recipient_nonce=b"n" * 16, status=PkiStatus.PENDING,
                           signer_cert=p.ca_cert, signer_key=p.ca_key)
    info = cms.ContentInfo.load(reply)
    del info["content"]["certificates"]
    stripped = info.dump(force=True)
    assert parse_pki_message(stripped, signer_certificates=[p.ca_cert]).signer_certificate == p.ca_cert


# --- the CSR payload: challengePassword in each DirectoryString type, the username rule -------------------

def _csr_with_attribute_value(key, subject: x509.Name, value: core.Asn1Value) -> bytes:
    """A PKCS#10 built from first principles, so the challengePassword's string type is ours to choose."""
    info = asn1_csr.CertificationRequestInfo({
        "version": "v1",
        "subject": asn1_x509.Name.load(subject.public_bytes()),
        "subject_pk_info": asn1_keys.PublicKeyInfo.load(
            key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)),
        "attributes": [{"type": "challenge_password", "values": [value]}],
    })
    signature = key.sign(info.dump(), padding.PKCS1v15(), hashes.SHA256())
    return asn1_csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature": signature,
    }).dump()


@pytest.mark.parametrize("choice,text", [
    ("printable_string", "foo123"),
    ("utf8_string", "foo123 \u00e5\u00e4\u00f6"),
    ("bmp_string", "foo123"),
    ("teletex_string", "foo123"),
    ("universal_string", "foo123"),
])
def test_challenge_password_string_types(choice, text):
    """challengePassword is a DirectoryString: every choice of it is read."""
    p = parties()
    der = _csr_with_attribute_value(p.client_key, name("user1"), asn1_csr.DirectoryString(name=choice, value=text))
    assert parse_csr(der).challenge_password == text


@pytest.mark.parametrize("subject,username", [
    (name("router1"), "router1"),
    (name("", serial="FTX1234ABCD"), "FTX1234ABCD"),  # Cisco IOS: serialNumber only
    (name("cn-wins", serial="FTX1"), "cn-wins"),
    (x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NoName")]), None),
])
def test_username_is_cn_else_serial_number(subject, username):
    p = parties()
    info = parse_csr(csr_for(p.client_key, subject).public_bytes(Encoding.DER))
    assert info.username == username and info.subject == subject


def test_csr_without_challenge_password():
    p = parties()
    info = parse_csr(csr_for(p.client_key, name("x"), challenge=None).public_bytes(Encoding.DER))
    assert info.challenge_password is None


def test_constructed_encrypted_content_is_read():
    """Go's pkcs7 (micromdm scepclient) writes encryptedContent as a definite-length constructed [0] holding
    OCTET STRING segments; the segments are joined."""
    from asn1crypto import cms

    from pki.x509.der import sequence, tlv

    p = parties()
    message = parse_pki_message(build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, cipher="des3").data)
    env = cms.ContentInfo.load(message.envelope)["content"]
    eci = env["encrypted_content_info"]
    ciphertext = eci["encrypted_content"].native
    segments = b"".join(tlv(0x04, ciphertext[i:i + 64]) for i in range(0, len(ciphertext), 64))
    new_eci = sequence(eci["content_type"].dump() + eci["content_encryption_algorithm"].dump()
                       + tlv(0xA0, segments))
    new_env = sequence(env["version"].dump() + env["recipient_infos"].dump() + new_eci)
    rebuilt = sequence(cms.ContentType("enveloped_data").dump() + tlv(0xA0, new_env))
    assert parse_csr(decrypt_envelope(rebuilt, p.ca_key, p.ca_cert).content).csr == p.csr


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 65535, 2**159 - 1, 2**159, -1, -127, -128, -129,
                                   -256, -(2**63)])
def test_der_integer_matches_asn1crypto(value):
    """Serial numbers are written by hand in identifiers: minimal two's complement, negatives included."""
    from protocols.scep.messages import _cms

    assert _cms.integer(value) == core.Integer(value).dump()
