"""CA pages: create (root and sub-CA, new or existing key), import, view and downloads, edit, renew."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.files.uploadedfile import SimpleUploadedFile

from cryptotokens import services as token_services
from cryptotokens.models import CryptoTokenKeyPair
from pki.models import CertificateAuthority
from tests.conftest import pem
from tests.pki.test_cas import _external_chain
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


def _create_data(token, **changes) -> dict:
    return {"name": "UiCA", "subject_dn": "CN=UI CA,O=Test,C=SE", "crypto_token": token.pk, "key_source": "generate",
            "key_alias": "uiKey", "key_spec": "P-256", "validity": "5y", "crl_period_hours": "24",
            "crl_overlap_hours": "0.5", "delta_crl_period_hours": "0", **changes}


def _public_der(key) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_create_form_offers_key_specs_signature_algorithms_and_ca_profiles_only(admin, soft_token):
    html = admin.get("/cas/new/").content.decode()
    for option in ("RSA2048", "RSA3072", "RSA4096", "P-256", "P-384", "P-521", "Ed25519", "SHA256WithRSA",
                   "SHA384withECDSA", ">ROOTCA<", ">SUBCA<", "TestToken", 'value="generate"', 'value="existing"'):
        assert option in html, option
    assert ">SERVER<" not in html and ">ENDUSER<" not in html


def test_create_root_and_sub_ca_and_the_chain_verifies(admin, soft_token, openssl):
    r = admin.post("/cas/new/", _create_data(soft_token, name="UiRoot", subject_dn="CN=UI Root,O=Test,C=SE",
                                             key_alias="rootKey", is_default="on"))
    assert r.status_code == 302
    root = CertificateAuthority.objects.get(name="UiRoot")
    assert r["Location"] == f"/cas/{root.pk}/" and root.is_default and root.is_root

    r = admin.post("/cas/new/", _create_data(
        soft_token, name="UiSub", subject_dn="CN=UI Sub,O=Test,C=SE", signed_by=root.pk, key_alias="subKey",
        key_spec="RSA2048", validity="2y", signature_algorithm="SHA256WithRSA", crl_period_hours="12",
        crl_overlap_hours="1", delta_crl_period_hours="1", crl_distribution_point="http://pki.test/crl/UiSub.crl",
        ocsp_url="http://pki.test/ocsp", ca_issuers_url="http://pki.test/ca/UiSub.crt", description="made in a test"))
    assert r.status_code == 302
    sub = CertificateAuthority.objects.get(name="UiSub")
    assert sub.signed_by == root and sub.signature_algorithm == "SHA256WithRSA"
    assert (sub.crl_period.total_seconds(), sub.crl_overlap.total_seconds(), sub.delta_crl_period.total_seconds()) \
        == (12 * 3600, 3600, 3600)
    assert (sub.crl_distribution_point, sub.ocsp_url, sub.description) == \
        ("http://pki.test/crl/UiSub.crl", "http://pki.test/ocsp", "made in a test")
    assert sub.certificate_profile.name == "SUBCA" and sub.certificate.public_key().key_size == 2048

    sub.certificate.verify_directly_issued_by(root.certificate)
    openssl.write("root.pem", pem(root.certificate))
    openssl.write("sub.pem", pem(sub.certificate))
    assert "sub.pem: OK" in openssl("verify", "-CAfile", "root.pem", "sub.pem").stdout


def test_create_ca_on_an_existing_key_pair(admin, soft_token, actor):
    key_pair = token_services.generate_key_pair(actor, soft_token, "preparedKey", "P-384")
    assert "preparedKey" in admin.get("/cas/new/").content.decode()  # offered in the alias suggestions
    r = admin.post("/cas/new/", _create_data(soft_token, key_source="existing", key_alias="preparedKey",
                                             key_spec="RSA4096"))
    assert r.status_code == 302
    ca = CertificateAuthority.objects.get(name="UiCA")
    assert _public_der(ca.certificate.public_key()) == bytes(key_pair.public_key_der)
    assert CryptoTokenKeyPair.objects.filter(token=soft_token).count() == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject_dn": "BOGUS=1"}, "Unknown DN attribute"),
        ({"name": "TestRoot"}, "already exists"),
        ({"subject_dn": "CN=TestRoot,O=Test,C=SE"}, "already exists"),
        ({"validity": "forever"}, "Cannot read validity"),
        ({"key_spec": "RSA2048", "signature_algorithm": "SHA256withECDSA"}, "needs a EC key"),
        ({"key_source": "existing", "key_alias": "noSuchKey"}, "No key pair &#x27;noSuchKey&#x27;"),
        ({"crl_period_hours": "0"}, "greater than or equal to 0.1"),
        ({"subject_dn": ""}, "This field is required"),
        ({"crl_distribution_point": "not a url at all"}, "Enter a valid URL"),
    ],
)
def test_create_ca_refusals_are_form_errors_and_leave_nothing(admin, root_ca, soft_token, changes, message):
    keys_before = CryptoTokenKeyPair.objects.count()
    r = admin.post("/cas/new/", _create_data(soft_token, name=changes.pop("name", "Bad"), **changes))
    assert r.status_code in (400, 409) and message in r.content.decode()
    assert 'class="errorlist"' in r.content.decode()
    assert CertificateAuthority.objects.count() == 1
    assert CryptoTokenKeyPair.objects.count() == keys_before  # a refused CA leaves no generated key behind


def test_generating_over_an_existing_alias_is_a_form_error(admin, soft_token, actor):
    token_services.generate_key_pair(actor, soft_token, "taken", "P-256")
    r = admin.post("/cas/new/", _create_data(soft_token, key_alias="taken"))
    assert r.status_code == 400 and "taken" in r.content.decode()
    assert not CertificateAuthority.objects.filter(name="UiCA").exists()


def test_ca_page_shows_the_ca_and_downloads_parse(admin, root_ca, sub_ca):
    html = admin.get(f"/cas/{sub_ca.pk}/").content.decode()
    for text in ("CN=TestSub,O=Test,C=SE", f'href="/cas/{root_ca.pk}/"', "TestSubToken", "signKey", "SUBCA",
                 "SHA-256 fingerprint", "Certificate chain (issuers)", "CN=TestRoot,O=Test,C=SE",
                 "Certificate history"):
        assert text in html, text

    r = admin.get(f"/cas/{sub_ca.pk}/download/pem/")
    assert r["Content-Disposition"] == 'attachment; filename="TestSub.pem"'
    assert x509.load_pem_x509_certificates(r.content) == [sub_ca.certificate]
    assert x509.load_der_x509_certificate(admin.get(f"/cas/{sub_ca.pk}/download/der/").content) == sub_ca.certificate
    chain = x509.load_pem_x509_certificates(admin.get(f"/cas/{sub_ca.pk}/download/chain/").content)
    assert chain == [sub_ca.certificate, root_ca.certificate]
    assert admin.get(f"/cas/{sub_ca.pk}/download/p12/").status_code == 404
    assert admin.get("/cas/999999/").status_code == 404


@pytest.mark.parametrize("how", ["paste", "upload-pem", "upload-der"])
def test_import_external_ca(admin, how):
    ext_sub, ext_root = _external_chain()
    if how == "paste":
        data = {"name": "Ext", "certificate_pem": pem(ext_sub, ext_root).decode()}
    elif how == "upload-pem":
        data = {"name": "Ext", "certificate_file": SimpleUploadedFile("chain.pem", pem(ext_sub, ext_root))}
    else:
        data = {"name": "Ext", "certificate_file": SimpleUploadedFile("ca.cer", ext_sub.public_bytes(Encoding.DER))}
    r = admin.post("/cas/import/", data)
    assert r.status_code == 302
    ca = CertificateAuthority.objects.get(name="Ext")
    assert ca.is_external and ca.crypto_token is None and ca.certificate == ext_sub
    html = admin.get(f"/cas/{ca.pk}/").content.decode()
    assert "External (trust only)" in html and f'href="/cas/{ca.pk}/edit/"' not in html
    assert admin.get(f"/cas/{ca.pk}/edit/").status_code == 302  # nothing to edit on a trust-only CA


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"certificate_pem": "junk"}, "Not a certificate"),
        ({}, "Upload a certificate file or paste PEM"),
        ({"certificate_pem": "LEAF"}, "not a CA certificate"),
    ],
)
def test_import_refusals_are_form_errors(admin, sub_ca, actor, csr_factory, data, message):
    if data.get("certificate_pem") == "LEAF":
        from pki.issuance import IssuanceRequest, issue
        from pki.models import CertificateProfile

        csr, _ = csr_factory("CN=leaf")
        leaf = issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                     csr=csr)).certificate
        data = {"certificate_pem": pem(leaf).decode()}
    r = admin.post("/cas/import/", {"name": "Junk", **data})
    assert r.status_code == 400 and message in r.content.decode()
    assert not CertificateAuthority.objects.filter(name="Junk").exists()


def _edit_data(**changes) -> dict:
    return {"description": "edited", "validity": "3y", "signature_algorithm": "SHA384withECDSA", "status": "ACTIVE",
            "crl_period_hours": "6", "crl_overlap_hours": "0.25", "delta_crl_period_hours": "2",
            "crl_distribution_point": "http://pki.test/crl/TestSub.crl", "ocsp_url": "", "ca_issuers_url": "",
            **changes}


def test_edit_ca(admin, root_ca, sub_ca):
    form = admin.get(f"/cas/{sub_ca.pk}/edit/").content.decode()
    assert 'value="24.0"' in form or 'value="24"' in form  # the current CRL period, in hours
    r = admin.post(f"/cas/{sub_ca.pk}/edit/", _edit_data(is_default="on"))
    assert r.status_code == 302
    sub_ca.refresh_from_db()
    assert (sub_ca.description, sub_ca.validity, sub_ca.signature_algorithm, sub_ca.is_default) == \
        ("edited", "3y", "SHA384withECDSA", True)
    assert (sub_ca.crl_period.total_seconds(), sub_ca.crl_overlap.total_seconds(),
            sub_ca.delta_crl_period.total_seconds()) == (6 * 3600, 900, 2 * 3600)
    assert sub_ca.crl_distribution_point == "http://pki.test/crl/TestSub.crl"

    assert admin.post(f"/cas/{sub_ca.pk}/edit/", _edit_data(status="OFFLINE")).status_code == 302
    sub_ca.refresh_from_db()
    assert sub_ca.status == "OFFLINE" and sub_ca.is_default  # unticking does not clear the default


def test_edit_ca_refusal_is_a_form_error(admin, sub_ca):
    r = admin.post(f"/cas/{sub_ca.pk}/edit/", _edit_data(signature_algorithm="SHA256WithRSA"))
    assert r.status_code == 400 and "needs a RSA key" in r.content.decode()
    sub_ca.refresh_from_db()
    assert sub_ca.description == "" and sub_ca.signature_algorithm == "SHA256withECDSA"


@pytest.mark.parametrize(
    ("data", "new_key", "rollover"),
    [
        ({}, False, False),
        ({"new_key": "on", "new_key_alias": "next", "new_key_spec": "P-384"}, True, False),
        ({"new_key": "on", "new_key_alias": "later", "new_key_spec": "P-256", "activate_at": "2099-01-01T00:00"},
         True, True),
        ({"activate_at": "2099-06-01T12:00"}, False, True),
    ],
)
def test_renew_ca(admin, sub_ca, data, new_key, rollover):
    old_cert, old_alias = sub_ca.certificate, sub_ca.key_alias
    r = admin.post(f"/cas/{sub_ca.pk}/renew/", data)
    assert r.status_code == 302
    sub_ca.refresh_from_db()
    if rollover:
        assert sub_ca.certificate == old_cert and sub_ca.rollover_certificate is not None
        assert sub_ca.rollover_at.year == 2099
        html = admin.get(f"/cas/{sub_ca.pk}/", follow=True).content.decode()
        assert "Rollover certificate" in html and "rollover certificate until 2099" in html
        new = sub_ca.rollover_certificate
    else:
        assert sub_ca.certificate.serial_number != old_cert.serial_number and sub_ca.rollover_certificate is None
        new = sub_ca.certificate
    same_key = _public_der(new.public_key()) == _public_der(old_cert.public_key())
    assert same_key is not new_key
    assert (sub_ca.rollover_key_alias if rollover else sub_ca.key_alias) == (data.get("new_key_alias") or old_alias)
    new.verify_directly_issued_by(sub_ca.signed_by.certificate)


def test_renew_refusals_are_form_errors(admin, sub_ca):
    r = admin.post(f"/cas/{sub_ca.pk}/renew/", {"new_key": "on"})
    assert r.status_code == 400 and "Give an alias for the new key pair" in r.content.decode()
    r = admin.post(f"/cas/{sub_ca.pk}/renew/", {"new_key": "on", "new_key_alias": "missing"})
    assert r.status_code == 400 and "No key pair" in r.content.decode()
    before = sub_ca.certificate
    sub_ca.refresh_from_db()
    assert sub_ca.certificate == before


def test_create_ca_on_an_offline_token_is_a_form_error(admin, soft_token_factory, actor):
    token = soft_token_factory("Manual", auto_activate=False)
    token_services.deactivate(actor, token)
    r = admin.post("/cas/new/", _create_data(token))
    assert r.status_code == 503 and "offline" in r.content.decode() and 'class="errorlist"' in r.content.decode()
    assert not CertificateAuthority.objects.exists()


@pytest.mark.parametrize("page", ["list", "detail"])
def test_ca_pages_make_a_fixed_number_of_queries(admin, ca_factory, page):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    root = ca_factory("Root")
    url = "/cas/" if page == "list" else f"/cas/{root.pk}/"
    admin.get(url)
    with CaptureQueriesContext(connection) as few:
        admin.get(url)
    for i in range(3):
        ca_factory(f"Sub{i}", signed_by=root)
    with CaptureQueriesContext(connection) as more:
        admin.get(url)
    assert len(more) == len(few)


def test_renew_offers_the_tokens_other_keys(admin, sub_ca, actor):
    """The new key pair alias is picked from the CA token's keys (one made ahead), or typed to generate one."""
    token_services.generate_key_pair(actor, sub_ca.crypto_token, "made-ahead", "P-256")
    html = admin.get(f"/cas/{sub_ca.pk}/renew/").content.decode()
    options = re.findall(r'<datalist id="id_new_key_alias-list">(.*?)</datalist>', html, re.S)
    assert options and 'value="made-ahead"' in options[0]
    assert f'value="{sub_ca.key_alias}"' not in options[0]  # the current key is "renew with the same key"
    r = admin.post(f"/cas/{sub_ca.pk}/renew/", {"new_key": "on", "new_key_alias": "made-ahead"})
    assert r.status_code == 302
    sub_ca.refresh_from_db()
    assert sub_ca.key_alias == "made-ahead"
