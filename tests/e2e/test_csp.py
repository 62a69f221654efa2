"""Pages under the Content-Security-Policy in headless Chromium: Swagger UI and the pages whose scripts moved
out of the templates still work, and the browser reports no policy violation."""

import pytest
from django.contrib.auth import get_user_model

from pki.choices import MemberMatch
from pki.models import AccessRule, Role, RoleMember

pytestmark = pytest.mark.django_db(transaction=True)


def _violations(page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def test_swagger_ui_renders_under_the_policy(live_server, page):
    violations = _violations(page)
    r = page.goto(live_server.url + "/api/docs/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "pki REST API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path", timeout=20000)  # the operations from the schema
    assert not violations, violations


@pytest.fixture
def admin(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_user("csp-admin", password="csp-admin-pw")
    role = Role.objects.create(name="csp-admins")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="csp-admin")


def test_moved_scripts_still_work(live_server, page, admin, soft_token_factory, actor):
    from cryptotokens import services

    violations = _violations(page)
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "csp-admin")
    page.fill("#id_password", "csp-admin-pw")
    page.click("button[type=submit]")
    page.wait_for_selector("header .user")
    # Create crypto token: the token type chooses which group of fields shows (static/cryptotokens/token-type.js)
    page.goto(live_server.url + "/cryptotokens/new/")
    groups = page.locator(".backend-fields")
    assert groups.count() > 1
    # Soft (the default type) has no fields of its own; PKCS#11 has its group
    assert sum(groups.nth(i).is_visible() for i in range(groups.count())) == 0
    page.select_option("#id_token_type", "PKCS11CryptoToken")
    assert sum(groups.nth(i).is_visible() for i in range(groups.count())) == 1
    # Remove a key pair: asks first (data-confirm instead of onclick); dismissing keeps the key
    token = soft_token_factory("CspToken")
    services.generate_key_pair(actor, token, "csp-key", "P-256")
    page.goto(live_server.url + f"/cryptotokens/{token.pk}/")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("button:has-text('Remove')")
    assert asked and asked[0].startswith("Remove key pair")
    assert token.key_pairs.filter(alias="csp-key").exists()
    assert not violations, violations
