"""Admin UI "Approval profiles": add and edit a profile, attach it to an action of a CA or certificate profile,
refusals (no rule, both targets, a profile in use, a duplicate name)."""

from __future__ import annotations

import pytest

from pki.models import AuditEvent, Role
from pki.models.approvals import ApprovalAction, ApprovalProfile, ApprovalSetting
from tests.pki.test_views_auth import ui_client

pytestmark = pytest.mark.django_db
EDITOR = ["/administrator", "/ca_functionality/edit_approval_profiles", "/ca_functionality/edit_ca", "/ca"]


def test_profiles_are_added_attached_and_protected(root_ca, builtin_profiles):
    ui = ui_client("supervisor", EDITOR)
    officers = Role.objects.create(name="Officers")
    r = ui.post("/approvalprofiles/new/", {"name": "Two officers", "approvals_required": "2",
                                           "request_expiration": "3600", "approver_roles": [officers.pk]})
    assert r.status_code == 302, r.content[:500]
    profile = ApprovalProfile.objects.get()
    assert (profile.approvals_required, list(profile.approver_roles.all())) == (2, [officers])
    dup = ui.post("/approvalprofiles/new/", {"name": "Two officers", "approvals_required": "1",
                                             "request_expiration": "3600"})
    assert dup.status_code in (400, 409) and "exists already" in dup.content.decode()
    r = ui.post("/approvalprofiles/settings/", {"action": ApprovalAction.REVOCATION, "approval_profile": profile.pk,
                                                "ca": root_ca.pk})
    assert r.status_code == 302
    assert ApprovalSetting.objects.get().ca == root_ca
    page = ui.get("/approvalprofiles/").content.decode()
    assert "Two officers" in page and "CA TestRoot" in page and "Officers" in page
    # In use: not deleted, the page says by whom.
    ui.post(f"/approvalprofiles/{profile.pk}/delete/")
    assert ApprovalProfile.objects.exists()
    assert "used by TestRoot" in ui.get("/approvalprofiles/").content.decode()
    r = ui.post(f"/approvalprofiles/{profile.pk}/edit/", {"name": "Two officers", "approvals_required": "3",
                                                         "request_expiration": "600"})
    assert r.status_code == 302 and ApprovalProfile.objects.get().approvals_required == 3
    ui.post("/approvalprofiles/settings/", {"action": ApprovalAction.REVOCATION, "approval_profile": "",
                                            "ca": root_ca.pk})
    assert not ApprovalSetting.objects.exists()
    ui.post(f"/approvalprofiles/{profile.pk}/delete/")
    assert not ApprovalProfile.objects.exists()
    assert set(AuditEvent.objects.filter(object_type__in=["approvalprofile", "ca"], event_type__startswith="APPROVAL")
               .values_list("event_type", flat=True)) == {"APPROVAL_PROFILE_ADD", "APPROVAL_PROFILE_EDIT",
                                                          "APPROVAL_PROFILE_DELETE", "APPROVAL_SETTINGS_EDIT"}


@pytest.mark.parametrize(("data", "reason"), [
    ({"ca": "both", "certificate_profile": "both"}, "either a CA or a certificate profile"),
    ({}, "either a CA or a certificate profile"),
    ({"ca": "999999"}, "Select a valid choice"),
    ({"ca": "ca", "action": "KEYRECOVER"}, "Select a valid choice"),
])
def test_setting_refusals_change_nothing(root_ca, profile, data, reason):
    ui = ui_client("supervisor", EDITOR)
    one = ApprovalProfile.objects.create(name="One")
    post = {"action": ApprovalAction.REVOCATION, "approval_profile": one.pk}
    for key, value in data.items():
        post[key] = {"both": root_ca.pk if key == "ca" else profile.pk, "ca": root_ca.pk}.get(value, value)
    r = ui.post("/approvalprofiles/settings/", post, follow=True)
    assert reason in r.content.decode()
    assert not ApprovalSetting.objects.exists()


def test_without_the_rule_nothing_is_shown_or_changed(root_ca):
    ui = ui_client("viewer", ["/administrator", "/ca_functionality/view_ca"])
    assert ui.get("/approvalprofiles/").status_code == 403
    assert ui.post("/approvalprofiles/new/", {"name": "x", "approvals_required": "1",
                                              "request_expiration": "600"}).status_code == 403
    one = ApprovalProfile.objects.create(name="One")
    ui.post("/approvalprofiles/settings/", {"action": ApprovalAction.REVOCATION, "approval_profile": one.pk,
                                            "ca": root_ca.pk})
    assert not ApprovalSetting.objects.exists()  # the service wants /ca_functionality/edit_ca
    assert ApprovalProfile.objects.count() == 1
