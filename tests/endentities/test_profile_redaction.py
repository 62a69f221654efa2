"""Subject name log redaction: the profile's flag or the system-wide setting replaces DN and SAN in log
lines and audit details."""

import pytest
from django.test import override_settings

from endentities.subject import REDACTED, needs_redaction, redact_details, redact_subject
from tests.endentities.profile_support import make_profile


@pytest.mark.parametrize(
    ("profile_flag", "system", "redacted"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_redaction_by_profile_or_system(profile_flag, system, redacted):
    profile = make_profile(redact_subject=profile_flag)
    with override_settings(PKI_REDACT_SUBJECT_NAMES=system):
        assert needs_redaction(profile) is redacted
        dn = redact_subject("CN=Alice,O=Org", profile)
        assert dn == (REDACTED if redacted else "CN=Alice,O=Org")
        details = redact_details({"username": "alice", "subject_dn": "CN=Alice", "subject_alt_name": "DNSNAME=a",
                                  "subject": "CN=Alice", "ca": "Root"}, profile)
        assert details["username"] == "alice" and details["ca"] == "Root"
        for key in ("subject_dn", "subject_alt_name", "subject"):
            assert (details[key] == REDACTED) is redacted


def test_empty_values_stay_empty_and_flags_work_without_a_profile():
    assert redact_subject("", True) == "" and redact_subject(None, True) is None
    assert redact_subject("CN=x", True) == REDACTED and redact_subject("CN=x", None) == "CN=x"
