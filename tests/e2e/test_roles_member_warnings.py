"""The role member form in a real browser warns about the risky matches as they are chosen (issue 11, items 2
and 12): a certificate member on the CN (serial is the safe choice), an OAuth member on a mutable claim."""

import pytest
from django.contrib.auth import get_user_model

from pki.models import AccessRule, Role, RoleMember, TrustedOAuthProvider

pytestmark = pytest.mark.django_db(transaction=True)


def test_member_form_shows_the_warning_of_the_chosen_match(live_server, page, builtin_profiles):
    get_user_model().objects.create_user("warned-admin", password="warned-admin-password-1")
    supers = Role.objects.create(name="Supers")
    AccessRule.objects.create(role=supers, resource="/")
    RoleMember.objects.create(role=supers, match_type="LOCAL_USER", match_value="warned-admin")
    TrustedOAuthProvider.objects.create(label="Keycloak", issuer="https://kc.example/realms/pki", audience="pki")
    role = Role.objects.create(name="Integrations")

    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "warned-admin")
    page.fill("#id_password", "warned-admin-password-1")
    page.click("button[type=submit]")
    page.wait_for_selector("nav.side")
    page.goto(f"{live_server.url}/roles/{role.pk}/")

    cn, claim = "#member-warning-cn", "#member-warning-claim"
    page.select_option("#id_match_type", "LOCAL_USER")
    assert not page.is_visible(cn) and not page.is_visible(claim)
    page.select_option("#id_match_type", "CERTIFICATE_CN")
    assert page.is_visible(cn) and "safe choice" in page.inner_text(cn) and not page.is_visible(claim)
    page.select_option("#id_match_type", "CERTIFICATE_SERIAL")
    assert not page.is_visible(cn)
    page.select_option("#id_match_type", "OAUTH_CLAIM")
    for value, shown in [("sub", False), ("email", True), ("groups", False), ("preferred_username", True)]:
        page.select_option("#id_claim", value)
        assert page.is_visible(claim) is shown, value
    assert "sub (or oid for Azure)" in page.inner_text(claim)
