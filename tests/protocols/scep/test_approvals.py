"""SCEP with approvals (the seed's "Using SCEP with Approvals"): RA-mode PKCSReq gets PENDING when the CA or
certificate profile requires approval; an approver approves or rejects in the admin UI; the client's
GetCertInitial then gets SUCCESS with the certificate, or FAILURE. A re-sent PKCSReq after an issuance
failure needs no new approval."""

from __future__ import annotations

import pytest

from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.models.approvals import ApprovalRequest, ApprovalStatus
from protocols.scep import approvals
from protocols.scep.messages import FailInfo, PkiStatus
from protocols.scep.messages import client as scep_client
from tests.pki.test_views_auth import ui_client

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, openssl_verify, own, self_signed

pytestmark = pytest.mark.django_db


def _poll(scep, scep_ca, key, signer, transaction_id, subject):
    request = scep_client.build_get_cert_initial(scep_ca.certificate.subject, subject, signer, key,
                                                 scep_ca.certificate, transaction_id=transaction_id)
    return scep.exchange(request, key, signer, scep_ca.certificate)


@pytest.mark.parametrize("on", ["ca", "profile"])
def test_pending_then_approved_then_get_cert_initial(scep, scep_ca, ra, actor, openssl, on):
    if on == "ca":
        approvals.set_required(actor, ca=scep_ca)
    else:
        approvals.set_required(actor, certificate_profile=CertificateProfile.objects.get(name="ENDUSER"))
    key = client_key(50)
    signer = self_signed(key, "client")
    csr = make_csr(key, "CN=needs-ok,O=Test", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    assert pending.status == PkiStatus.PENDING and pending.certificates == []
    assert not EndEntity.objects.filter(username="needs-ok").exists()
    request = ApprovalRequest.objects.get()
    assert (request.status, request.username, request.origin_key) == \
        (ApprovalStatus.WAITING, "needs-ok", pending.transaction_id)
    # Polling while it waits: PENDING again; re-sending the PKCSReq does not make a second request.
    assert _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject).status == PkiStatus.PENDING
    assert scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer).status == PkiStatus.PENDING
    assert ApprovalRequest.objects.count() == 1

    approver = ui_client("approver", ["/administrator", approvals.RULE, f"/ca/{scep_ca.pk}"])
    page = approver.get("/ra/approvals/").content.decode()
    assert "needs-ok" in page
    assert approver.post(f"/ra/approvals/{request.pk}/decide/", {"decision": "approve"}).status_code == 302
    assert EndEntity.objects.filter(username="needs-ok").exists()

    done = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)
    assert done.status == PkiStatus.SUCCESS
    cert = own(done, key)
    openssl_verify(openssl, cert, [scep_ca.certificate])
    again = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)
    assert own(again, key) == cert  # the same certificate, issued once
    assert Certificate.objects.filter(username="needs-ok").count() == 1
    assert AuditEvent.objects.filter(event_type="APPROVAL_APPROVE", actor="approver").exists()


