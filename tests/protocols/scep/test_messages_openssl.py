"""Interoperability of the SCEP message layer with OpenSSL: our CertReps and certificates-only replies read by
``openssl cms``/``openssl smime``/``openssl pkcs7``, and requests whose EnvelopedData OpenSSL encrypted.

OpenSSL's command line cannot add SCEP's signed attributes, so the outer SignedData of those requests is built
here from first principles with asn1crypto (independently of the production builder)."""

from __future__ import annotations

import hashlib
import os

import pytest
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding

from protocols.scep.messages import (
    FailInfo,
    MessageType,
    PkiStatus,
    ScepMessageError,
    build_cert_rep,
    decrypt_envelope,
    degenerate_certs_only,
    parse_csr,
    parse_degenerate,
    parse_pki_message,
)
from protocols.scep.messages.client import build_pkcs_req
from tests.conftest import pem

from .message_fixtures import key_pem, parties

SCEP = "2.16.840.1.113733.1.9."


@pytest.fixture
def files(openssl):
    p = parties()
    openssl.write("ca.pem", pem(p.ca_cert))
    openssl.write("client.pem", pem(p.client_cert))
    openssl.write("client.key", key_pem(p.client_key))
    openssl.write("empty.bin", b"")
    return openssl


def _reply(cipher: str, digest: str, key_transport: str, status=PkiStatus.SUCCESS, fail_info=None):
    p = parties()
    message = parse_pki_message(build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, cipher=cipher,
                                               digest=digest, key_transport=key_transport).data)
    inner = decrypt_envelope(message, p.ca_key, p.ca_cert)
    issued = p.issue()
    reply = build_cert_rep(request=message, envelope=inner, status=status, fail_info=fail_info,
                           issued_certs=[issued, p.ca_cert], signer_cert=p.ca_cert, signer_key=p.ca_key,
                           allow_legacy_digest=True)
    return message, issued, reply


@pytest.mark.parametrize("cipher,digest,key_transport", [
    ("des3", "sha1", "pkcs1v15"),
    ("des3", "sha256", "oaep"),
    ("aes128", "sha256", "pkcs1v15"),
    ("aes192", "sha384", "pkcs1v15"),
    ("aes256", "sha256", "pkcs1v15"),
    ("aes256", "sha512", "oaep"),
    ("aes256", "sha1", "pkcs1v15"),
])
def test_openssl_cms_verifies_and_decrypts_our_cert_rep(files, cipher, digest, key_transport):
    message, issued, reply = _reply(cipher, digest, key_transport)
    files.write("rep.der", reply)
    files("cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-binary", "-out", "env.der")
    printed = files("cms", "-cmsout", "-print", "-inform", "DER", "-in", "env.der").stdout
    openssl_cipher = {"des3": "des-ede3-cbc", "aes128": "aes-128-cbc", "aes192": "aes-192-cbc",
                      "aes256": "aes-256-cbc"}[cipher]
    assert openssl_cipher in printed  # the reply is encrypted with the request's cipher
    files("cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", "client.pem", "-inkey", "client.key",
          "-binary", "-out", "inner.der")
    certs = files("pkcs7", "-inform", "DER", "-in", "inner.der", "-print_certs").stdout
    assert issued.public_bytes(Encoding.PEM).decode() in certs
    assert parties().ca_cert.public_bytes(Encoding.PEM).decode() in certs

    # the SCEP attributes as OpenSSL sees them
    attrs = files("cms", "-cmsout", "-print", "-inform", "DER", "-in", "rep.der").stdout
    assert f"{SCEP}7" in attrs and message.transaction_id in attrs.replace("\n", "")
    assert f"{SCEP}6" in attrs and f"{SCEP}5" in attrs and f"{SCEP}3" in attrs


