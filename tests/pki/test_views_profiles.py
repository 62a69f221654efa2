"""Certificate profile pages: create and edit with every field, custom extension rows, clone, delete,
and the built-in profiles staying read-only."""

from __future__ import annotations

import re

import pytest
from cryptography import x509

from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


def _data(**changes) -> dict:
    data = {
        "name": "WebServer", "profile_type": "ENDENTITY", "description": "TLS servers", "validity": "397d",
        "allow_validity_override": "on", "key_usage": ["digitalSignature", "keyAgreement"],
        "key_usage_critical": "on", "extended_key_usage": ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
        "extra_eku": "1.2.3.4.5, 1.2.3.4.6", "allowed_key_algorithms": ["EC"], "allowed_curves": ["secp256r1"],
        "allowed_rsa_sizes": ["3072"], "allowed_signature_algorithms": ["SHA256withECDSA"],
        "basic_constraints": "on", "use_subject_key_id": "on", "use_authority_key_id": "on",
        "use_ocsp_no_check": "on",
        # three fixed blank rows plus a fourth as the "Add a row" script makes it
        "ext-TOTAL_FORMS": "4", "ext-INITIAL_FORMS": "0",
        "ext-0-oid": "1.2.3.9", "ext-0-encoding": "UTF8String", "ext-0-value": "hello",
        "ext-1-oid": "", "ext-1-encoding": "UTF8String",
        "ext-2-oid": "", "ext-2-encoding": "UTF8String",
        "ext-3-oid": "1.2.3.10", "ext-3-encoding": "INTEGER", "ext-3-value": "42", "ext-3-critical": "on",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_new_profile_form_has_fixed_blank_extension_rows(admin):
    html = admin.get("/profiles/new/").content.decode()
    assert 'name="ext-TOTAL_FORMS" value="3"' in html
    assert all(f'name="ext-{i}-oid"' in html for i in range(3))
    for choice in ("keyCertSign", "serverAuth", "OCSPSigning", "secp384r1", "SHA256WithRSA", "UTF8String", "RAW"):
        assert choice in html, choice


def test_create_profile_with_every_field_and_issue_with_it(admin, sub_ca, actor, csr_factory):
    r = admin.post("/profiles/new/", _data())
    assert r.status_code == 302, r.content.decode()[-2000:]
    p = CertificateProfile.objects.get(name="WebServer")
    assert r["Location"] == f"/profiles/{p.pk}/"
    assert (p.validity, p.allow_validity_override, p.key_usage, p.key_usage_critical) == \
        ("397d", True, ["digitalSignature", "keyAgreement"], True)
    assert p.extended_key_usage == ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.2.3.4.5", "1.2.3.4.6"]
    assert (p.allowed_key_algorithms, p.allowed_curves, p.allowed_rsa_sizes, p.allowed_signature_algorithms) == \
        (["EC"], ["secp256r1"], [3072], ["SHA256withECDSA"])
    assert (p.use_subject_key_id, p.use_crl_distribution_point, p.use_ocsp_no_check, p.builtin) == \
        (True, False, True, False)
    assert p.custom_extensions == [
        {"oid": "1.2.3.9", "critical": False, "encoding": "UTF8String", "value": "hello", "dynamic": False},
        {"oid": "1.2.3.10", "critical": True, "encoding": "INTEGER", "value": "42", "dynamic": False},
    ]

    page = admin.get(f"/profiles/{p.pk}/").content.decode()
    assert "serverAuth, clientAuth, 1.2.3.4.5" in page and "1.2.3.10" in page and "397d" in page

    csr, _ = csr_factory("CN=web.example.com")
    cert = issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=p, csr=csr)).certificate
    assert cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.2.3.10")).critical
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ObjectIdentifier("1.2.3.4.6") in eku


