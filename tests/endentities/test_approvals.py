"""Approvals of end entity actions on every interface: REST pkcs10enroll / add end entity answer 202 with the
request id and nothing is written; approved, ``finalize`` completes the enrollment in EJBCA's response shape
(once); ``certificaterequest`` enrolls an existing end entity; the admin UI and the RA portal store requests
instead of acting, and the RA portal's "Approve requests" pages list, show and decide them."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate
from pki.models.approvals import ApprovalAction, ApprovalProfile, ApprovalRequest, ApprovalStatus
from pki.services import approvals
from pki.x509.dn import format_dn
from tests.pki.test_api_auth import (
    V1,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
)
from tests.pki.test_views_auth import ui_client

from .entities_support import *  # noqa: F403  (the shared fixtures)

RA = ["/ra_functionality/create_end_entity", "/ra_functionality/edit_end_entity",
      "/ra_functionality/view_end_entity", "/ca_functionality/create_certificate", "/endentityprofilesrules"]
CERTIFICATE_RESPONSE = {"certificate", "serial_number", "response_format", "certificate_chain",
                        "certificate_profile", "end_entity_profile"}


@pytest.fixture
def needs_approval(actor, root_ca, ee_profile) -> ApprovalProfile:
    """Adding and editing end entities on TestRoot needs one approval."""
    profile = approvals.save_profile(actor, name="One", approvals_required=1, request_expiration=3600)
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=root_ca)
    return profile


@pytest.fixture
def requester(root_ca):
    return make_client("operator", [*RA, f"/ca/{root_ca.pk}"])


@pytest.fixture
def approver_api(root_ca):
    return make_client("approver", ["/ra_functionality/approve_end_entity", f"/ca/{root_ca.pk}"])


def _pem(csr) -> str:
    return csr.public_bytes(Encoding.PEM).decode()


def _enroll_body(csr, username="device1") -> dict:
    return {"certificate_request": _pem(csr), "username": username, "password": "foo123",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot"}


def test_pkcs10enroll_waits_then_finalize_issues_once(needs_approval, requester, approver_api, csr_factory, root_ca):
    csr, key = csr_factory("CN=Waiting Device,O=Test")
    r = requester.post(f"{V1}/certificate/pkcs10enroll", _enroll_body(csr), format="json")
    assert r.status_code == 202, r.content
    request_id = r.json()["request_id"]
    assert not EndEntity.objects.filter(username="device1").exists()
    assert not Certificate.objects.filter(username="device1").exists()
    req = ApprovalRequest.objects.get(pk=request_id)
    assert (req.operation, req.requested_by, req.request_der is not None) == ("enroll_pkcs10", "operator", True)
    assert "foo123" not in str(req.data)  # the enrollment code is sealed
    # Finalizing before the approval: still waiting (202).
    assert requester.post(f"{V1}/certificate/{request_id}/finalize", {}, format="json").status_code == 202
    # The requester cannot approve their own request.
    assert requester.post(f"/api/v1/approvals/{request_id}/approve", {}, format="json").status_code in (403, 404)
    r = approver_api.post(f"/api/v1/approvals/{request_id}/approve", {"comment": "known device"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.content
    assert EndEntity.objects.get(username="device1").status == EndEntityStatus.NEW
    r = requester.post(f"{V1}/certificate/{request_id}/finalize", {"response_format": "DER"}, format="json")
    assert r.status_code == 201, r.content
    data = r.json()
    assert set(data) == CERTIFICATE_RESPONSE and data["response_format"] == "DER"
    cert = x509.load_der_x509_certificate(base64.b64decode(data["certificate"]))
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert format_dn(cert.subject) == "CN=Waiting Device,O=Test"
    assert data["serial_number"] == format(cert.serial_number, "X") and data["end_entity_profile"] == "TestEEP"
    again = requester.post(f"{V1}/certificate/{request_id}/finalize", {}, format="json")
    assert again.status_code == 201 and again.json()["certificate"] == data["certificate"]
    assert Certificate.objects.filter(username="device1").count() == 1
    assert AuditEvent.objects.filter(event_type="APPROVAL_FINALIZE", object_id=str(request_id)).count() == 2


@pytest.mark.parametrize(("who", "body", "status"), [
    ("stranger", {}, 404),  # may not see the request: as a missing one
    ("requester", {"response_format": "PEMX"}, 400),
])
def test_finalize_refusals(needs_approval, requester, csr_factory, root_ca, who, body, status):
    csr, _ = csr_factory("CN=Device 2,O=Test")
    request_id = requester.post(f"{V1}/certificate/pkcs10enroll", _enroll_body(csr, "device2"),
                                format="json").json()["request_id"]
    client = requester if who == "requester" else make_client("stranger", ["/ca_functionality/create_certificate"])
    r = client.post(f"{V1}/certificate/{request_id}/finalize", body, format="json")
    assert r.status_code == status and set(r.json()) >= {"error_code", "error_message"}
    assert not Certificate.objects.filter(username="device2").exists()


def test_finalize_of_a_rejected_request_is_refused(needs_approval, requester, approver_api, csr_factory):
    csr, _ = csr_factory("CN=Device 3,O=Test")
    request_id = requester.post(f"{V1}/certificate/pkcs10enroll", _enroll_body(csr, "device3"),
                                format="json").json()["request_id"]
    assert approver_api.post(f"/api/v1/approvals/{request_id}/reject", {"comment": "unknown"},
                             format="json").json()["status"] == "REJECTED"
    r = requester.post(f"{V1}/certificate/{request_id}/finalize", {}, format="json")
    assert r.status_code == 400 and "rejected" in r.json()["error_message"]
    assert not EndEntity.objects.filter(username="device3").exists()
    assert requester.post(f"{V1}/certificate/999999/finalize", {}, format="json").status_code == 404


def test_rest_add_end_entity_waits_then_finalize_gives_a_keystore(needs_approval, requester, approver_api):
    body = {"username": "p12user", "password": "foo123", "subject_dn": "CN=P12 User,O=Test", "ca_name": "TestRoot",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP", "token": "P12"}
    r = requester.post(f"{V1}/endentity", body, format="json")
    assert r.status_code == 202, r.content
    request_id = r.json()["request_id"]
    assert not EndEntity.objects.filter(username="p12user").exists()
    approver_api.post(f"/api/v1/approvals/{request_id}/approve", {}, format="json")
    r = requester.post(f"{V1}/certificate/{request_id}/finalize",
                       {"response_format": "P12", "password": "foo123", "key_alg": "RSA", "key_spec": "2048"},
                       format="json")
    assert r.status_code == 201, r.content
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(r.json()["certificate"]), b"foo123")
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert format_dn(cert.subject) == "CN=P12 User,O=Test"


def test_edit_end_entity_waits_for_approval(actor, entity_factory, root_ca, request):
    entity_factory("bob", subject_dn="CN=Bob,O=Test")  # before edits need approval
    request.getfixturevalue("needs_approval")
    from endentities import services
    from endentities.validation import EndEntityInput
    from pki.auth.access import Actor

    editor = Actor(name="editor", kind="user", role_rules={"r": [("/", True)]})
    with pytest.raises(approvals.WaitingForApproval) as waiting:
        services.edit_end_entity(editor, "bob", EndEntityInput(subject_dn="CN=Bobby,O=Test", ca=root_ca,
                                                               certificate_profile="ENDUSER"))
    assert EndEntity.objects.get(username="bob").subject_dn == "CN=Bob,O=Test"
    checker = Actor(name="checker", kind="user", role_rules={"r": [("/", True)]})
    approvals.decide(checker, waiting.value.request_id, approve=True)
    assert EndEntity.objects.get(username="bob").subject_dn == "CN=Bobby,O=Test"
    assert ApprovalRequest.objects.get(pk=waiting.value.request_id).status == ApprovalStatus.APPROVED


def test_certificaterequest_enrolls_an_existing_end_entity(entity_factory, csr_factory, root_ca, requester):
    entity_factory("carol", subject_dn="CN=Carol,O=Test,C=SE")
    csr, _ = csr_factory("CN=ignored")
    body = {"certificate_request": _pem(csr), "username": "carol", "password": "foo123", "include_chain": True,
            "certificate_authority_name": "TestRoot"}
    r = requester.post(f"{V1}/certificate/certificaterequest", {**body, "password": "wrong"}, format="json")
    assert r.status_code == 403 and r.json()["error_message"] == "Wrong username or enrollment code."
    r = requester.post(f"{V1}/certificate/certificaterequest", {**body, "certificate_authority_name": "Other"},
                       format="json")
    assert r.status_code == 400
    r = requester.post(f"{V1}/certificate/certificaterequest", body, format="json")
    assert r.status_code == 201, r.content
    cert = x509.load_der_x509_certificate(base64.b64decode(r.json()["certificate"]))
    assert format_dn(cert.subject) == "CN=Carol,O=Test,C=SE"  # the end entity's subject, not the request's
    assert set(r.json()) == CERTIFICATE_RESPONSE
    unknown = requester.post(f"{V1}/certificate/certificaterequest", {**body, "username": "nobody"}, format="json")
    assert unknown.status_code == 403 and unknown.json()["error_message"] == "Wrong username or enrollment code."


def test_ra_portal_make_new_request_waits_and_approve_pages_decide(needs_approval, root_ca, ee_profile, csr_factory):
    maker = ui_client("maker", ["/administrator", *RA, f"/ca/{root_ca.pk}", "/ra_functionality/approve_end_entity"])
    csr, _ = csr_factory("CN=Portal Device,O=Test")
    r = maker.post(f"/ra/enroll/?profile={ee_profile.pk}", {
        "username": "portal1", "password": "foo123", "password_confirm": "foo123",
        "dn_0": "Portal Device", "dn_1": "Test", "ca": str(root_ca.pk),
        "certificate_profile": str(ee_profile.default_certificate_profile_id),
        "key-key_source": "csr", "key-csr_pem": _pem(csr), "key-token_type": "1", "key-key_algorithm": "P-256",
        "key-certificate_format": "pem"}, follow=True)
    assert r.status_code == 200
    req = ApprovalRequest.objects.get(username="portal1")
    assert f"request id {req.pk}" in r.content.decode()
    assert not EndEntity.objects.filter(username="portal1").exists()
    # The requester sees it, cannot decide it.
    page = maker.get(f"/ra/approvals/{req.pk}/").content.decode()
    assert "another administrator must approve it" in page and 'value="approve"' not in page
    maker.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "approve"})
    assert ApprovalRequest.objects.get(pk=req.pk).status == ApprovalStatus.WAITING
    checker = ui_client("checker", ["/administrator", "/ra_functionality/approve_end_entity", f"/ca/{root_ca.pk}"])
    listing = checker.get("/ra/approvals/").content.decode()
    assert "portal1" in listing
    page = checker.get(f"/ra/approvals/{req.pk}/").content.decode()
    assert "CN=Portal Device" in page and 'value="approve"' in page and "foo123" not in page
    assert checker.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "maybe"}).status_code == 302
    bad = checker.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "approve", "comment": "a\x00b"}, follow=True)
    assert bad.status_code == 200 and "control characters" in bad.content.decode()
    assert ApprovalRequest.objects.get(pk=req.pk).status == ApprovalStatus.WAITING
    checker.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "approve", "comment": "looks right"})
    req.refresh_from_db()
    assert req.status == ApprovalStatus.APPROVED and req.approvals.get().comment == "looks right"
    assert EndEntity.objects.get(username="portal1").status == EndEntityStatus.NEW
    assert checker.get("/ra/approvals/999999/").status_code == 404


def test_a_name_taken_meanwhile_is_not_overwritten(needs_approval, requester, approver_api, csr_factory, actor,
                                                   root_ca, entity_factory):
    csr, _ = csr_factory("CN=Takeover,O=Test")
    request_id = requester.post(f"{V1}/certificate/pkcs10enroll", _enroll_body(csr, "victim"),
                                format="json").json()["request_id"]
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, None, ca=root_ca)
    entity_factory("victim", subject_dn="CN=Victim,O=Test")  # someone else's end entity, added meanwhile
    r = approver_api.post(f"/api/v1/approvals/{request_id}/approve", {}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "FAILED" and "exists" in r.json()["result"]
    assert EndEntity.objects.get(username="victim").subject_dn == "CN=Victim,O=Test"
    assert requester.post(f"{V1}/certificate/{request_id}/finalize", {}, format="json").status_code == 400
    assert not Certificate.objects.filter(username="victim").exists()


def test_pkcs10enroll_renewal_by_an_editor_waits_then_finalize(actor, entity_factory, root_ca, csr_factory, request,
                                                                requester, approver_api):
    entity_factory("renewme", subject_dn="CN=Renew Me,O=Test")
    ee = EndEntity.objects.get(username="renewme")
    EndEntity.objects.filter(pk=ee.pk).update(status=EndEntityStatus.GENERATED)
    request.getfixturevalue("needs_approval")
    csr, key = csr_factory("CN=Renewed,O=Test")
    r = requester.post(f"{V1}/certificate/pkcs10enroll", _enroll_body(csr, "renewme"), format="json")
    assert r.status_code == 202, r.content
    request_id = r.json()["request_id"]
    assert ApprovalRequest.objects.get(pk=request_id).operation == "edit_enroll_pkcs10"
    assert EndEntity.objects.get(username="renewme").status == EndEntityStatus.GENERATED  # unchanged meanwhile
    approver_api.post(f"/api/v1/approvals/{request_id}/approve", {}, format="json")
    ee = EndEntity.objects.get(username="renewme")
    assert (ee.status, ee.subject_dn) == (EndEntityStatus.NEW, "CN=Renewed,O=Test")
    r = requester.post(f"{V1}/certificate/{request_id}/finalize", {}, format="json")
    assert r.status_code == 201, r.content
    cert = x509.load_der_x509_certificate(base64.b64decode(r.json()["certificate"]))
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_revocations_wait_on_rest_and_the_ra_portal(actor, entity_factory, root_ca, csr_factory):
    """EJBCA's "Revocation" covers revoking an end entity and a certificate: both wait, then are carried out."""
    from endentities import services

    entity_factory("revokee", subject_dn="CN=Revokee,O=Test")
    csr, _ = csr_factory("CN=x")
    issued = services.enroll("revokee", "foo123", csr=csr, interface="rest")
    profile = approvals.save_profile(actor, name="Rev", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.REVOCATION, profile, ca=root_ca)
    operator = make_client("revoker", [*RA, "/ra_functionality/revoke_end_entity", f"/ca/{root_ca.pk}"])
    r = operator.put(f"{V1}/endentity/revokee/revoke", {"reason_code": 1}, format="json")
    assert r.status_code == 202, r.content
    assert EndEntity.objects.get(username="revokee").status != EndEntityStatus.REVOKED
    portal = ui_client("portalrev", ["/administrator", *RA, "/ra_functionality/revoke_end_entity",
                                     "/ca_functionality/view_certificate", f"/ca/{root_ca.pk}"])
    page = portal.post(f"/ra/certificates/{issued.row.pk}/revoke/", {"reason": "1"}, follow=True).content.decode()
    assert "waiting for approval" in page
    assert Certificate.objects.get(pk=issued.row.pk).status == "ACTIVE"
    checker = make_client("revchecker", ["/ra_functionality/approve_end_entity", f"/ca/{root_ca.pk}"])
    r = checker.post(f"/api/v1/approvals/{r.json()['request_id']}/approve", {}, format="json")
    assert r.json()["status"] == "APPROVED", r.content
    assert EndEntity.objects.get(username="revokee").status == EndEntityStatus.REVOKED
    assert Certificate.objects.get(pk=issued.row.pk).status == "REVOKED"
    assert ApprovalRequest.objects.filter(operation="revoke", status="WAITING").count() == 1  # the portal's


