"""Bulk revocation of end entities from the admin UI's and the RA portal's lists: each checked end entity is
revoked with its certificates as on its own page (rules, approval, audit), and the result page tells what
became of each; the lists sort by their columns."""

from __future__ import annotations

import re

import pytest

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate
from pki.models.approvals import ApprovalAction, ApprovalRequest
from pki.services import approvals
from tests.endentities import entities_support
from tests.pki.test_views_auth import ui_client

ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory


@pytest.fixture
def entities(entity_factory, ee_profile, ee_profile_factory, sub_ca, actor, csr_factory):
    """anna and rita (TestEEP, root CA; rita already revoked) and otto (Other, sub CA), each with a certificate."""
    from endentities.services import enroll_with_ra, revoke_end_entity

    other = ee_profile_factory("Other", ca=sub_ca)
    entity_factory("anna", subject_dn="CN=anna,O=Test,C=SE")
    entity_factory("rita", subject_dn="CN=rita,O=Test,C=SE")
    entity_factory("otto", subject_dn="CN=otto,O=Test,C=SE", profile=other)
    for name in ("anna", "rita", "otto"):
        csr, _ = csr_factory(f"CN={name}")
        enroll_with_ra(actor, name, csr=csr)
    revoke_end_entity(actor, "rita", 0)
    return {e.username: e for e in EndEntity.objects.all()}


def _states(page: str) -> dict[str, str]:
    return {name: state for state, name in
            re.findall(r'<tr data-state="(\w+)"><td class="mono wrap">(?:<a href="[^"]+">)?([^<]+)<', page)}


def test_each_row_is_revoked_gated_or_refused(db, builtin_profiles, entities, sub_ca, actor):
    admin = ui_client("eebulk", ["/"])
    approvers = approvals.save_profile(actor, name="Rev", approvals_required=1, request_expiration=600)
    approvals.set_approval(actor, ApprovalAction.REVOCATION, approvers, ca=sub_ca)
    page = admin.get("/endentities/?o=username").content.decode()
    assert re.findall(r'<a href="/endentities/\d+/">(\w+)</a>', page) == ["anna", "otto", "rita"]
    assert "Revoke selected" in page
    before = AuditEvent.objects.filter(event_type="RA_REVOKEDENDENTITY").count()
    r = admin.post("/endentities/revoke/", {"id": [entities[n].pk for n in ("anna", "otto", "rita")] + [987654],
                                           "reason": "1", "back": "o=username"})
    assert r.status_code == 200
    page = r.content.decode()
    assert _states(page) == {"anna": "done", "otto": "approval", "rita": "refused", "#987654": "missing"}
    assert EndEntity.objects.get(username="anna").status == EndEntityStatus.REVOKED
    assert Certificate.objects.get(username="anna").status == "REVOKED"
    assert EndEntity.objects.get(username="otto").status != EndEntityStatus.REVOKED
    assert Certificate.objects.get(username="otto").status == "ACTIVE"
    assert ApprovalRequest.objects.filter(operation="revoke_end_entity", status="WAITING").count() == 1
    assert "already revoked" in page and 'href="/endentities/?o=username"' in page
    assert AuditEvent.objects.filter(event_type="RA_REVOKEDENDENTITY").count() == before + 1


def test_ra_portal_bulk_revoke_only_reaches_what_the_role_may_see(db, builtin_profiles, entities, ee_profile, root_ca):
    """An RA administrator for TestEEP on the root CA: otto (Other, sub CA) is not found, anna is revoked."""
    from pki.services.role_templates import template_rules

    rules = template_rules("raadmin", [f"/ca/{root_ca.pk}"], [f"/endentityprofilesrules/{ee_profile.pk}"])
    ra = ui_client("rabulk", [rule for rule, allowed in rules.items() if allowed])
    page = ra.get("/ra/endentities/?o=-username").content.decode()
    assert re.findall(r'<a href="/ra/endentities/\d+/">(\w+)</a>', page) == ["rita", "anna"]
    r = ra.post("/ra/endentities/revoke/", {"id": [entities["anna"].pk, entities["otto"].pk], "reason": "0"})
    assert r.status_code == 200 and "ra-main" in r.content.decode()
    assert _states(r.content.decode()) == {"anna": "done", f"#{entities['otto'].pk}": "missing"}
    assert EndEntity.objects.get(username="otto").status != EndEntityStatus.REVOKED
    viewer = ui_client("raview", ["/ra_functionality/view_end_entity", f"/ca/{root_ca.pk}",
                                  f"/endentityprofilesrules/{ee_profile.pk}"])
    assert "Revoke selected" not in viewer.get("/ra/endentities/").content.decode()
    assert viewer.post("/ra/endentities/revoke/", {"id": [entities["rita"].pk], "reason": "0"}).status_code == 403
