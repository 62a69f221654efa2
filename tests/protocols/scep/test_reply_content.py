"""FAILURE and PENDING CertReps carry an empty content (an empty OCTET STRING as the SignedData's eContent, as
RFC 8894 allows and EJBCA sends): OpenSSL-based clients (certmonger, sscep) verify a reply with
``PKCS7_verify``, which fails with "no content" on a SignedData without any, and then report a refused request
as "CA unreachable" and never poll a pending one. Checked on the message layer and on the server's own replies,
with ``openssl cms -verify`` and ``openssl smime -verify`` exactly as such a client calls them (no detached
content given)."""

from __future__ import annotations

import pytest
from asn1crypto import cms

from protocols.scep import approvals
from protocols.scep.messages import FailInfo, PkiStatus, build_cert_rep, parse_pki_message
from protocols.scep.messages import client as scep_client
from tests.conftest import pem

from .message_fixtures import parties
from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, self_signed

VERIFY = {
    "cms": ("cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-binary", "-out", "out.bin"),
    "cms-noverify": ("cms", "-verify", "-noverify", "-inform", "DER", "-in", "rep.der", "-binary", "-out", "out.bin"),
    "smime-noverify": ("smime", "-verify", "-noverify", "-inform", "DER", "-in", "rep.der", "-out", "out.bin"),
}


def _econtent(reply: bytes) -> bytes | None:
    """The reply's eContent: bytes, or None when the SignedData has none."""
    return cms.ContentInfo.load(reply)["content"]["encap_content_info"]["content"].native  # absent: Void, None


def _openssl_verifies(openssl, reply: bytes, ca_cert, how: str) -> None:
    openssl.write("rep.der", reply)
    openssl.write("ca.pem", pem(ca_cert))
    openssl(*VERIFY[how])  # raises with OpenSSL's message when it fails
    assert (openssl.workdir / "out.bin").read_bytes() == b""


@pytest.mark.parametrize("how", sorted(VERIFY))
@pytest.mark.parametrize("status, fail_info", [(PkiStatus.PENDING, None), (PkiStatus.FAILURE, FailInfo.BAD_REQUEST),
                                               (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)])
def test_contentless_replies_carry_an_empty_econtent(openssl, status, fail_info, how):
    p = parties()
    request = scep_client.build_pkcs_req(p.csr, p.client_cert, p.client_key, p.ca_cert)
    reply = build_cert_rep(request=parse_pki_message(request.data), status=status, fail_info=fail_info,
                           signer_cert=p.ca_cert, signer_key=p.ca_key)
    assert _econtent(reply) == b""
    _openssl_verifies(openssl, reply, p.ca_cert, how)
    # Our own client still reads it as a reply without an envelope.
    result = scep_client.parse_cert_rep(reply, p.client_key, p.client_cert, ca_certs=[p.ca_cert])
    assert (result.status, result.fail_info, result.message.envelope) == (status, fail_info, None)


# --- the server's replies ---------------------------------------------------------------------------------------

def _send(scep, scep_ca, challenge: str, n: int) -> bytes:
    key = client_key(n)
    signer = self_signed(key, "client")
    request = scep_client.build_pkcs_req(make_csr(key, f"CN=device{n},O=Test", challenge), signer, key,
                                         scep_ca.certificate)
    resp = scep.post(request.data)
    assert resp.status_code == 200 and resp["Content-Type"] == "application/x-pki-message"
    return resp.content


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["cms", "smime-noverify"])
def test_server_failure_reply_verifies_with_openssl(scep, scep_ca, ra, openssl, how):
    reply = _send(scep, scep_ca, "wrong secret", 80)
    assert parse_pki_message(reply, signer_certificates=[scep_ca.certificate]).pki_status == PkiStatus.FAILURE
    assert _econtent(reply) == b""
    _openssl_verifies(openssl, reply, scep_ca.certificate, how)


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["cms", "smime-noverify"])
def test_server_pending_reply_verifies_with_openssl(scep, scep_ca, ra, actor, openssl, how):
    approvals.set_required(actor, ca=scep_ca)
    reply = _send(scep, scep_ca, "s3cret", 81)
    assert parse_pki_message(reply, signer_certificates=[scep_ca.certificate]).pki_status == PkiStatus.PENDING
    assert _econtent(reply) == b""
    _openssl_verifies(openssl, reply, scep_ca.certificate, how)
