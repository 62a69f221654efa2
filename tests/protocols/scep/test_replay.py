"""Replays and re-sent requests (RFC 8894 section 3.3.1): a PKCSReq sent again with the same transactionID and
the same request key gets the same answer, not a second certificate, whether it is re-sent one after the other
or concurrently; a senderNonce seen before (the same message bytes again, however they are base64-encoded over
GET) is refused; a transactionID belongs to one key. A request re-sent after its approved certificate was
fetched by a poll gets that certificate (it would otherwise wait for an approval forever)."""

from __future__ import annotations

import base64
import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client

from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate
from pki.models.approvals import ApprovalRequest
from protocols.scep import approvals
from protocols.scep.messages import FailInfo, PkiStatus
from protocols.scep.messages import client as scep_client
from protocols.scep.models import ScepNonce, ScepTransaction

from .server_fixtures import *  # noqa: F403
from .server_fixtures import URL, ScepTestClient, client_key, make_csr, own, self_signed

pytestmark = pytest.mark.django_db
RESENDS = 20


@pytest.fixture
def ca_mode(alias_factory, scep_ca, end_entity_factory):
    alias = alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", ca=scep_ca)
    return alias


def _parties(n: int, cn: str, challenge: str):
    key = client_key(n)
    return key, self_signed(key, "client"), make_csr(key, f"CN={cn},O=Test,C=SE", challenge)


def _reply(resp, key, signer, ca_cert) -> scep_client.CertRepResult:
    assert resp.status_code == 200, (resp.status_code, resp.content)
    return scep_client.parse_cert_rep(resp.content, key, signer, ca_certs=[ca_cert])


@pytest.mark.parametrize("mode, cn, challenge", [("ra", "device1", "s3cret"), ("ca", "router1", "foo123")])
def test_resent_pkcsreq_gets_the_same_certificate(scep, scep_ca, request, mode, cn, challenge):
    request.getfixturevalue("ra" if mode == "ra" else "ca_mode")
    key, signer, csr = _parties(60, cn, challenge)
    first = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    assert first.status == PkiStatus.SUCCESS
    cert = own(first, key)
    for _ in range(RESENDS - 1):  # the client did not get the reply: same transaction, a fresh senderNonce
        again = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
        assert again.status == PkiStatus.SUCCESS, (again.fail_info, again.fail_info_text)
        assert own(again, key) == cert
    assert Certificate.objects.filter(username=cn).count() == 1
    assert len({r.sender_nonce for r in scep.sent}) == RESENDS


@pytest.mark.parametrize("mode, method", [("ra", "POST"), ("ca", "POST"), ("ra", "GET")])
def test_exact_replays_are_refused(scep, scep_ca, request, mode, method):
    """The same bytes again (same senderNonce): one certificate, every replay FAILURE badRequest."""
    request.getfixturevalue("ra" if mode == "ra" else "ca_mode")
    cn, challenge = ("device2", "s3cret") if mode == "ra" else ("router1", "foo123")
    key, signer, csr = _parties(61, cn, challenge)
    message = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate)
    send = scep.post if method == "POST" else scep.get_pki
    results = [_reply(send(message.data), key, signer, scep_ca.certificate) for _ in range(RESENDS)]
    assert results[0].status == PkiStatus.SUCCESS
    assert {(r.status, r.fail_info) for r in results[1:]} == {(PkiStatus.FAILURE, FailInfo.BAD_REQUEST)}
    assert Certificate.objects.filter(username=cn).count() == 1


def _variants(der: bytes) -> list[str]:
    """Base64 texts that all decode to ``der`` with a lenient decoder."""
    text = base64.b64encode(der).decode()
    mime = base64.encodebytes(der).decode()
    return [text, text.rstrip("="), mime, mime.replace("\n", "\r\n"), text.replace("+", " "),
            " " + text + " ", "\n".join(text[i:i + 76] for i in range(0, len(text), 76)), text + "==",
            "!".join(text[i:i + 10] for i in range(0, len(text), 10))]


