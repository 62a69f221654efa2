"""Local users and role templates in a real browser: the super administrator creates an RA user, makes an RA
Administrator role from the template for one CA and profile, adds the user; the user logs in with the one-time
password, must choose their own first, then lands on the RA portal, where no link answers 403."""

import re

import pytest

from pki import bootstrap
from pki.models import AccessRule, AuditEvent, CertificateAuthority, Role

pytestmark = pytest.mark.django_db(transaction=True)
NEW_PASSWORD = "Kite-Bridge-Ocean-91"


def _log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("h1")


def test_new_ra_user_from_template_lands_on_the_ra_portal(live_server, page, monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-admin-password")
    bootstrap.run()
    management = CertificateAuthority.objects.get(name="ManagementCA")

    _log_in(page, live_server.url, "admin", "e2e-admin-password")
    assert page.url == live_server.url + "/"  # a super administrator lands on the dashboard
    page.click("nav.side >> text=Local users")
    page.click("text=Add user")
    page.fill("#id_username", "raclerk")
    page.click("button:has-text('Create user')")
    password = page.inner_text("#one-time-password").strip()
    assert len(password) >= 20

    page.click("nav.side >> text=Roles and access rules")
    page.click("text=New role from template")
    page.fill("#id_name", "Clerks")
    page.check("input[name='template'][value='raadmin']")
    page.check(f"input[name='cas'][value='/ca/{management.pk}']")
    page.locator("input[name='profiles']").first.check()
    page.click("button:has-text('Create role')")
    page.wait_for_selector("text=Add member")
    page.select_option("#id_match_type", "LOCAL_USER")
    page.fill("#id_match_value", "raclerk")
    page.click("button:has-text('Add member')")
    page.wait_for_selector("td:has-text('raclerk')")
    assert AccessRule.objects.filter(role=Role.objects.get(name="Clerks"), resource=f"/ca/{management.pk}").exists()
    page.click("button:has-text('Log out')")
    page.wait_for_url(re.compile(r".*/login/"))

    _log_in(page, live_server.url, "raclerk", password)
    assert page.url.endswith("/account/password/")
    page.goto(live_server.url + "/ra/")  # nothing else opens before the password is changed
    assert page.url.endswith("/account/password/")
    page.fill("#id_old_password", password)
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("button:has-text('Change password')")
    page.wait_for_url(re.compile(r".*/ra/$"))

    links = {h for h in page.eval_on_selector_all("a[href^='/']", "els => els.map(e => e.getAttribute('href'))")
             if not h.startswith("/static/")}
    assert links
    for link in sorted(links):
        response = page.request.get(live_server.url + link)
        assert response.status != 403, link
    assert AuditEvent.objects.filter(event_type="USER_PASSWORD_CHANGE", actor="raclerk").exists()