def test_setstatus_back_to_new_with_a_code_waits_for_approval(actor, entity_factory, root_ca, requester, csr_factory,
                                                               request):
    """The way around an approved enrollment: set a generated end entity back to NEW with a code of one's own,
    then enroll with the code. EJBCA puts status changes under "Add/Edit End Entity" approval; so here."""
    entity_factory("carl", subject_dn="CN=carl,O=Test")
    EndEntity.objects.filter(username="carl").update(status=EndEntityStatus.GENERATED)
    request.getfixturevalue("needs_approval")
    r = requester.post(f"{V1}/endentity/carl/setstatus", {"status": "NEW", "password": "mine-now-123",
                                                          "token": "USERGENERATED"}, format="json")
    assert r.status_code == 202, r.content
    req = ApprovalRequest.objects.get(pk=r.json()["request_id"])
    assert req.operation == "set_status" and "mine-now-123" not in str(req.data)
    assert EndEntity.objects.get(username="carl").status == EndEntityStatus.GENERATED  # nothing changed yet
    enroller = make_client("holder", ["/ca_functionality/create_certificate", f"/ca/{root_ca.pk}"])
    csr, _ = csr_factory("CN=carl,O=Test")
    body = {**_enroll_body(csr, "carl"), "password": "mine-now-123"}
    assert enroller.post(f"{V1}/certificate/pkcs10enroll", body, format="json").status_code in (400, 403)
    assert not Certificate.objects.filter(username="carl").exists()
    # Approved by someone else, the change is made once, and the code works.
    from pki.auth.access import Actor

    approvals.decide(Actor(name="checker", kind="user", role_rules={"r": [("/", True)]}), req.pk, approve=True)
    assert EndEntity.objects.get(username="carl").status == EndEntityStatus.NEW
    assert enroller.post(f"{V1}/certificate/pkcs10enroll", body, format="json").status_code == 201


def test_the_admin_end_entity_page_says_a_revocation_waits_and_is_not_an_error(actor, entity_factory, root_ca):
    """The admin UI's end entity revoke under an approval profile: stored, and the page says so as information
    (it was shown as a refusal, though nothing was refused)."""
    from django.contrib.messages import INFO

    ee = entity_factory("waitrevoke", subject_dn="CN=Wait Revoke,O=Test")
    profile = approvals.save_profile(actor, name="Rev", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.REVOCATION, profile, ca=root_ca)
    admin = ui_client("adminrev", ["/administrator", *RA, "/ra_functionality/revoke_end_entity",
                                   f"/ca/{root_ca.pk}"])
    r = admin.post(f"/endentities/{ee.pk}/revoke/", {"reason": "1"}, follow=True)
    shown = [(m.level, m.message) for m in r.context["messages"]]
    assert len(shown) == 1 and shown[0][0] == INFO and "waiting for approval" in shown[0][1], shown
    assert EndEntity.objects.get(pk=ee.pk).status != EndEntityStatus.REVOKED
    assert ApprovalRequest.objects.filter(operation="revoke_end_entity", status="WAITING").count() == 1
