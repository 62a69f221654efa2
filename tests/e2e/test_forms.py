"""Forms in a real browser (issue 16), each without a page reload: the end entity profile editor in sections with
fields added and removed in place and a drop-down's choices edited as a list; the RA request form keeping what
was typed when the certificate type changes, pre-filled from a pasted CSR, and saying what a download issued."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from playwright.sync_api import expect

from endentities.models import EndEntityProfile
from pki import bootstrap
from pki.models import Certificate, CertificateAuthority, CertificateProfile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged_in(monkeypatch, live_server, page):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-forms-password")
    bootstrap.run()
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "e2e-forms-password")
    page.click("button[type=submit]")
    page.wait_for_selector("header .user")
    return page


def _mark_document(page) -> None:
    """A marker on the window: still there later means the page was not reloaded."""
    page.evaluate("window.__noReload = 'still here'")


def _not_reloaded(page) -> bool:
    return page.evaluate("window.__noReload") == "still here"


def test_profile_editor_sections_fields_and_choices_without_reload(live_server, logged_in):
    page = logged_in
    page.goto(live_server.url + "/endentityprofiles/new/")
    _mark_document(page)
    page.fill("#id_name", "Forms EEP")
    # sections: one shown at a time
    assert page.is_visible("#section-user") and not page.is_visible("#section-dn")
    page.click(".section-tabs a[data-section=dn]")
    assert page.is_visible("#section-dn") and not page.is_visible("#section-user")
    for key in ("CN", "OU", "C"):
        rows = page.locator("#dn-fields tr.instance").count()
        page.select_option("#id_dn-add-type", key)
        page.click("#dn-fields button[value=add-dn]")
        expect(page.locator("#dn-fields tr.instance")).to_have_count(rows + 1)
    # remove the OU again: the rows after it move up, renumbered by the server
    page.click("#dn-fields tr.instance[data-type=OU] button[name=op]")
    expect(page.locator("#dn-fields tr.instance")).to_have_count(2)
    assert page.locator("#dn-fields tr.instance").evaluate_all("rs => rs.map(r => r.dataset.type)") == ["CN", "C"]
    # the country's choices as a list: SE, NO, DK, then NO removed
    row = page.locator("#dn-fields tr.instance[data-type=C]")
    row.locator("input[name$='-modifiable']").uncheck()
    row.locator("button:has-text('Several choices')").click()
    for i, value in enumerate(["SE", "NO", "DK"]):
        if i:
            row.locator("button:has-text('Add choice')").click()
        row.locator(".choice-list input").nth(i).fill(value)
    row.locator(".choice-list li").nth(1).locator("button").click()
    assert row.locator("input[name$='-value']").input_value() == "SE;DK"
    assert _not_reloaded(page) and page.input_value("#id_name") == "Forms EEP"
    # a bad regex: the summary names it, and its link opens the Subject DN section at the input
    page.fill("#id_dn-0-validation", "([unclosed")
    page.click("form.ee-profile .actions button:has-text('Save')")
    page.wait_for_selector("#error-summary")
    page.click(".section-tabs a[data-section=user]")
    page.click("#error-summary a[href='#id_dn-0-validation']")
    assert page.is_visible("#id_dn-0-validation")
    assert page.evaluate("document.activeElement.id") == "id_dn-0-validation"
    assert page.locator(".section-tabs a[data-section=dn].has-error").count() == 1
    assert page.input_value("#id_name") == "Forms EEP"  # kept
    page.fill("#id_dn-0-validation", "")
    page.click("form.ee-profile .actions button:has-text('Save')")
    page.wait_for_selector("h1:has-text('End entity profile Forms EEP')")
    profile = EndEntityProfile.objects.get(name="Forms EEP")
    assert [(f["type"], f["value"], f["modifiable"]) for f in profile.subject_dn_fields] == [
        ("CN", "", True), ("C", "SE;DK", False)]


@pytest.fixture
def two_types(logged_in):
    ca = CertificateAuthority.objects.get(name="ManagementCA")
    enduser = CertificateProfile.objects.get(name="ENDUSER")
    made = []
    for name, dn in (("Forms A", [{"type": "CN", "required": True, "modifiable": True}]),
                     ("Forms B", [{"type": "CN", "required": True, "modifiable": True},
                                  {"type": "O", "required": False, "modifiable": True}])):
        p = EndEntityProfile.objects.create(
            name=name, any_ca=True, default_ca=ca, subject_dn_fields=dn, password_required=True,
            subject_alt_name_fields=[{"type": "DNSNAME", "required": False, "modifiable": True}],
            available_token_types=[1, 2], default_token_type=1, default_certificate_profile=enduser)
        p.available_certificate_profiles.set([enduser])
        made.append(p)
    return made


def test_ra_request_keeps_typing_prefills_from_csr_and_names_the_download(live_server, logged_in, two_types):
    page = logged_in
    first, second = two_types
    page.goto(f"{live_server.url}/ra/enroll/?profile={first.pk}")
    _mark_document(page)
    page.fill("#id_username", "forms-user")
    page.fill("#id_dn_0", "typed.example")
    page.select_option("#id_profile", str(second.pk))
    page.wait_for_selector("#id_dn_1")  # the second type's form, in place
    assert _not_reloaded(page)
    assert page.input_value("#id_username") == "forms-user" and page.input_value("#id_dn_0") == "typed.example"
    assert page.evaluate("location.search") == f"?profile={second.pk}"
    # a pasted CSR fills the empty inputs from its subject and alt names
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "csr.example"),
                                    x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "From CSR")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("csr.example")]), critical=False)
           .sign(key, hashes.SHA256()))
    page.fill("#id_dn_0", "")
    page.fill("#id_key-csr_pem", csr.public_bytes(Encoding.PEM).decode())
    expect(page.locator("#id_dn_1")).to_have_value("From CSR")
    assert page.input_value("#id_dn_0") == "csr.example" and page.input_value("#id_san_0") == "csr.example"
    assert "From the request: " in page.inner_text(".csr-note")
    # a keystore made here: downloaded, and the page says what was issued and offers it again
    page.fill("#id_password", "forms-pass-1")
    page.fill("#id_password_confirm", "forms-pass-1")
    page.check("input[name=key-token_type][value='2']")
    with page.expect_download() as first_download:
        page.click("#entity-form button:has-text('Enroll')")
    assert first_download.value.suggested_filename == "forms-user.p12"
    serial = Certificate.objects.get(username="forms-user").serial.upper()
    notice = page.locator("#issued-notice")
    assert serial in notice.inner_text() and _not_reloaded(page)
    with page.expect_download() as again:
        notice.locator("a:has-text('again')").click()
    assert again.value.suggested_filename == "forms-user.p12"


def test_ca_key_pair_is_a_pick_list_of_the_tokens_keys(live_server, logged_in):
    from cryptotokens.models import CryptoTokenKeyPair

    page = logged_in
    pair = CryptoTokenKeyPair.objects.select_related("token").order_by("pk").first()
    page.goto(live_server.url + "/cas/new/")
    page.select_option("#id_crypto_token", str(pair.token_id))
    page.fill("#id_key_alias", "typedAlias")
    options = page.locator("#id_key_pick option").evaluate_all("os => os.map(o => o.value)")
    assert options[0] == "" and pair.alias in options  # "Generate a new key pair" first, then the token's keys
    assert not page.is_visible("input[name=key_source]")  # the pick-list says it
    page.select_option("#id_key_pick", pair.alias)
    assert page.is_checked("input[name=key_source][value=existing]")
    assert page.input_value("#id_key_alias") == pair.alias and not page.is_visible("#id_key_alias")
    assert not page.is_visible("#id_key_spec")
    page.select_option("#id_key_pick", "")
    assert page.is_checked("input[name=key_source][value=generate]")
    assert page.input_value("#id_key_alias") == "typedAlias" and page.is_visible("#id_key_spec")
