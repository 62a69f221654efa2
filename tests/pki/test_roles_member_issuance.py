"""Issuing is no way into a role (issue 11, item 2).

A client-certificate role member matches on issuing CA + CN, so a certificate with that CN from that CA is a
login as the member. The attack: an RA operator, who may enroll from the CA, pkcs10enrolls a CSR for
``CN=<an administrator member's CN>`` and logs in as that administrator. The pipeline now refuses such a
certificate unless the caller may edit the role, for every interface (REST here; the RA portal, SCEP and the
CLI reach the same check in pki.issuance), audits the refusal and stores nothing.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from endentities.models import EndEntity
from pki.auth.access import Actor
from pki.bootstrap import DEFAULT_ROLES
from pki.choices import MemberMatch
from pki.errors import RoleMemberMatchDenied
from pki.issuance import IssuanceRequest, issue
from pki.models import AccessRule, AuditEvent, Certificate, CertificateProfile, Role, RoleMember
from tests.endentities.entities_support import *  # noqa: F403  (ee_profile)
from tests.pki.test_api_auth import V1, fast_password_hashing, make_client  # noqa: F401 (autouse fixture)
from tests.protocols.scep.server_fixtures import alias_factory, scep_ca  # noqa: F401, F811 (fixtures)

ADMIN_CN = "pki-superadmin"
REASON = "would log in as a member of role 'Super Administrator Role'"
RA_ADMIN_RULES = [r for r, allowed in DEFAULT_ROLES["RA Administrator"][1] if allowed]  # includes /ca: every CA


@pytest.fixture
def admin_member(root_ca):
    """The Super Administrator role with a client-certificate member: CN=pki-superadmin from TestRoot."""
    role = Role.objects.create(name="Super Administrator Role")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.CERTIFICATE_CN, match_value=ADMIN_CN,
                              issuer_ca=root_ca)
    return role


def _enroll(client, csr_factory, cn: str, username: str):
    csr, _ = csr_factory(f"CN={cn},O=Test")
    return client.post(f"{V1}/certificate/pkcs10enroll", {
        "certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": username, "password": "foo123",
        "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
        "certificate_authority_name": "TestRoot"}, format="json")


def test_ra_operator_cannot_pkcs10enroll_an_administrators_cn(admin_member, ee_profile, csr_factory):
    ra = make_client("raop", RA_ADMIN_RULES)
    r = _enroll(ra, csr_factory, ADMIN_CN, "evil")
    assert r.status_code == 403, r.content
    assert "Super Administrator Role" in r.json()["error_message"]
    assert not Certificate.objects.filter(subject_dn__contains=ADMIN_CN).exists()
    assert not EndEntity.objects.filter(username="evil").exists()
    # The end entity and its certificate were one transaction: the refusal is audited after the rollback.
    refusal = AuditEvent.objects.filter(outcome="FAILURE", actor="raop").latest("sequence")
    assert refusal.event_type == "RA_ADDENDENTITY" and REASON in refusal.details["reason"]
    # The same operator still enrolls everyone else.
    assert _enroll(ra, csr_factory, "printer-17", "printer17").status_code == 201


def test_ra_operator_cannot_enroll_an_end_entity_with_an_administrators_cn(admin_member, entity_factory,
                                                                          csr_factory):
    """The end entity exists (its DN holds the administrator's CN): enrolling it with its code is refused too, and
    so is an RA operator's re-enrollment (which edits it to the request's subject, as EJBCA) with that CN."""
    entity_factory("evil2", subject_dn=f"CN={ADMIN_CN},O=Test")
    enroller = make_client("enroller", ["/ca_functionality/create_certificate", "/ca"])
    r = _enroll(enroller, csr_factory, "anything", "evil2")
    assert r.status_code == 403 and "Super Administrator Role" in r.json()["error_message"]
    r = _enroll(make_client("raop", RA_ADMIN_RULES), csr_factory, ADMIN_CN, "evil2")
    assert r.status_code == 403 and "Super Administrator Role" in r.json()["error_message"]
    assert not Certificate.objects.filter(username="evil2").exists()
    assert EndEntity.objects.get(username="evil2").status == 10  # NEW: the refused edit rolled back too
    for who in ("enroller", "raop"):
        refusals = AuditEvent.objects.filter(outcome="FAILURE", actor=who)
        assert any(REASON in (e.details.get("reason") or "") for e in refusals), who


def test_an_administrator_who_may_edit_the_role_may_issue_it(admin_member, ee_profile, csr_factory):
    assert _enroll(make_client("apiadmin", ["/"]), csr_factory, ADMIN_CN, "newadmin").status_code == 201
    assert Certificate.objects.filter(subject_dn=f"CN={ADMIN_CN},O=Test", username="newadmin").exists()


def _issue(ca, actor, csr_factory, cn: str):
    csr, _ = csr_factory(f"CN={cn},O=Test")
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr))


ROLE_EDITOR = ["/ca", "/ca_functionality", "/system_functionality/edit_administrator_privileges"]


@pytest.mark.parametrize(("who", "member", "cn", "refused"), [
    # who: the caller's rules (None: SCEP's actor for a client that proved only a shared secret or a code)
    (["/ca", "/ca_functionality"], "cn", ADMIN_CN, True),
    (None, "cn", ADMIN_CN, True),
    (["/ca", "/ca_functionality"], "cn", "someone-else", False),
    (["/ca", "/ca_functionality"], "cn-other-ca", ADMIN_CN, False),  # the member names another CA
    (["/ca", "/ca_functionality"], "serial", ADMIN_CN, False),  # serials are random: nothing to match ahead
    (ROLE_EDITOR, "cn", "auditor-cn", False),  # may edit the Auditors role: may issue its members' CN
    (ROLE_EDITOR, "cn", ADMIN_CN, True),  # may edit roles, but not one more powerful than itself
])
def test_members_matched_at_issuance(root_ca, sub_ca, csr_factory, who, member, cn, refused):
    supers = Role.objects.create(name="Supers")
    AccessRule.objects.create(role=supers, resource="/")
    auditors = Role.objects.create(name="Auditors")
    AccessRule.objects.create(role=auditors, resource="/ca_functionality/view_ca")
    match = {"cn": (MemberMatch.CERTIFICATE_CN, root_ca), "cn-other-ca": (MemberMatch.CERTIFICATE_CN, sub_ca),
             "serial": (MemberMatch.CERTIFICATE_SERIAL, root_ca)}[member]
    RoleMember.objects.create(role=supers, match_type=match[0], match_value=ADMIN_CN if member != "serial" else "1f",
                              issuer_ca=match[1])
    RoleMember.objects.create(role=auditors, match_type=MemberMatch.CERTIFICATE_CN, match_value="auditor-cn",
                              issuer_ca=root_ca)
    actor = Actor.client_proxy("scep:test") if who is None else Actor("caller", role_rules={"r": [(p, True)
                                                                                                   for p in who]})
    before = Certificate.objects.count()
    if refused:
        with pytest.raises(RoleMemberMatchDenied):
            _issue(root_ca, actor, csr_factory, cn)
        assert Certificate.objects.count() == before
    else:
        assert _issue(root_ca, actor, csr_factory, cn).row.pk


def test_the_command_line_may_issue_it(admin_member, root_ca, csr_factory):
    """The local command line runs with the server's own rights (it could edit any role)."""
    assert _issue(root_ca, Actor.system_actor("cli"), csr_factory, ADMIN_CN).row.pk


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])  # sqlite: the check in the storing transaction
def test_scep_ra_mode_cannot_issue_an_administrators_cn(scep_ca, alias_factory, client, monkeypatch,  # noqa: F811
                                                       vendor):
    """Anyone with an RA alias's shared secret enrolls through SCEP; the CN of a member of the alias's CA is refused
    with SCEP's own failure reply (badRequest), audited, nothing stored."""
    from django.db import connection

    from protocols.scep.messages import FailInfo, PkiStatus
    from tests.protocols.scep.server_fixtures import ScepTestClient, client_key, make_csr

    monkeypatch.setattr(connection, "vendor", vendor)

    alias_factory("scep", operation_mode="ra", ra_default_ca=scep_ca, ra_auth_password="s3cret",
                  ra_certificate_profile="ENDUSER", ra_end_entity_profile="EMPTY")
    supers = Role.objects.create(name="Supers")
    AccessRule.objects.create(role=supers, resource="/")
    RoleMember.objects.create(role=supers, match_type=MemberMatch.CERTIFICATE_CN, match_value=ADMIN_CN,
                              issuer_ca=scep_ca)
    scep = ScepTestClient(client)
    key = client_key(31)
    result = scep.enroll(make_csr(key, f"CN={ADMIN_CN},O=Elsewhere", "s3cret"), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not Certificate.objects.filter(ca=scep_ca, subject_dn__contains=ADMIN_CN).exists()
    assert not EndEntity.objects.filter(subject_dn__contains=ADMIN_CN).exists()
    refusal = AuditEvent.objects.filter(outcome="FAILURE", actor="scep:scep").latest("sequence")
    assert "would log in as a member of role 'Supers'" in refusal.details["reason"]
    key = client_key(32)
    assert scep.enroll(make_csr(key, "CN=device-9,O=Test", "s3cret"), key, scep_ca.certificate).status == \
        PkiStatus.SUCCESS


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
def test_a_member_added_after_signing_is_refused_when_storing(scep_ca, monkeypatch, vendor):  # noqa: F811
    """An enrollment checked and signed before its transaction (SCEP RA mode) is checked against the roles again
    when stored: a member added in between is no way in either."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from endentities.services import get_end_entity_profile, prepare_add_and_enroll_with_ra
    from endentities.validation import EndEntityInput
    from tests.protocols.scep.server_fixtures import client_key, make_csr

    monkeypatch.setattr(connection, "vendor", vendor)
    key = client_key(33)
    csr = make_csr(key, f"CN={ADMIN_CN},O=Elsewhere", "s3cret")
    actor = Actor.client_proxy("scep:test")
    data = EndEntityInput(username="late-member", ra_authenticated=True, subject_dn=f"CN={ADMIN_CN},O=Elsewhere",
                          ca=scep_ca, certificate_profile="ENDUSER", token_type=1)
    profile = get_end_entity_profile("EMPTY")  # made on first use
    with CaptureQueriesContext(connection) as signing:
        write = prepare_add_and_enroll_with_ra(actor, data, profile=profile, csr=csr, interface="scep")
    assert not [q for q in signing.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    supers = Role.objects.create(name="Supers")
    AccessRule.objects.create(role=supers, resource="/")
    RoleMember.objects.create(role=supers, match_type=MemberMatch.CERTIFICATE_CN, match_value=ADMIN_CN,
                              issuer_ca=scep_ca)
    with pytest.raises(RoleMemberMatchDenied), transaction.atomic():
        write()
    assert not Certificate.objects.filter(username="late-member").exists()
    assert not EndEntity.objects.filter(username="late-member").exists()


def test_an_approval_is_no_way_around_the_role_member_check(admin_member, ee_profile, csr_factory, actor, root_ca):
    """Under an approval profile the enrollment is stored and carried out later by the system, which may issue
    anything: the RA operator's request for the administrator's CN is refused when it is made, never stored for
    an approver to wave through."""
    from pki.models.approvals import ApprovalAction, ApprovalRequest
    from pki.services import approvals

    profile = approvals.save_profile(actor, name="OneApproval", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=root_ca)
    ra = make_client("raop", RA_ADMIN_RULES)
    r = _enroll(ra, csr_factory, ADMIN_CN, "evil3")
    assert r.status_code == 403, r.content
    assert not ApprovalRequest.objects.exists()
    assert not EndEntity.objects.filter(username="evil3").exists()
    refusal = AuditEvent.objects.filter(outcome="FAILURE", actor="raop").latest("sequence")
    assert REASON in refusal.details["reason"]
    # Anyone else's request still waits for its approval.
    assert _enroll(ra, csr_factory, "printer-18", "printer18").status_code == 202
    assert ApprovalRequest.objects.filter(username="printer18", status="WAITING").count() == 1


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])  # sqlite: the plain IN-list statement (run here)
@pytest.mark.parametrize(("subject_cns", "expected"), [
    ([ADMIN_CN], {"Super Administrator Role"}),
    (["someone-else"], set()),
    (["someone-else", ADMIN_CN], {"Super Administrator Role"}),  # any of the subject's CNs
    ([], set()),
])
def test_roles_matching_subject_on_either_database(admin_member, root_ca, sub_ca, monkeypatch, vendor,
                                                   subject_cns, expected):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from django.db import connection

    from pki.auth.clientcert import roles_matching_subject

    if vendor == "postgresql" and connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL statement needs PostgreSQL")
    RoleMember.objects.create(role=admin_member, match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=ADMIN_CN,
                              issuer_ca=root_ca)  # a serial member with the same value: not a CN match
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in subject_cns]
                        + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test")])
    monkeypatch.setattr(connection, "vendor", vendor)
    assert {name for _, name in roles_matching_subject(root_ca.pk, subject)} == expected
    assert roles_matching_subject(sub_ca.pk, subject) == []  # the members name TestRoot
