"""SCEP Configuration in a real browser: an invalid alias name is refused; an RA-mode alias is added, listed,
edited, answers GetCACaps on the live server, and after deletion in the browser the alias URL answers 404."""

import urllib.error
import urllib.request

import pytest

from endentities.models import EndEntityProfile
from pki import bootstrap
from protocols.scep.models import ScepAlias

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "ra-shared-secret-e2e-7f3k"


@pytest.fixture
def admin_login(monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-scep-password")
    bootstrap.run()
    return "admin", "e2e-scep-password"


@pytest.fixture
def ra_profile(admin_login):
    """An end entity profile for RA-mode enrollment (a clone of EMPTY needing no password), as the SCEP tests use."""
    from endentities.services import ensure_empty_profile
    from endentities.services.profiles import clone_profile, save_profile
    from pki.auth.access import Actor

    setup = Actor.system_actor("e2e-setup")
    profile = clone_profile(setup, ensure_empty_profile(), "SCEP_DEVICES")
    save_profile(setup, "SCEP_DEVICES", {"password_required": False}, profile)
    return EndEntityProfile.objects.get(name="SCEP_DEVICES")


def _log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("header .user")


def _get_ca_caps(base: str, alias: str) -> tuple[int, str]:
    url = f"{base}/ejbca/publicweb/apply/scep/{alias}/pkiclient.exe?operation=GetCACaps"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - the test's own live server
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _row(page, name: str):
    return page.locator("table tbody tr", has=page.locator(f"td:first-child a:text-is('{name}')"))


def test_scep_alias_add_edit_enroll_caps_delete(live_server, page, admin_login, ra_profile):
    user, password = admin_login
    page.on("dialog", lambda dialog: dialog.accept())
    _log_in(page, live_server.url, user, password)

    page.click("nav >> text=SCEP Configuration")
    page.wait_for_selector("h1:has-text('SCEP Configuration')")
    assert page.url.endswith("/system/scep/")
    before = set(ScepAlias.objects.values_list("name", flat=True))

    # An invalid name: the form comes back with an error on the name field and nothing is created
    page.click("text=Add alias")
    page.wait_for_selector("h1:has-text('Add SCEP alias')")
    page.fill("#id_name", "bad name!")
    page.click("button[type=submit]:has-text('Save')")
    page.wait_for_selector(".field.has-error #id_name")
    assert page.locator(".field.has-error:has(#id_name) .errorlist li").count() >= 1
    assert set(ScepAlias.objects.values_list("name", flat=True)) == before

    # Add devices-1 in RA mode with the RA CA, certificate profile, end entity profile and secret chosen here
    page.fill("#id_name", "devices-1")
    page.check("input[name=operation_mode][value=ra]")
    page.check("#id_allow_des")
    page.select_option("#id_ra_end_entity_profile", label="SCEP_DEVICES")
    page.select_option("#id_ra_certificate_profile", label="ENDUSER")
    page.select_option("#id_ra_default_ca", label="ManagementCA")
    page.fill("#id_ra_auth_password", SECRET)
    page.click("button[type=submit]:has-text('Save')")
    page.wait_for_selector("text=SCEP alias 'devices-1' saved.")
    assert page.url.endswith("/system/scep/")
    row = _row(page, "devices-1")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "RA" and cells[2] == "ManagementCA" and cells[3] == "yes" and "enabled" in cells[5]

    alias = ScepAlias.objects.select_related("ra_default_ca", "ra_certificate_profile",
                                             "ra_end_entity_profile").get(name="devices-1")
    assert alias.operation_mode == "ra" and alias.allow_des and alias.include_ca
    assert alias.ra_default_ca.name == "ManagementCA"
    assert alias.ra_certificate_profile.name == "ENDUSER"
    assert alias.ra_end_entity_profile_id == ra_profile.id
    assert alias.ra_auth_password and SECRET not in alias.ra_auth_password  # stored encrypted
    from protocols.scep import services

    assert services.secret(alias, "ra_auth_password") == SECRET

    # Edit: the secret is not shown back; turn "include CA" off and save (empty password keeps the stored one)
    row.locator("td:first-child a").click()
    page.wait_for_selector("h1:has-text('Edit SCEP alias devices-1')")
    assert SECRET not in page.content()
    assert page.input_value("#id_ra_auth_password") == ""
    assert page.is_checked("input[name=operation_mode][value=ra]")
    assert page.is_checked("#id_allow_des") and page.is_checked("#id_include_ca")
    page.uncheck("#id_include_ca")
    page.click("button[type=submit]:has-text('Save')")
    page.wait_for_selector("text=SCEP alias 'devices-1' saved.")
    assert _row(page, "devices-1").locator("td").nth(3).inner_text() == "no"
    alias.refresh_from_db()
    assert not alias.include_ca and alias.allow_des and alias.operation_mode == "ra"
    assert services.secret(alias, "ra_auth_password") == SECRET

    # A real SCEP request to the live server
    status, caps = _get_ca_caps(live_server.url, "devices-1")
    assert status == 200, caps
    assert caps.split("\n") == ["POSTPKIOperation", "Renewal", "SHA-512", "SHA-256", "SHA-1", "DES3", "AES",
                                "SCEPStandard"], caps

    # Delete in the browser: gone from the list, and the alias URL answers 404
    _row(page, "devices-1").locator("button:has-text('Delete')").click()
    page.wait_for_selector("text=SCEP alias 'devices-1' removed.")
    assert _row(page, "devices-1").count() == 0
    assert not ScepAlias.objects.filter(name="devices-1").exists()
    status, body = _get_ca_caps(live_server.url, "devices-1")
    assert status == 404, body
