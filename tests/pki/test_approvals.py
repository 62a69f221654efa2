"""Approval profiles in the core (EJBCA's "Approve Actions"): which profile an action needs, the gate that stores
a request instead of acting (REST answers 202 with its id), who may approve (not the requester, only the
profile's roles, only before expiry), N approvals execute once (also when they arrive at the same moment), a
rejection ends it, every step audited; CA activation under approval."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from pki.auth.access import Actor
from pki.choices import CAStatus, CertificateStatus
from pki.errors import AuthorizationDenied, ConflictError
from pki.models import AuditEvent, Certificate, CertificateProfile, Role
from pki.models.approvals import ApprovalAction, ApprovalProfile, ApprovalRequest, ApprovalStatus
from pki.services import approvals
from pki.services.cas import set_ca_active
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    server_leaf,
)

pytestmark = pytest.mark.django_db
APPROVER_RULES = ["/ra_functionality/approve_end_entity", "/ca_functionality/view_certificate"]


@pytest.fixture
def leaf(sub_ca, actor, csr_factory):
    return server_leaf(sub_ca, actor, csr_factory)


def two_step(actor, ca, roles=()) -> ApprovalProfile:
    """Revocations on ``ca`` need two approvals (from ``roles`` when any)."""
    profile = approvals.save_profile(actor, name="Two", approvals_required=2, request_expiration=3600,
                                     approver_roles=list(roles))
    approvals.set_approval(actor, ApprovalAction.REVOCATION, profile, ca=ca)
    return profile


def approver(name: str, ca, extra=()) -> Actor:
    role = Role.objects.create(name=f"approvers-{name}")
    rules = [*APPROVER_RULES, f"/ca/{ca.pk}", *extra]
    from pki.models import AccessRule

    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
    return Actor(name=name, kind="user", role_rules={role.name: [(r, True) for r in rules]})


@pytest.mark.parametrize(("on_ca", "on_profile", "expected"), [
    (None, None, None),
    ("A", None, "A"),
    (None, "B", "B"),
    ("A", "B", "B"),  # the certificate profile's setting comes first (EJBCA)
])
def test_which_profile_an_action_needs(actor, root_ca, on_ca, on_profile, expected):
    profiles = {n: approvals.save_profile(actor, name=n, approvals_required=1, request_expiration=600)
                for n in ("A", "B")}
    enduser = CertificateProfile.objects.get(name="ENDUSER")
    if on_ca:
        approvals.set_approval(actor, ApprovalAction.REVOCATION, profiles[on_ca], ca=root_ca)
    if on_profile:
        approvals.set_approval(actor, ApprovalAction.REVOCATION, profiles[on_profile], certificate_profile=enduser)
    found = approvals.profile_for(ApprovalAction.REVOCATION, root_ca, enduser)
    assert (found.name if found else None) == expected
    assert approvals.profile_for(ApprovalAction.CA_ACTIVATION, root_ca, enduser) is None  # per action


def test_rest_revoke_waits_then_two_approvals_revoke_once(actor, sub_ca, leaf):
    two_step(actor, sub_ca)
    requester = make_client("requester", ["/ra_functionality/revoke_end_entity", f"/ca/{sub_ca.pk}"])
    url = f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke?reason=KEY_COMPROMISE"
    r = requester.put(url)
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["error_code"] == 202 and body["request_id"] and str(body["request_id"]) in body["error_message"]
    req = ApprovalRequest.objects.get(pk=body["request_id"])
    assert (req.status, req.requested_by, req.interface, req.operation) == (ApprovalStatus.WAITING, "requester",
                                                                            "", "revoke")
    assert Certificate.objects.get(pk=leaf.pk).status == CertificateStatus.ACTIVE
    # The same request again stores a second request (EJBCA too), the certificate stays valid.
    assert requester.put(url).status_code == 202

    # The requester cannot approve their own request, even holding the approval rule.
    own = Actor(name="requester", kind="user", role_rules={"x": [("/", True)]})
    with pytest.raises(AuthorizationDenied):
        approvals.decide(own, req.pk, approve=True)
    first, second = approver("alice", sub_ca), approver("bob", sub_ca)
    approvals.decide(first, req.pk, approve=True, comment="checked the ticket")
    assert ApprovalRequest.objects.get(pk=req.pk).status == ApprovalStatus.WAITING
    assert Certificate.objects.get(pk=leaf.pk).status == CertificateStatus.ACTIVE
    with pytest.raises(ConflictError, match="decided on this request already"):
        approvals.decide(first, req.pk, approve=True)
    approvals.decide(second, req.pk, approve=True)
    req.refresh_from_db()
    assert req.status == ApprovalStatus.APPROVED
    cert = Certificate.objects.get(pk=leaf.pk)
    assert (cert.status, cert.revocation_reason) == (CertificateStatus.REVOKED, 1)
    with pytest.raises(ConflictError, match="approved already"):
        approvals.decide(approver("carol", sub_ca), req.pk, approve=True)
    events = list(AuditEvent.objects.filter(object_type="approval", object_id=str(req.pk))
                  .values_list("event_type", "actor", "outcome"))
    assert ("APPROVAL_REQUEST", "requester", "SUCCESS") in events
    assert ("APPROVAL_APPROVE", "alice", "SUCCESS") in events and ("APPROVAL_APPROVE", "bob", "SUCCESS") in events
    assert ("APPROVAL_EXECUTE", "bob", "SUCCESS") in events
    assert ("APPROVAL_APPROVE", "requester", "FAILURE") in events  # the refused self-approval is on record
    assert AuditEvent.objects.filter(event_type="CERT_REVOKED", object_id=leaf.serial).count() == 1


def test_only_the_profiles_roles_may_approve(actor, sub_ca, leaf):
    allowed_role = Role.objects.create(name="Security officers")
    req = _waiting_revocation(actor, sub_ca, leaf, roles=[allowed_role])
    outsider = approver("mallory", sub_ca)  # has the approval rule and the CA, not the role
    with pytest.raises(AuthorizationDenied, match="not an approver role"):
        approvals.decide(outsider, req.pk, approve=True)
    officer = approver("olga", sub_ca)
    officer.role_rules[allowed_role.name] = []
    approvals.decide(officer, req.pk, approve=True)
    assert ApprovalRequest.objects.get(pk=req.pk).approvals.count() == 1


@pytest.mark.parametrize("rules", [
    ["/ca_functionality/view_certificate"],  # no approval rule
    ["/ra_functionality/approve_end_entity"],  # not the request's CA
])
def test_an_approver_needs_the_rule_and_the_ca(actor, sub_ca, leaf, rules):
    req = _waiting_revocation(actor, sub_ca, leaf)
    who = Actor(name="eve", kind="user", role_rules={"r": [(r, True) for r in rules]})
    with pytest.raises(AuthorizationDenied):
        approvals.decide(who, req.pk, approve=True)
    assert not ApprovalRequest.objects.get(pk=req.pk).approvals.exists()


def test_an_expired_request_cannot_be_approved(actor, sub_ca, leaf):
    req = _waiting_revocation(actor, sub_ca, leaf)
    ApprovalRequest.objects.filter(pk=req.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    everything = ApprovalRequest.objects.all()
    assert not approvals.with_status(everything, "WAITING").exists()  # no longer listed as waiting
    assert list(approvals.with_status(everything, "EXPIRED")) == [req]
    with pytest.raises(ConflictError, match="expired"):
        approvals.decide(approver("alice", sub_ca), req.pk, approve=True)
    assert ApprovalRequest.objects.get(pk=req.pk).status == ApprovalStatus.EXPIRED
    assert Certificate.objects.get(pk=leaf.pk).status == CertificateStatus.ACTIVE


def test_one_rejection_rejects(actor, sub_ca, leaf):
    req = _waiting_revocation(actor, sub_ca, leaf)
    approvals.decide(approver("alice", sub_ca), req.pk, approve=True)
    approvals.decide(approver("bob", sub_ca), req.pk, approve=False, comment="wrong certificate")
    req.refresh_from_db()
    assert req.status == ApprovalStatus.REJECTED
    assert list(req.approvals.values_list("admin", "approved", "comment")) == [
        ("alice", True, ""), ("bob", False, "wrong certificate")]
    assert Certificate.objects.get(pk=leaf.pk).status == CertificateStatus.ACTIVE


def _waiting_revocation(actor, ca, leaf, roles=()) -> ApprovalRequest:
    two_step(actor, ca, roles)
    requester = Actor(name="requester", kind="user", role_rules={"r": [("/", True)]})
    with pytest.raises(approvals.WaitingForApproval) as waiting:
        from pki.revocation import revoke

        revoke(requester, leaf, "superseded")
    return waiting.value.request


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_execute_once(ca_factory, actor, csr_factory, builtin_profiles):
    """Three approvers of a two-approval request at the same moment: two approvals count, the third is refused,
    the revocation runs once."""
    ca = ca_factory("ConcurrentCA")
    leaf = server_leaf(ca, actor, csr_factory)
    req = _waiting_revocation(actor, ca, leaf)
    approvers = [approver(n, ca) for n in ("a1", "a2", "a3")]
    barrier = threading.Barrier(len(approvers))
    outcomes: list[str] = []

    def decide(who: Actor) -> None:
        try:
            barrier.wait()
            approvals.decide(who, req.pk, approve=True)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(a,)) for a in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok", "ok"]
    req.refresh_from_db()
    assert req.status == ApprovalStatus.APPROVED and req.approvals.count() == 2
    assert AuditEvent.objects.filter(event_type="CERT_REVOKED", object_id=leaf.serial).count() == 1
    assert AuditEvent.objects.filter(event_type="APPROVAL_EXECUTE", object_id=str(req.pk)).count() == 1


def test_ca_activation_under_approval(actor, root_ca):
    profile = approvals.save_profile(actor, name="CA ops", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.CA_ACTIVATION, profile, ca=root_ca)
    set_ca_active(actor, root_ca, False)  # deactivating needs no approval (EJBCA: "offline to online")
    operator = Actor(name="operator", kind="user",
                     role_rules={"ops": [("/ca_functionality/activate_ca", True), (f"/ca/{root_ca.pk}", True)]})
    with pytest.raises(approvals.WaitingForApproval) as waiting:
        set_ca_active(operator, root_ca, True)
    root_ca.refresh_from_db()
    assert root_ca.status == CAStatus.OFFLINE
    ra_approver = approver("ra-only", root_ca)  # approve_end_entity is not approve_caaction
    with pytest.raises(AuthorizationDenied):
        approvals.decide(ra_approver, waiting.value.request_id, approve=True)
    ca_approver = Actor(name="ca-approver", kind="user", role_rules={"c": [
        (approvals.APPROVE_CA_RULE, True), (f"/ca/{root_ca.pk}", True)]})
    approvals.decide(ca_approver, waiting.value.request_id, approve=True)
    root_ca.refresh_from_db()
    assert root_ca.status == CAStatus.ACTIVE


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/approvals/999999/", 404),
    ("/api/v1/approvals/abc/", 404),
    ("/api/v1/approvals/%C2%B9/", 404),
    ("/api/v1/approvals/?status=NOPE", 400),
])
def test_rest_reads_refuse_bad_ids(db, path, status):
    client = make_client("reader", ["/"])
    r = client.get(path)
    assert r.status_code == status and "error_message" in r.json()


def test_rest_lists_reads_and_decides(actor, sub_ca, ca_factory, leaf):
    req = _waiting_revocation(actor, sub_ca, leaf)
    other_ca = ca_factory("ElsewhereCA")
    blind = make_client("blind", [*APPROVER_RULES, f"/ca/{other_ca.pk}"])  # not this CA
    assert blind.get("/api/v1/approvals/").json() == []
    assert blind.get(f"/api/v1/approvals/{req.pk}/").status_code == 404
    assert blind.post(f"/api/v1/approvals/{req.pk}/approve", {}, format="json").status_code == 404
    alice = make_client("alice", [*APPROVER_RULES, f"/ca/{sub_ca.pk}"])
    listed = alice.get("/api/v1/approvals/").json()
    assert [r["id"] for r in listed] == [req.pk] and listed[0]["data"]["serial"] == leaf.serial
    assert alice.post(f"/api/v1/approvals/{req.pk}/approve", {"comment": "x" * 2001}, format="json").status_code == 400
    r = alice.post(f"/api/v1/approvals/{req.pk}/approve", {"comment": "ok"}, format="json")
    assert r.status_code == 200 and r.json()["approvals"][0]["comment"] == "ok"
    assert r.json()["status"] == "WAITING"
    bob = make_client("bob", [*APPROVER_RULES, f"/ca/{sub_ca.pk}"])
    assert bob.post(f"/api/v1/approvals/{req.pk}/reject", {"comment": "no"}, format="json").json()["status"] \
        == "REJECTED"
    assert Certificate.objects.get(pk=leaf.pk).status == CertificateStatus.ACTIVE


def test_an_approval_profile_in_use_cannot_be_deleted(actor, root_ca):
    profile = approvals.save_profile(actor, name="Used", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.REVOCATION, profile, ca=root_ca)
    with pytest.raises(ConflictError, match="TestRoot"):
        approvals.delete_profile(actor, profile)
    approvals.set_approval(actor, ApprovalAction.REVOCATION, None, ca=root_ca)
    approvals.delete_profile(actor, profile)
    assert not ApprovalProfile.objects.exists()


def test_direct_issuance_waits_on_the_admin_ui_and_the_cli(actor, sub_ca, csr_factory, tmp_path):
    """Issue for CSR and ``ca issuecert`` are enrollments: "Add/Edit End Entity" on the CA makes them wait."""
    import io

    from cryptography.hazmat.primitives.serialization import Encoding
    from django.core.management import CommandError, call_command

    from tests.pki.test_views_auth import ui_client

    profile = approvals.save_profile(actor, name="Issuance", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=sub_ca)
    server = CertificateProfile.objects.get(name="SERVER")
    csr, _ = csr_factory("CN=direct.example.com,O=Test")
    ui = ui_client("issuer", ["/administrator", "/ca_functionality/create_certificate",
                              "/ca_functionality/view_certificate", f"/ca/{sub_ca.pk}"])
    r = ui.post("/certificates/issue/", {"ca": sub_ca.pk, "certificate_profile": server.pk, "username": "direct",
                                         "csr_pem": csr.public_bytes(Encoding.PEM).decode()}, follow=True)
    assert "waiting for approval" in r.content.decode()
    assert not Certificate.objects.filter(username="direct").exists()
    req = ApprovalRequest.objects.get(operation="issue_csr")
    assert (req.requested_by, req.interface) == ("issuer", "admin")
    approvals.decide(approver("alice", sub_ca), req.pk, approve=True)
    req.refresh_from_db()
    assert req.status == ApprovalStatus.APPROVED and req.certificate.username == "direct"
    assert req.certificate.certificate.public_key() == csr.public_key()

    path = tmp_path / "req.csr"
    path.write_bytes(csr.public_bytes(Encoding.PEM))
    with pytest.raises(CommandError) as waiting:
        call_command("ca", "issuecert", "--caname", sub_ca.name, "--csr", str(path), "--certprofile", "SERVER",
                     stdout=io.StringIO())
    assert waiting.value.returncode == 3
    assert ApprovalRequest.objects.filter(operation="issue_csr", interface="cli", status="WAITING").count() == 1


def test_an_approved_revocation_keeps_its_invalidity_date(actor, sub_ca, leaf):
    """What the revoker said about the key compromise reaches the certificate (and the CRL) once approved."""
    from pki.revocation import revoke

    two_step(actor, sub_ca)
    compromised = (timezone.now() - dt.timedelta(days=3)).replace(microsecond=0)
    requester = Actor(name="requester", kind="user", role_rules={"r": [("/", True)]})
    with pytest.raises(approvals.WaitingForApproval) as waiting:
        revoke(requester, leaf, "keyCompromise", invalidity_date=compromised)
    for name in ("alice", "bob"):
        approvals.decide(approver(name, sub_ca), waiting.value.request.pk, approve=True)
    cert = Certificate.objects.get(pk=leaf.pk)
    assert (cert.status, cert.revocation_reason, cert.invalidity_date) == (CertificateStatus.REVOKED, 1, compromised)
