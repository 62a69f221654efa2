"""The admin UI in a real browser: log in, create a sub-CA, issue for a CSR, revoke, build a CRL."""

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from playwright.sync_api import expect

from pki import bootstrap
from pki.models import CRL, Certificate, CertificateAuthority

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_login(monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-admin-password")
    bootstrap.run()
    return "admin", "e2e-admin-password"


@pytest.fixture
def queued_crls(settings, monkeypatch):
    """CRLs go through the queue as with a broker: a stand-in worker thread picks the task up a moment later,
    so the page really has to poll the task status endpoint until the CRL is done."""
    import threading
    import time
    import uuid

    from celery.result import AsyncResult
    from django.db import connection

    from pki.tasks import create_crl_task

    settings.CELERY_TASK_ALWAYS_EAGER = False
    workers: list[threading.Thread] = []

    def delay(*args, **kwargs):
        task_id = str(uuid.uuid4())

        def work():
            time.sleep(1.0)
            try:
                create_crl_task.apply(args, kwargs, task_id=task_id)
            finally:
                connection.close()

        workers.append(threading.Thread(target=work, daemon=True))
        workers[-1].start()
        return AsyncResult(task_id)

    monkeypatch.setattr(create_crl_task, "delay", delay)
    yield
    for worker in workers:
        worker.join(timeout=30)


def _log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_operator_journey(live_server, page, admin_login, csr_factory, tmp_path, queued_crls):
    user, password = admin_login
    page.goto(live_server.url + "/")
    assert "/login/" in page.url
    _log_in(page, live_server.url, user, "wrong")
    assert page.locator(".errorlist").count() == 1
    _log_in(page, live_server.url, user, password)
    page.wait_for_selector("h1:has-text('Dashboard')")
    assert page.locator("svg.chart").count() == 2
    assert page.locator("header .user").inner_text() == user

    # Create a sub-CA of the ManagementCA on its token, with a new key pair
    page.click("nav >> text=Certificate authorities")
    page.click("text=Create CA")
    page.fill("#id_name", "E2E Issuing CA")
    page.fill("#id_subject_dn", "CN=E2E Issuing CA,O=PKI Demo,C=SE")
    page.select_option("#id_signed_by", label="ManagementCA")
    page.select_option("#id_crypto_token", label="ManagementCA")
    assert page.is_checked("input[name=key_source][value=generate]")
    page.fill("#id_key_alias", "e2eKey")
    page.select_option("#id_key_spec", "P-256")
    page.fill("#id_validity", "3y")
    page.click("button:has-text('Create CA')")
    page.wait_for_selector("h1:has-text('CA E2E Issuing CA')")
    ca = CertificateAuthority.objects.get(name="E2E Issuing CA")
    assert ca.signed_by.name == "ManagementCA"
    ca.certificate.verify_directly_issued_by(ca.signed_by.certificate)

    # Issue a certificate for a CSR
    csr, _ = csr_factory("CN=browser.example.com,O=PKI Demo")
    page.click("nav >> text=Issue for CSR")
    page.select_option("#id_ca", label="E2E Issuing CA")
    page.select_option("#id_certificate_profile", label="SERVER")
    page.fill("#id_csr_pem", csr.public_bytes(Encoding.PEM).decode())
    page.fill("#id_subject_alt_name", "DNSNAME=browser.example.com")
    page.fill("#id_username", "browser")
    page.click("button:has-text('Issue certificate')")
    page.wait_for_selector("text=issued")
    cert = Certificate.objects.get(ca=ca, subject_dn="CN=browser.example.com,O=PKI Demo")
    assert "DNSNAME=browser.example.com" in page.content()
    with page.expect_download() as download:
        page.click("text=PEM with chain")
    chain = x509.load_pem_x509_certificates(open(download.value.path(), "rb").read())
    assert len(chain) == 3 and chain[0].serial_number == cert.serial_int

    # Revoke it (the browser asks for confirmation first)
    page.select_option("#id_reason", label="keyCompromise")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Revoke')")
    page.wait_for_selector("text=is now revoked")
    cert.refresh_from_db()
    assert (cert.status, cert.revocation_reason) == ("REVOKED", 1)

    # Build a CRL with the button; the page follows the queued task and then shows the new CRL
    page.click("nav >> text=CRLs")
    page.click(f"#ca-{ca.pk} >> button:has-text('Create CRL')")
    page.wait_for_selector("#task-bar")
    page.wait_for_selector("text=Done: CRL #2 with 1 entries.", timeout=15_000)  # #1 came with the CA
    # The CA had a CRL (#1) before: wait for the page to leave the task view, then for the new one on it.
    # (Polled rather than awaited as a navigation, which a loaded machine may finish before the wait begins.)
    deadline = time.monotonic() + 30
    while "task=" in page.url:
        assert time.monotonic() < deadline, f"the page stayed on the task view: {page.url}"
        page.wait_for_timeout(200)
    page.wait_for_selector(f"#ca-{ca.pk} >> text=Latest CRL #2", timeout=30_000)
    crl = x509.load_der_x509_crl(bytes(CRL.objects.get(ca=ca, crl_number=2).der))
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_int) is not None

    page.click("nav >> text=Dashboard")
    page.wait_for_selector("svg.chart")
    assert page.locator("#count-revoked").inner_text() == "1"
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_no_role_sees_not_authorized(live_server, page, db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("visitor", password="visitor-password-1")
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "visitor")
    page.fill("#id_password", "visitor-password-1")
    page.click("button[type=submit]")
    # No role: the start page sends the user to their own account page, not into a 403 ...
    page.wait_for_url("**/account/")
    # ... and an admin page still says "Not authorized", naming the rule.
    page.goto(live_server.url + "/cas/")
    page.wait_for_selector("h1:has-text('Not authorized')")
    assert "/administrator" in page.content() or "/ca_functionality" in page.content()
    assert "Traceback" not in page.content()