def test_openssl_smime_verifies_our_cert_rep(files):
    _message, _issued, reply = _reply("aes256", "sha256", "pkcs1v15")
    files.write("rep.der", reply)
    files("smime", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-binary", "-out", "env.der")
    files("smime", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", "client.pem", "-inkey", "client.key",
          "-binary", "-out", "inner.der")
    assert "subject=" in files("pkcs7", "-inform", "DER", "-in", "inner.der", "-print_certs").stdout


@pytest.mark.parametrize("status,fail_info", [(PkiStatus.PENDING, None),
                                              (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)])
def test_openssl_verifies_contentless_replies(files, status, fail_info):
    """PENDING and FAILURE carry an empty content: OpenSSL verifies them as they are (no detached content)."""
    _message, _issued, reply = _reply("aes256", "sha256", "pkcs1v15", status, fail_info)
    files.write("rep.der", reply)
    files("cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-binary", "-out", "out.bin")


def test_openssl_reads_our_degenerate_certs_only(files):
    p = parties()
    files.write("chain.p7b", degenerate_certs_only([p.client_cert, p.ca_cert]))
    out = files("pkcs7", "-inform", "DER", "-in", "chain.p7b", "-print_certs").stdout
    assert out.count("-----BEGIN CERTIFICATE-----") == 2


def test_we_read_openssls_degenerate_certs_only(files):
    p = parties()
    files.write("chain.pem", pem(p.client_cert, p.ca_cert))
    files("crl2pkcs7", "-nocrl", "-certfile", "chain.pem", "-outform", "DER", "-out", "chain.p7b")
    certs, crls = parse_degenerate((files.workdir / "chain.p7b").read_bytes())
    assert set(certs) == {p.client_cert, p.ca_cert} and crls == []


# --- requests whose envelope OpenSSL encrypted, signed here from first principles ------------------------

def _first_principles_scep_request(envelope: bytes, digest: str, message_type: str, transaction_id: str,
                                   nonce: bytes, signer_cert: x509.Certificate, signer_key) -> bytes:
    """SCEP pkiMessage: SignedData over id-data(envelope), signed attributes per RFC 8894 section 3.2.1."""
    def attr(oid, value):
        return {"type": oid, "values": [core.Any.load(value.dump())]}

    signed_attrs = cms.CMSAttributes([
        {"type": "content_type", "values": ["data"]},
        {"type": "message_digest", "values": [hashlib.new(digest, envelope).digest()]},
        attr(SCEP + "2", core.PrintableString(message_type)),
        attr(SCEP + "7", core.PrintableString(transaction_id)),
        attr(SCEP + "5", core.OctetString(nonce)),
    ])
    from cryptography.hazmat.primitives import hashes

    signature = signer_key.sign(signed_attrs.dump(), padding.PKCS1v15(), getattr(hashes, digest.upper())())
    cert = asn1_x509.Certificate.load(signer_cert.public_bytes(Encoding.DER))
    sd = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
        "encap_content_info": {"content_type": "data", "content": envelope},
        "certificates": [cert],
        "signer_infos": [{
            "version": "v1",
            "sid": {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}},
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": f"{digest}_rsa"},
            "signature": signature,
        }],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


@pytest.mark.parametrize("openssl_cipher,cipher,oaep,digest,stream", [
    ("-des3", "des3", False, "sha1", False),
    ("-des3", "des3", False, "sha256", False),
    ("-aes128", "aes128", False, "sha256", False),
    ("-aes256", "aes256", False, "sha256", False),
    ("-aes256", "aes256", True, "sha256", False),
    ("-aes192", "aes192", True, "sha512", False),
    ("-aes256", "aes256", False, "sha256", True),   # BER: indefinite lengths, chunked encryptedContent
    ("-des3", "des3", True, "sha1", True),
    ("-aes128", "aes128", False, "sha256", "keyid"),  # recipient named by subject key identifier
])
def test_pkcs_req_with_openssl_envelope(files, openssl_cipher, cipher, oaep, digest, stream):
    p = parties()
    files.write("csr.der", p.csr.public_bytes(Encoding.DER))
    files("cms", "-encrypt", "-binary", "-outform", "DER", "-in", "csr.der", "-out", "env.der", openssl_cipher,
          "-recip", "ca.pem", *(["-keyopt", "rsa_padding_mode:oaep"] if oaep else []),
          *(["-stream"] if stream is True else []), *(["-keyid"] if stream == "keyid" else []))
    if stream == "keyid":
        assert cms.ContentInfo.load((files.workdir / "env.der").read_bytes())["content"]["recipient_infos"][0] \
            .chosen["rid"].name == "subject_key_identifier"
    if stream is True:
        assert (files.workdir / "env.der").read_bytes()[1] == 0x80  # really indefinite-length BER
    nonce = os.urandom(16)
    data = _first_principles_scep_request((files.workdir / "env.der").read_bytes(), digest, "19", "TX-OPENSSL",
                                          nonce, p.client_cert, p.client_key)

    message = parse_pki_message(data)
    assert (message.message_type, message.transaction_id, message.sender_nonce, message.digest_algorithm) == (
        MessageType.PKCS_REQ, "TX-OPENSSL", nonce, digest)
    inner = decrypt_envelope(message, p.ca_key, p.ca_cert)
    assert (inner.cipher, inner.key_transport) == (cipher, "oaep" if oaep else "pkcs1v15")
    assert parse_csr(inner.content).csr == p.csr

    # and the reply to it opens with OpenSSL
    reply = build_cert_rep(request=message, envelope=inner, status=PkiStatus.SUCCESS, issued_certs=[p.issue()],
                           signer_cert=p.ca_cert, signer_key=p.ca_key, allow_legacy_digest=True)
    files.write("rep.der", reply)
    files("cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-binary", "-out", "renv.der")
    files("cms", "-decrypt", "-inform", "DER", "-in", "renv.der", "-recip", "client.pem", "-inkey", "client.key",
          "-binary", "-out", "inner.der")