def test_edit_profile_keeps_values_in_the_form_and_saves(admin):
    admin.post("/profiles/new/", _data())
    p = CertificateProfile.objects.get(name="WebServer")
    form = admin.get(f"/profiles/{p.pk}/edit/").content.decode()
    assert 'value="1.2.3.4.5, 1.2.3.4.6"' in form and 'value="1.2.3.9"' in form and 'value="397d"' in form
    r = admin.post(f"/profiles/{p.pk}/edit/", _data(
        name="WebServer2", validity="90d", extra_eku="", **{"ext-TOTAL_FORMS": "1", "ext-0-oid": ""}))
    assert r.status_code == 302
    p.refresh_from_db()
    assert (p.name, p.validity, p.custom_extensions) == ("WebServer2", "90d", [])
    assert p.extended_key_usage == ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"validity": "soon"}, "Cannot read validity"),
        ({"extra_eku": "not-an-oid"}, "known name or a dotted OID"),
        ({"ext-0-value": ""}, "Give a value, or tick dynamic"),
        ({"ext-0-oid": "x.y"}, "is not a dotted OID"),
        ({"allowed_key_algorithms": None}, "This field is required"),
        ({"name": "SERVER"}, "already exists"),
    ],
)
def test_profile_refusals_are_form_errors(admin, changes, message):
    r = admin.post("/profiles/new/", _data(**changes))
    assert r.status_code in (400, 409) and message in r.content.decode().replace("&#x27;", "'")
    assert CertificateProfile.objects.filter(builtin=False).count() == 0


def test_builtin_profile_is_read_only_with_a_clone_button(admin):
    server = CertificateProfile.objects.get(name="SERVER")
    page = admin.get(f"/profiles/{server.pk}/").content.decode()
    assert "Clone" in page and f'href="/profiles/{server.pk}/edit/"' not in page and ">Delete<" not in page
    r = admin.get(f"/profiles/{server.pk}/edit/", follow=True)
    assert r.redirect_chain[-1][0] == f"/profiles/{server.pk}/" and b"fixed profile" in r.content
    admin.post(f"/profiles/{server.pk}/edit/", _data(name="SERVER", validity="1d"))
    r = admin.post(f"/profiles/{server.pk}/delete/", follow=True)
    assert b"cannot be deleted" in r.content
    server.refresh_from_db()
    assert server.validity == "2y" and server.builtin


def test_clone_profile(admin):
    server = CertificateProfile.objects.get(name="SERVER")
    r = admin.post(f"/profiles/{server.pk}/clone/", {"name": "MyServer"})
    clone = CertificateProfile.objects.get(name="MyServer")
    assert r.status_code == 302 and r["Location"] == f"/profiles/{clone.pk}/edit/"
    assert not clone.builtin and (clone.key_usage, clone.extended_key_usage, clone.validity) == \
        (server.key_usage, ["1.3.6.1.5.5.7.3.1"], server.validity)  # the clone stores serverAuth by its OID
    form = admin.get(f"/profiles/{clone.pk}/edit/").content.decode()
    assert re.search(r'value="1.3.6.1.5.5.7.3.1"[^>]*checked', form)
    r = admin.post(f"/profiles/{server.pk}/clone/", {"name": "MyServer"}, follow=True)
    assert b"already exists" in r.content and CertificateProfile.objects.filter(name="MyServer").count() == 1
    admin.post(f"/profiles/{server.pk}/clone/", {"name": ""})
    assert CertificateProfile.objects.filter(name="SERVER (copy)").exists()


def test_delete_profile(admin):
    admin.post("/profiles/new/", _data())
    p = CertificateProfile.objects.get(name="WebServer")
    r = admin.post(f"/profiles/{p.pk}/delete/", follow=True)
    assert r.redirect_chain[-1][0] == "/profiles/" and b"deleted" in r.content
    assert not CertificateProfile.objects.filter(name="WebServer").exists()
    assert admin.get(f"/profiles/{p.pk}/delete/").status_code == 405  # deleting is a POST


def test_a_profile_used_by_a_ca_is_not_deleted(admin, ca_factory):
    subca = CertificateProfile.objects.get(name="SUBCA")
    admin.post(f"/profiles/{subca.pk}/clone/", {"name": "MySubCA"})
    mine = CertificateProfile.objects.get(name="MySubCA")
    root = ca_factory("Root")
    ca_factory("Sub", signed_by=root, certificate_profile="MySubCA")
    r = admin.post(f"/profiles/{mine.pk}/delete/", follow=True)
    assert b"is used by CA &#x27;Sub&#x27;" in r.content and CertificateProfile.objects.filter(name="MySubCA").exists()
    assert b"Used by CAs" in admin.get(f"/profiles/{mine.pk}/").content
