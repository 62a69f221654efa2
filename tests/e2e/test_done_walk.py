"""Issue 16's "Done when", walked in Chromium as a new super administrator would, at desktop and at phone size
(390x844), with axe-core on every page of the walk (no serious or critical violation) and, on the phone, no page
scrolling sideways:

log in, create an RA user and a role from the RA Administrator template for one CA, log out; log in as that user
(one-time password changed first) and land on the RA portal; enroll with a pasted CSR (the subject is pre-filled
from it), download a P12 for a second request, revoke the first certificate; then as the administrator find that
certificate with the global search and see its revocation on the CRL's entries page."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from playwright.sync_api import expect

from pki import bootstrap
from pki.models import CRL, Certificate, CertificateAuthority

pytestmark = pytest.mark.django_db(transaction=True)

SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
NEW_PASSWORD = "Lantern-Harbor-Maple-27"
# The innermost elements reaching past the right edge of the screen: what makes a page scroll sideways
WIDEST_JS = """() => Array.from(document.querySelectorAll("body *")).filter(e => e.getBoundingClientRect().right >
  window.innerWidth + 1 && !Array.from(e.children).some(c => c.getBoundingClientRect().right > window.innerWidth + 1))
  .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")
  + " " + Math.round(e.getBoundingClientRect().right))"""


def _csr(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


class Walk:
    """The page, and after each step the checks every page of the walk must pass."""

    def __init__(self, page, base: str, axe, size: str):
        self.page, self.base, self.axe, self.size = page, base, axe, size
        self.problems: list[str] = []

    def check(self) -> None:
        self.page.wait_for_load_state()
        self.problems += self.axe(self.page)
        if self.size == "phone":
            scroll, inner = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if scroll > inner:
                wide = self.page.evaluate(WIDEST_JS)
                self.problems.append(f"{self.page.url}: scrolls sideways ({scroll} > {inner}): {wide}")

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.check()

    def log_in(self, user: str, password: str) -> None:
        self.goto("/login/")
        self.page.fill("#id_username", user)
        self.page.fill("#id_password", password)
        self.page.click("main button[type=submit]")
        self.page.wait_for_selector("header .user")
        self.check()

    def log_out(self) -> None:
        self.page.click("header button:has-text('Log out')")
        self.page.wait_for_url(re.compile(r".*/login/"))


@pytest.mark.parametrize("size", list(SIZES))
def test_done_when_walk(live_server, browser, axe, monkeypatch, size):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-walk-password")
    bootstrap.run()
    management = CertificateAuthority.objects.get(name="ManagementCA")
    context = browser.new_context(viewport=SIZES[size], has_touch=size == "phone", accept_downloads=True)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmation of Revoke
    walk = Walk(page, live_server.url, axe, size)
    try:
        _walk(walk, page, management)
    finally:
        context.close()
    assert not walk.problems, "\n".join(walk.problems)


def _walk(walk: Walk, page, management) -> None:
    # The administrator creates the RA user and a role from the RA Administrator template for ManagementCA
    walk.log_in("admin", "e2e-walk-password")
    walk.goto("/users/new/")
    page.fill("#id_username", "raclerk")
    page.click("main button:has-text('Create user')")
    password = page.inner_text("#one-time-password").strip()
    walk.check()
    walk.goto("/roles/new/template/")
    page.fill("#id_name", "Clerks")
    page.check("input[name='template'][value='raadmin']")
    page.check(f"input[name='cas'][value='/ca/{management.pk}']")
    page.locator("input[name='profiles']").first.check()
    page.click("main button:has-text('Create role')")
    page.wait_for_selector("text=Add member")
    walk.check()
    page.select_option("#id_match_type", "LOCAL_USER")
    page.fill("#id_match_value", "raclerk")
    page.click("main button:has-text('Add member')")
    page.wait_for_selector("td:has-text('raclerk')")
    walk.log_out()

    # The RA user: one-time password changed, then the RA portal
    walk.log_in("raclerk", password)
    assert page.url.endswith("/account/password/")
    page.fill("#id_old_password", password)
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("main button:has-text('Change password')")
    page.wait_for_url(re.compile(r".*/ra/$"))
    walk.check()

    # Make New Request with a pasted CSR: the subject comes from the CSR
    walk.goto("/ra/enroll/")
    if page.locator("#id_username").count() == 0:  # more than one certificate type: choose the first
        page.select_option("#id_profile", index=1)
        page.wait_for_selector("#id_username")
    page.fill("#id_username", "walk-device")
    page.fill("#id_password", "walk-pass-1")
    page.fill("#id_password_confirm", "walk-pass-1")
    page.check("input[name=key-token_type][value='1']")
    page.fill("#id_key-csr_pem", _csr("walk-device.example.com"))
    page.locator("#id_key-csr_pem").dispatch_event("change")
    expect(page.locator("#id_dn_0")).to_have_value("walk-device.example.com", timeout=10_000)  # from the CSR
    walk.check()
    page.click("main button:has-text('Enroll')")
    page.wait_for_url(re.compile(r".*/ra/certificates/\d+/"))  # the issued certificate's page
    device = Certificate.objects.get(username="walk-device")
    assert f"/ra/certificates/{device.pk}/" in page.url
    walk.check()
    assert device.subject_dn == "CN=walk-device.example.com"

    # A P12 made on the server for a second request
    walk.goto("/ra/enroll/")
    if page.locator("#id_username").count() == 0:
        page.select_option("#id_profile", index=1)
        page.wait_for_selector("#id_username")
    page.fill("#id_username", "walk-p12")
    page.fill("#id_password", "walk-p12-pass")
    page.fill("#id_password_confirm", "walk-p12-pass")
    page.fill("#id_dn_0", "walk-p12.example.com")
    page.check("input[name=key-token_type][value='2']")
    page.select_option("#id_key-key_algorithm", "RSA2048")
    with page.expect_download() as download:
        page.click("main button:has-text('Enroll')")
    assert download.value.suggested_filename == "walk-p12.p12"
    key, cert, _ = pkcs12.load_key_and_certificates(open(download.value.path(), "rb").read(), b"walk-p12-pass")
    assert key is not None and cert.subject.rfc4514_string() == "CN=walk-p12.example.com"
    walk.check()

    # Revoke the CSR's certificate from Search ▸ Certificates
    walk.goto("/ra/certificates/?q=walk-device")
    page.click(f"main a[href='/ra/certificates/{device.pk}/']")
    walk.check()
    page.select_option("main select[name=reason]", "1")  # keyCompromise
    page.click("main button:has-text('Revoke')")
    page.wait_for_selector("text=Revocation reason")
    walk.check()
    assert Certificate.objects.get(pk=device.pk).status == "REVOKED"
    walk.log_out()

    # The administrator finds it by the global search and sees it on the CRL
    walk.log_in("admin", "e2e-walk-password")
    page.fill("header input[name=q]", device.serial.upper())
    page.press("header input[name=q]", "Enter")
    page.wait_for_url(re.compile(rf".*/certificates/{device.pk}/$"))
    assert "Revoked" in page.inner_text("main")
    walk.check()
    walk.goto("/crls/")
    before = CRL.objects.filter(ca=management).count()
    page.locator("main button:has-text('Create CRL')").first.click()
    for _ in range(100):  # made by a task (in-process without a broker); the page follows its progress
        if CRL.objects.filter(ca=management).count() > before:
            break
        page.wait_for_timeout(200)
    crl = CRL.objects.filter(ca=management, is_delta=False).order_by("-crl_number").first()
    walk.goto(f"/crls/{crl.pk}/entries/")
    row = page.locator(f"main tr:has-text('{device.serial.upper()}')")
    assert row.count() == 1 and "keyCompromise" in row.inner_text()