def test_crypto_token_pages(live_server, page, admin_login, tmp_path):
    from cryptotokens.models import CryptoToken, CryptoTokenKeyPair

    user, password = admin_login
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.click("nav >> text=Crypto tokens")
    page.click("text=Create crypto token")
    page.wait_for_load_state()  # the form's script hides the other types' fields once it has run
    # Only the chosen type's fields are shown (expect() retries: the change handler runs after select_option)
    region, vault = page.locator("label", has_text="Region"), page.locator("label", has_text="Key Vault name")
    page.select_option("#id_token_type", "AWSKMSCryptoToken")
    expect(region).to_be_visible()
    expect(vault).to_be_hidden()
    page.select_option("#id_token_type", "AzureCryptoToken")
    expect(vault).to_be_visible()
    expect(region).to_be_hidden()
    page.select_option("#id_token_type", "SoftCryptoToken")
    expect(vault).to_be_hidden()
    page.fill("#id_name", "BrowserToken")
    page.fill("#id_auth_code", "browser-code-1")
    page.fill("#id_auth_code_repeat", "browser-code-1")
    page.check("#id_allow_export")
    page.click("button:has-text('Create')")
    page.wait_for_selector("h1:has-text('Crypto token BrowserToken')")
    page.fill("#id_alias", "browserKey")
    page.select_option("#id_key_spec", "P-384")
    page.click("button:has-text('Generate')")
    page.wait_for_selector("text=Key pair 'browserKey' generated")
    token = CryptoToken.objects.get(name="BrowserToken")
    assert CryptoTokenKeyPair.objects.get(token=token, alias="browserKey").key_spec == "secp384r1"
    assert page.is_visible("text=Soft (PKCS#12 keystore in the database)")
    page.click("button:has-text('Test')")
    page.wait_for_selector("text=signed and verified")
    page.fill("input[name=password]", "export-password-1")
    with page.expect_download() as download:
        page.click("button:has-text('Export')")
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, _, _ = pkcs12.load_key_and_certificates(open(download.value.path(), "rb").read(), b"export-password-1")
    assert key.curve.name == "secp384r1"
    page.screenshot(path=str(tmp_path / "token.png"), full_page=True)