def test_rejected_then_failure(scep, scep_ca, ra, actor):
    approvals.set_required(actor, ca=scep_ca)
    key = client_key(51)
    signer = self_signed(key, "client")
    csr = make_csr(key, "CN=not-ok", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    approver = ui_client("approver", ["/administrator", approvals.RULE, f"/ca/{scep_ca.pk}"])
    assert approver.post(f"/ra/approvals/{ApprovalRequest.objects.get().pk}/decide/",
                         {"decision": "reject", "comment": "unknown device"}).status_code == 302
    result = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.filter(username="not-ok").exists()
    assert not Certificate.objects.filter(username="not-ok").exists()
    again = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)  # the same transaction once more
    assert (again.status, again.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


def test_wrong_secret_is_refused_before_approval(scep, scep_ca, ra, actor):
    approvals.set_required(actor, ca=scep_ca)
    key = client_key(52)
    result = scep.enroll(make_csr(key, "CN=x", "wrong"), key, scep_ca.certificate)
    assert result.status == PkiStatus.FAILURE
    assert not ApprovalRequest.objects.exists()


def test_issuance_failure_after_approval_needs_no_new_approval(scep, scep_ca, ra, actor):
    approvals.set_required(actor, ca=scep_ca)
    key = client_key(53)
    signer = self_signed(key, "client")
    csr = make_csr(key, "CN=retry", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    approvals.decide(actor, ApprovalRequest.objects.get().pk, approve=True)
    enduser = CertificateProfile.objects.filter(name="ENDUSER")
    sizes = enduser.get().allowed_rsa_sizes
    enduser.update(allowed_rsa_sizes=[4096])
    failed = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)  # 2048-bit key refused
    assert (failed.status, failed.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    enduser.update(allowed_rsa_sizes=sizes)
    result = scep.enroll(make_csr(key, "CN=retry", "s3cret"), key, scep_ca.certificate,
                         transaction_id="NEWTRANSACTION")
    assert result.status == PkiStatus.SUCCESS
    assert ApprovalRequest.objects.count() == 1 and ApprovalRequest.objects.get().certificate is not None


def test_approving_needs_the_rule(scep, scep_ca, ra, actor):
    approvals.set_required(actor, ca=scep_ca)
    key = client_key(54)
    scep.enroll(make_csr(key, "CN=waits", "s3cret"), key, scep_ca.certificate)
    req = ApprovalRequest.objects.get()
    outsider = ui_client("outsider", ["/administrator", "/ca_functionality/view_ca"])
    assert outsider.get("/ra/approvals/").status_code == 403
    assert outsider.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "approve"}).status_code == 403
    no_ca = ui_client("no-ca", ["/administrator", approvals.RULE])
    no_ca.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "approve"})
    assert ApprovalRequest.objects.get().status == ApprovalStatus.WAITING  # the CA's rule is missing
    approvals.decide(actor, req.pk, approve=False)
    with pytest.raises(Exception, match="rejected already"):
        approvals.decide(actor, req.pk, approve=True)


def test_pkcsreq_resent_after_approval_and_issuance_gets_the_certificate(scep, scep_ca, ra, actor):
    """Approved and issued (the poll fetched it): the device sends its PKCSReq again, also under a new
    transactionID (a restarted client): it gets the issued certificate, not PENDING and a second approval."""
    approvals.set_required(actor, ca=scep_ca)
    key = client_key(55)
    signer = self_signed(key, "client")
    csr = make_csr(key, "CN=issued-once,O=Test", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    approvals.decide(actor, ApprovalRequest.objects.get().pk, approve=True)
    polled = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)
    assert polled.status == PkiStatus.SUCCESS
    for transaction_id in (None, "RESTARTED-CLIENT-1", "RESTARTED-CLIENT-2"):
        kw = {"transaction_id": transaction_id} if transaction_id else {}
        again = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer, **kw)
        assert again.status == PkiStatus.SUCCESS, (transaction_id, again.fail_info)
        assert own(again, key) == own(polled, key)
    assert ApprovalRequest.objects.count() == 1
    assert Certificate.objects.filter(username="issued-once").count() == 1
    # Another key with the same name is a new request: it waits for its own approval.
    other = client_key(56)
    fresh = scep.enroll(make_csr(other, "CN=issued-once,O=Test", "s3cret"), other, scep_ca.certificate,
                        signer_cert=self_signed(other, "client"))
    assert fresh.status == PkiStatus.PENDING and ApprovalRequest.objects.count() == 2


def test_an_expired_scep_request_is_refused_on_poll(scep, scep_ca, ra, actor):
    import datetime as dt

    from django.utils import timezone

    approvals.set_required(actor, ca=scep_ca)
    key = client_key(57)
    signer = self_signed(key, "client")
    csr = make_csr(key, "CN=too-late", "s3cret")
    pending = scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)
    ApprovalRequest.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    result = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    with pytest.raises(Exception, match="expired"):
        approvals.decide(actor, ApprovalRequest.objects.get().pk, approve=True)
    assert not EndEntity.objects.filter(username="too-late").exists()
