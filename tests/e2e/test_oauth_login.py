"""OpenID Connect login in a real browser against a real OP (oidc-provider): click the provider's button,
sign in at the OP, land in the admin UI with the role's menu; a user without a role sees "not authorized";
logging out ends the OP session too."""

from __future__ import annotations

import re

import pytest

from pki.auth.access import Actor
from pki.auth.oauth import clear_memos
from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, Role, RoleMember
from pki.services import oauth as oauth_services
from tests.support.oidc_op.op import start_op

pytestmark = pytest.mark.django_db(transaction=True)

USER_GROUPS = {"alice": ["pki-auditors"], "mallory": ["nothing-here"]}


@pytest.fixture(scope="module")
def op():
    return start_op("browser-op", user_groups=USER_GROUPS)


@pytest.fixture
def provider(op, live_server):
    client = op.register(
        grant_types=["authorization_code"], response_types=["code"],
        redirect_uris=[f"{live_server.url}/oidc/callback/"],
        post_logout_redirect_uris=[f"{live_server.url}/login/"],
        token_endpoint_auth_method="client_secret_post",
    )
    row = oauth_services.save_provider(
        Actor.system_actor("test"),
        {"label": "Test IdP", "issuer": op.issuer, "client_id": client["client_id"], "audience": "urn:pki:test",
         "scopes": "openid profile email groups", "user_claim": "preferred_username"},
        client_secret=client["client_secret"],
    )
    role = Role.objects.create(name="Auditors")
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in ("/administrator", "/audit/view")])
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=row, claim="groups",
                              match_value="pki-auditors")
    clear_memos()
    yield row
    clear_memos()


def sign_in_at_op(page, login: str) -> None:
    """oidc-provider's development login and consent pages."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("button[autofocus], button[type=submit]").count() and "/interaction/" in page.url:
        page.click("button[type=submit]")  # consent: "Continue"


def test_login_with_provider_button_lands_with_role_menu(page, live_server, provider):
    page.goto(live_server.url + "/login/")
    button = page.get_by_role("link", name="Sign in with Test IdP")
    assert button.count() == 1
    button.click()
    assert page.url.startswith(provider.issuer)
    sign_in_at_op(page, "alice")
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/($|\?)"))
    nav = page.locator("nav").inner_text()
    assert "Audit log" in nav
    assert "Certificate authorities" not in nav  # the role has no /ca_functionality rules
    assert f"oauth-{provider.pk}:alice" in page.content()
    page.goto(live_server.url + "/audit/")
    assert "Not authorized" not in page.content()
    assert AuditEvent.objects.filter(event_type="LOGIN", actor=f"oauth-{provider.pk}:alice").exists()

    # Logout goes on to the OP's end_session_endpoint (RP-initiated logout), which ends its session.
    page.locator("form[action='/logout/'] button").click()
    page.wait_for_load_state()
    assert page.url.startswith(provider.end_session_endpoint)
    page.click("button[autofocus], button[type=submit]")  # the OP's "sign out?" confirmation
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/login/"))
    # The OP session is gone: signing in again asks for the login again.
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.wait_for_selector("input[name=login]")


def test_user_without_role_sees_not_authorized(page, live_server, provider):
    page.goto(live_server.url + "/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    sign_in_at_op(page, "mallory")
    # No role: the start page sends them to their own account page, which says so (not a 403 loop)...
    page.wait_for_url(re.compile(re.escape(live_server.url) + r"/account/$"))
    content = page.content()
    assert "ask an administrator to make you a member of a role" in content
    assert "Traceback" not in content and "Server Error" not in content
    # ...and every admin page they try still answers "Not authorized".
    page.goto(live_server.url + "/")
    assert "Not authorized" in page.content()
