"""Roles and Access Rules in a real browser: the super administrator makes a role, adds a member, sets its
rules with the tri-state tree; the member then sees exactly what the rules allow."""

import pytest
from django.contrib.auth import get_user_model

from pki import bootstrap
from pki.models import AuditEvent, Role

pytestmark = pytest.mark.django_db(transaction=True)


def _log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("nav.side, h1")


def test_make_a_role_and_its_member_sees_what_it_allows(live_server, page, monkeypatch, tmp_path):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-admin-password")
    bootstrap.run()
    get_user_model().objects.create_user("op1", password="operator-password-1")

    _log_in(page, live_server.url, "admin", "e2e-admin-password")
    page.click("nav.side >> text=Roles and access rules")
    for name in ["Super Administrator Role", "RA Administrator", "Auditor"]:
        assert page.locator(f"td a:text-is('{name}')").count() == 1
    page.click("text=Add role")
    page.fill("#id_name", "Operators")
    page.click("button:has-text('Create role')")

    # Lands on the rules tab: allow the dashboard and the audit log, deny crypto tokens.
    page.wait_for_selector("text=Save access rules")
    page.check("input[name='rule:/administrator'][value='allow']")
    page.check("input[name='rule:/audit/view'][value='allow']")
    page.check("input[name='rule:/cryptotoken'][value='deny']")
    page.screenshot(path=str(tmp_path / "rules.png"), full_page=False)
    page.click("button:has-text('Save access rules')")
    page.wait_for_selector("text=3 added")
    role = Role.objects.get(name="Operators")
    assert dict(role.rules.values_list("resource", "allowed")) == {
        "/administrator": True, "/audit/view": True, "/cryptotoken": False}
    assert page.is_checked("input[name='rule:/audit/view'][value='allow']")

    page.click("a[role=tab]:has-text('Members')")
    # The form shows what the match type uses.
    page.select_option("#id_match_type", "CERTIFICATE_SERIAL")
    assert page.is_visible("#id_issuer_ca") and not page.is_visible("#id_provider")
    page.select_option("#id_match_type", "OAUTH_CLAIM")
    assert page.is_visible("#id_provider") and page.is_visible("#id_claim") and not page.is_visible("#id_issuer_ca")
    page.select_option("#id_match_type", "LOCAL_USER")
    assert not page.is_visible("#id_provider") and not page.is_visible("#id_issuer_ca")
    page.fill("#id_match_value", "op1")
    page.click("button:has-text('Add member')")
    page.wait_for_selector("td.mono:text-is('op1')")
    assert AuditEvent.objects.filter(event_type="ROLE_ACCESS_USER_ADDITION", actor="admin").exists()

    page.click("button.logout")
    _log_in(page, live_server.url, "op1", "operator-password-1")
    nav = page.inner_text("nav.side")
    assert "Audit log" in nav and "Dashboard" in nav
    assert "Certificate authorities" not in nav and "Roles and access rules" not in nav and "Crypto tokens" not in nav
    page.goto(live_server.url + "/roles/")
    html = page.content()
    assert "Not authorized" in html and "/system_functionality/view_administrator_privileges" in html