def test_base64_variants_over_get_issue_one_certificate(client, scep_ca, ra):
    scep = ScepTestClient(client)
    issued = 0
    for n in range(3):
        key, signer, csr = _parties(62 + n, f"variant{n}", "s3cret")
        message = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate)
        statuses = []
        for text in _variants(message.data):
            resp = client.get(scep.url, {"operation": "PKIOperation", "message": text})
            if resp.status_code == 200:
                statuses.append(_reply(resp, key, signer, scep_ca.certificate).status)
        assert statuses.count(PkiStatus.SUCCESS) == 1, statuses
        issued += Certificate.objects.filter(username=f"variant{n}").count()
    assert issued == 3


def test_nonce_replay_in_another_transaction_is_refused(scep, scep_ca, ra):
    key, signer, csr = _parties(65, "device3", "s3cret")
    nonce = b"\x01" * 16
    first = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer, sender_nonce=nonce)
    assert first.status == PkiStatus.SUCCESS
    other_key, other_signer, other_csr = _parties(66, "device4", "s3cret")
    second = scep.enroll(other_csr, other_key, scep_ca.certificate, signer_cert=other_signer, sender_nonce=nonce)
    assert (second.status, second.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not Certificate.objects.filter(username="device4").exists()
    assert not EndEntity.objects.filter(username="device4").exists()


def test_a_nonce_is_accepted_again_after_the_window_and_old_rows_are_purged(scep, scep_ca, ra):
    from protocols.scep import transactions

    key, signer, csr = _parties(67, "device5", "s3cret")
    nonce = b"\x02" * 16
    assert scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer, sender_nonce=nonce).status == \
        PkiStatus.SUCCESS
    old = transactions.NONCE_WINDOW + dt.timedelta(seconds=5)
    ScepNonce.objects.update(created_at=dt.datetime.now(dt.UTC) - old)
    key2, signer2, csr2 = _parties(68, "device6", "s3cret")
    later = scep.enroll(csr2, key2, scep_ca.certificate, signer_cert=signer2, sender_nonce=nonce)
    assert later.status == PkiStatus.SUCCESS  # outside the window the nonce proves nothing either way
    ScepNonce.objects.update(created_at=dt.datetime.now(dt.UTC) - old)
    ScepTransaction.objects.update(created_at=dt.datetime.now(dt.UTC) - transactions.RETENTION
                                   - dt.timedelta(seconds=5))
    assert transactions.purge() == (1, 2)
    assert not ScepNonce.objects.exists() and not ScepTransaction.objects.exists()


