"""The audit log shows a profile edit as what it changed: the edit services record ``changes`` (field, before,
after) and the log page shows them in a collapsed table."""

from __future__ import annotations

import pytest

from endentities.services.profiles import save_profile as save_ee_profile
from pki.audit import changed_fields
from pki.models import AuditEvent, CertificateProfile
from pki.services.profiles import clone_profile, save_profile
from tests.endentities.profile_support import field
from tests.pki.test_views_auth import ui_client

CHANGES = [
    ({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}, {}),
    ({"a": 1}, {"a": 2}, {"a": {"before": 1, "after": 2}}),
    ({}, {"new": "x"}, {"new": {"before": None, "after": "x"}}),
    ({"l": [1]}, {"l": [1, 2]}, {"l": {"before": [1], "after": [1, 2]}}),
]


@pytest.mark.parametrize(("before", "after", "expected"), CHANGES)
def test_changed_fields(before, after, expected):
    assert changed_fields(before, after) == expected


def test_profile_edits_are_audited_and_shown_as_a_diff(db, actor, builtin_profiles):
    mine = clone_profile(actor, CertificateProfile.objects.get(name="SERVER"), "MyServer")
    assert "changes" not in AuditEvent.objects.get(event_type="CERTPROFILE_CREATION").details
    save_profile(actor, "MyServer", {"validity": "90d", "description": "short lived"}, mine)
    event = AuditEvent.objects.get(event_type="CERTPROFILE_EDIT")
    assert event.details["changes"]["validity"]["after"] == "90d"
    assert event.details["changes"]["validity"]["before"] != "90d"
    assert set(event.details["changes"]) == {"validity", "description"}

    values = {"description": "Web users", "subject_dn_fields": [field("CN", required=True)],
              "available_token_types": [1], "default_token_type": 1}
    web = save_ee_profile(actor, "Web", values)
    save_ee_profile(actor, "Web", {**values, "description": "Web servers",
                                   "subject_dn_fields": [field("CN", required=True), field("O")]}, web)
    ee_event = AuditEvent.objects.get(event_type="RA_EDITEEPROFILE")
    assert set(ee_event.details["changes"]) == {"description", "subject_dn_fields"}

    page = ui_client("auditdiff", ["/"]).get("/audit/").content.decode()
    assert page.count('<details class="changes"><summary>2 fields changed</summary>') == 2
    assert '<th scope="row">validity</th>' in page and '<td class="after">90d</td>' in page
    assert '<td class="before">Web users</td><td class="after">Web servers</td>' in page