def _as_ber(data: bytes, chunk: int = 100) -> bytes:
    """The same pkiMessage in BER as streaming encoders write it (BouncyCastle-based clients do): indefinite
    lengths and the signed content as a constructed OCTET STRING in chunks."""
    sd = cms.ContentInfo.load(data)["content"]
    content = sd["encap_content_info"]["content"].native
    chunks = b"".join(core.OctetString(content[i:i + chunk]).dump() for i in range(0, len(content), chunk))
    eoc = b"\x00\x00"
    encap = b"\x30\x80" + core.ObjectIdentifier("1.2.840.113549.1.7.1").dump() + b"\xa0\x80\x24\x80" + chunks \
        + eoc * 3
    body = (sd["version"].dump() + sd["digest_algorithms"].dump() + encap + sd["certificates"].dump()
            + sd["signer_infos"].dump())
    return (b"\x30\x80" + core.ObjectIdentifier("1.2.840.113549.1.7.2").dump() + b"\xa0\x80\x30\x80" + body
            + eoc * 3)


def test_ber_encoded_request_is_read():
    p = parties()
    req = build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert, cipher="des3")
    ber = _as_ber(req.data)
    assert ber != req.data and ber[1] == 0x80
    message = parse_pki_message(ber)
    assert message.transaction_id == req.transaction_id
    assert parse_csr(decrypt_envelope(message, p.ca_key, p.ca_cert).content).csr == p.csr


def test_openssl_signed_data_without_scep_attributes_is_not_a_scep_message(files):
    files.write("payload.bin", b"hello")
    files("cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-in", "payload.bin", "-signer", "client.pem",
          "-inkey", "client.key", "-out", "signed.der")
    with pytest.raises(ScepMessageError, match="messageType or transactionID"):
        parse_pki_message((files.workdir / "signed.der").read_bytes())


def test_degenerate_certs_only_is_byte_identical_to_openssls(files):
    """Our certificates-only SignedData is written as DER by hand; OpenSSL's encoder agrees byte for byte."""
    p = parties()
    files("crl2pkcs7", "-nocrl", "-certfile", "ca.pem", "-outform", "DER", "-out", "ca.p7b")
    assert degenerate_certs_only([p.ca_cert]) == (files.workdir / "ca.p7b").read_bytes()


@pytest.mark.parametrize("status", [PkiStatus.SUCCESS, PkiStatus.FAILURE])
def test_written_messages_are_der(files, status):
    """Re-encoding by OpenSSL (which writes DER) changes nothing in our CertRep or in the envelope inside."""
    _message, _issued, reply = _reply("aes256", "sha256", "oaep", status,
                                      FailInfo.BAD_TIME if status == PkiStatus.FAILURE else None)
    files.write("rep.der", reply)
    files("cms", "-cmsout", "-inform", "DER", "-in", "rep.der", "-outform", "DER", "-out", "again.der")
    assert (files.workdir / "again.der").read_bytes() == reply
    envelope = parse_pki_message(reply).envelope
    if envelope:
        files.write("env.der", envelope)
        files("cms", "-cmsout", "-inform", "DER", "-in", "env.der", "-outform", "DER", "-out", "env2.der")
        assert (files.workdir / "env2.der").read_bytes() == envelope