def test_transaction_id_of_another_key_is_refused(scep, scep_ca, ra):
    key, signer, csr = _parties(69, "device7", "s3cret")
    first = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    assert first.status == PkiStatus.SUCCESS
    thief_key, thief_signer, thief_csr = _parties(70, "device7", "s3cret")
    stolen = scep.enroll(thief_csr, thief_key, scep_ca.certificate, signer_cert=thief_signer,
                         transaction_id=first.transaction_id)
    assert (stolen.status, stolen.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert stolen.certificates == []
    assert Certificate.objects.filter(username="device7").count() == 1


def test_a_refusal_after_the_end_entity_was_written_leaves_nothing_and_spends_the_nonce(scep, scep_ca, ra):
    """RA mode writes the end entity without a savepoint of its own: issuance refusing after that write (here the
    CA's unique public keys: another device's key) rolls the enrollment's whole transaction back. Nothing of the
    device stays, the refusal is audited, and the same message sent again is a replay, refused before enrolling."""
    key, signer, csr = _parties(71, "device8", "s3cret")
    assert scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer).status == PkiStatus.SUCCESS
    message = scep_client.build_pkcs_req(make_csr(key, "CN=device9,O=Test,C=SE", "s3cret"), signer, key,
                                         scep_ca.certificate, transaction_id="DEVICE9")
    refused = _reply(scep.post(message.data), key, signer, scep_ca.certificate)
    assert (refused.status, refused.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.filter(username="device9").exists()
    assert not Certificate.objects.filter(username="device9").exists()
    assert not ScepTransaction.objects.filter(transaction_id=message.transaction_id).exists()
    audited = AuditEvent.objects.filter(event_type="SCEP_ENROLLMENT", outcome="FAILURE", object_id="device9")
    assert audited.count() == 1
    again = _reply(scep.post(message.data), key, signer, scep_ca.certificate)
    assert (again.status, again.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert audited.count() == 1  # refused as a replay, not enrolled and refused again


def test_resent_pkcsreq_after_approval_and_poll_gets_the_certificate(scep, scep_ca, ra, actor):
    approvals.set_required(actor, ca=scep_ca)
    key, signer, csr = _parties(71, "waits", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    assert pending.status == PkiStatus.PENDING
    approvals.decide(actor, ApprovalRequest.objects.get().pk, approve=True)
    poll = scep_client.build_get_cert_initial(scep_ca.certificate.subject, csr.subject, signer, key,
                                              scep_ca.certificate, transaction_id=pending.transaction_id)
    polled = scep.exchange(poll, key, signer, scep_ca.certificate)
    assert polled.status == PkiStatus.SUCCESS
    # The device lost the poll's reply and starts over with its PKCSReq (same transaction, new nonce).
    resent = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    assert resent.status == PkiStatus.SUCCESS
    assert own(resent, key) == own(polled, key)
    assert Certificate.objects.filter(username="waits").count() == 1


def test_resent_pkcsreq_after_approval_issues_once(scep, scep_ca, ra, actor):
    """Approved, then the PKCSReq is re-sent (no poll): issued then; the later poll gets the same certificate."""
    approvals.set_required(actor, ca=scep_ca)
    key, signer, csr = _parties(72, "waits2", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    approvals.decide(actor, ApprovalRequest.objects.get().pk, approve=True)
    resent = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    assert resent.status == PkiStatus.SUCCESS
    poll = scep_client.build_get_cert_initial(scep_ca.certificate.subject, csr.subject, signer, key,
                                              scep_ca.certificate, transaction_id=pending.transaction_id)
    polled = scep.exchange(poll, key, signer, scep_ca.certificate)
    assert polled.status == PkiStatus.SUCCESS and own(polled, key) == own(resent, key)
    assert Certificate.objects.filter(username="waits2").count() == 1


# --- concurrently ----------------------------------------------------------------------------------------------

def _concurrently(bodies: list[bytes], alias: str = "scep") -> list:
    """POST every body at once from its own thread (its own database connection); the HTTP responses."""
    barrier = threading.Barrier(len(bodies))
    out: list = [None] * len(bodies)

    def send(i: int, body: bytes) -> None:
        try:
            barrier.wait()
            out[i] = Client().post(URL.format(alias=alias) + "?operation=PKIOperation", data=body,
                                   content_type="application/x-pki-message")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["ra", "ca"])
def test_concurrent_resends_issue_one_certificate(scep_ca, request, mode):
    request.getfixturevalue("ra" if mode == "ra" else "ca_mode")
    cn, challenge = ("device8", "s3cret") if mode == "ra" else ("router1", "foo123")
    key, signer, csr = _parties(73, cn, challenge)
    messages = [scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate) for _ in range(RESENDS)]
    results = [_reply(r, key, signer, scep_ca.certificate) for r in _concurrently([m.data for m in messages])]
    assert {r.status for r in results} == {PkiStatus.SUCCESS}, [(r.status, r.fail_info_text) for r in results]
    assert len({own(r, key) for r in results}) == 1  # identical answers: the one certificate
    assert Certificate.objects.filter(username=cn).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_exact_replays_issue_one_certificate(scep_ca, ra):
    key, signer, csr = _parties(74, "device9", "s3cret")
    message = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate)
    results = [_reply(r, key, signer, scep_ca.certificate) for r in _concurrently([message.data] * RESENDS)]
    assert [r.status for r in results].count(PkiStatus.SUCCESS) == 1
    assert {(r.status, r.fail_info) for r in results if r.status != PkiStatus.SUCCESS} == \
        {(PkiStatus.FAILURE, FailInfo.BAD_REQUEST)}
    assert Certificate.objects.filter(username="device9").count() == 1
