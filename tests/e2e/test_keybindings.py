"""Key bindings from the browser alone: an authentication binding on a new key, its certificate from ManagementCA
(refused with a profile that breaks the constraints), activation, renewal with history; an OCSP binding whose
answers `openssl ocsp` validates."""

from __future__ import annotations

import pytest

from keybindings.models import InternalKeyBinding
from pki import bootstrap
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateAuthority, CertificateProfile
from tests.conftest import pem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_login(monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-admin-password")
    bootstrap.run()
    return "admin", "e2e-admin-password"


def _log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")


def _create(page, nav_label: str, name: str) -> None:
    page.click(f"nav a:has-text('{nav_label}')")
    page.wait_for_selector(f"h1:has-text('{nav_label}')")
    page.click("a.button:has-text('Create')")
    page.fill("#id_name", name)
    page.select_option("#id_key_pair", "__new__")
    page.select_option("#id_new_key_token", label="ManagementCA")
    page.select_option("#id_key_spec", "P-256")
    page.click("button[type=submit]:has-text('Create')")
    page.wait_for_selector(f"h1:has-text('Key binding {name}')")


def _issue(page, profile: str) -> None:
    page.click("a.button:has-text('Issue certificate')")
    page.select_option("#id_ca", label="ManagementCA")
    page.select_option("#id_certificate_profile", label=profile)
    page.click("button[type=submit]:has-text('Issue certificate')")


def test_authentication_binding_from_the_browser(live_server, page, admin_login):
    _log_in(page, live_server.url, *admin_login)
    _create(page, "Remote Authenticators", "peer-client")
    assert page.inner_text("#binding-status") == "disabled"

    _issue(page, "SERVER")
    assert "extendedKeyUsage clientAuth is required" in page.inner_text(".errorlist")
    page.select_option("#id_certificate_profile", label="ENDUSER")
    page.click("button[type=submit]:has-text('Issue certificate')")
    page.wait_for_selector("h1:has-text('Key binding peer-client')")
    assert "valid" in page.inner_text("#certificate-state")

    page.click("button:has-text('Activate')")
    page.wait_for_selector("#binding-status:has-text('active')")
    first = InternalKeyBinding.objects.get(name="peer-client").certificate.serial

    page.click("button:has-text('Renew')")
    page.wait_for_selector("text=Renewed: new key")
    binding = InternalKeyBinding.objects.get(name="peer-client")
    assert binding.certificate.serial != first and binding.status == "ACTIVE"
    history = page.inner_text("#certificate-history")
    assert first.upper() in history

    page.click("nav a:has-text('Remote Authenticators')")
    row = page.inner_text("tr:has-text('peer-client')")
    assert "active" in row and binding.certificate.serial.upper() in row and "(valid)" in row


def test_ocsp_binding_from_the_browser_signs_what_openssl_validates(live_server, page, admin_login, actor,
                                                                     csr_factory, openssl):
    _log_in(page, live_server.url, *admin_login)
    _create(page, "OCSP Responders", "ocsp-mgmt")
    _issue(page, "OCSPSIGNER")
    page.wait_for_selector("h1:has-text('Key binding ocsp-mgmt')")
    page.click("button:has-text('Activate')")
    page.wait_for_selector("#binding-status:has-text('active')")

    ca = CertificateAuthority.objects.get(name="ManagementCA")
    binding = InternalKeyBinding.objects.get(name="ocsp-mgmt")
    csr, _ = csr_factory("CN=ocsp-leaf,O=Test")
    leaf = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr, username="ocsp-leaf")).row
    openssl.write("ca.pem", pem(ca.certificate))
    openssl.write("leaf.pem", pem(leaf.certificate))
    openssl.write("va.pem", pem(binding.certificate.certificate))
    out = openssl("ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem", "-url", live_server.url + "/ocsp",
                  "-CAfile", "ca.pem", "-VAfile", "va.pem", "-resp_text")
    text = out.stdout + out.stderr
    assert "Response verify OK" in text and "leaf.pem: good" in text
    assert "CN=ocsp-mgmt" in text or "CN = ocsp-mgmt" in text  # signed by the binding, not the CA
