"""Admin pages "Remote Authenticators" and "OCSP Responders": list, create on a new key, issue (and the refusal
naming the constraint), activate, CSR download, import, renew with history, delete, rules, no inline script."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.core.files.uploadedfile import SimpleUploadedFile

from keybindings.models import InternalKeyBinding
from pki.models import CertificateProfile
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


def _create(admin, kind, token, name="ui-auth"):
    return admin.post(f"/keybindings/{kind}/new/", {"name": name, "key_pair": "__new__", "new_key_token": token.pk,
                                                    "key_spec": "P-256", "signature_algorithm": ""})


def test_authentication_binding_life_in_the_browser_pages(admin, kb_token, root_ca):
    page = admin.get("/keybindings/authentication/")
    assert page.status_code == 200 and b"Remote Authenticators" in page.content
    r = _create(admin, "authentication", kb_token)
    binding = InternalKeyBinding.objects.get(name="ui-auth")
    assert r.status_code == 302 and r["Location"] == f"/keybindings/{binding.pk}/"
    assert binding.binding_type == "AuthenticationKeyBinding" and binding.status == "DISABLED"

    server = CertificateProfile.objects.get(name="SERVER").pk
    enduser = CertificateProfile.objects.get(name="ENDUSER").pk
    r = admin.post(f"/keybindings/{binding.pk}/issue/", {"ca": root_ca.pk, "certificate_profile": server})
    assert r.status_code == 400 and b"extendedKeyUsage clientAuth is required" in r.content
    r = admin.post(f"/keybindings/{binding.pk}/issue/", {"ca": root_ca.pk, "certificate_profile": enduser})
    assert r.status_code == 302
    admin.post(f"/keybindings/{binding.pk}/status/", {"status": "ACTIVE"})
    binding.refresh_from_db()
    assert binding.status == "ACTIVE" and binding.certificate is not None

    listing = admin.get("/keybindings/authentication/").content.decode()
    assert "ui-auth" in listing and binding.certificate.serial.upper() in listing and "(valid)" in listing

    csr = admin.post(f"/keybindings/{binding.pk}/csr/", {"subject_dn": "CN=ui-auth"})
    assert csr["Content-Disposition"].endswith('ui-auth.csr"')
    assert x509.load_pem_x509_csr(csr.content).is_signature_valid

    first = binding.certificate.serial
    r = admin.post(f"/keybindings/{binding.pk}/renew/", {"ca": "", "certificate_profile": ""}, follow=True)
    binding.refresh_from_db()
    assert binding.certificate.serial != first
    assert first.upper() in r.content.decode()  # in the history table

    r = admin.post(f"/keybindings/{binding.pk}/delete/")
    assert r.status_code == 302 and not InternalKeyBinding.objects.filter(pk=binding.pk).exists()


def test_ocsp_binding_import_page(admin, kb_token, root_ca, cert_for):
    _create(admin, "ocsp", kb_token, name="ui-ocsp")
    binding = InternalKeyBinding.objects.get(name="ui-ocsp")
    assert binding.binding_type == "OcspKeyBinding"
    wrong = cert_for(binding, root_ca, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)).public_bytes(Encoding.PEM)
    r = admin.post(f"/keybindings/{binding.pk}/import/", {"certificate_pem": wrong.decode()})
    assert r.status_code == 400 and b"OCSPSigning is required" in r.content
    right = cert_for(binding, root_ca, eku=(ExtendedKeyUsageOID.OCSP_SIGNING,)).public_bytes(Encoding.PEM)
    r = admin.post(f"/keybindings/{binding.pk}/import/",
                   {"certificate_file": SimpleUploadedFile("c.pem", right)})
    assert r.status_code == 302
    assert b"ui-ocsp" in admin.get("/keybindings/ocsp/").content


def test_activation_refusal_is_a_message_not_an_error_page(admin, kb_token):
    _create(admin, "authentication", kb_token, name="nocert")
    binding = InternalKeyBinding.objects.get(name="nocert")
    r = admin.post(f"/keybindings/{binding.pk}/status/", {"status": "ACTIVE"}, follow=True)
    assert r.status_code == 200 and b"has no certificate and cannot be activated" in r.content
    assert InternalKeyBinding.objects.get(pk=binding.pk).status == "DISABLED"


def test_pages_carry_no_inline_script(admin, kb_token):
    _create(admin, "authentication", kb_token, name="csp")
    binding = InternalKeyBinding.objects.get(name="csp")
    for url in ("/keybindings/authentication/", "/keybindings/authentication/new/", f"/keybindings/{binding.pk}/",
                f"/keybindings/{binding.pk}/issue/", f"/keybindings/{binding.pk}/edit/"):
        html = admin.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), url
        assert not re.search(r"\son[a-z]+=", html), url


@pytest.mark.parametrize(("rules", "url", "method", "status"), [
    (["/administrator"], "/keybindings/authentication/", "get", 403),
    (["/internalkeybinding/view"], "/keybindings/authentication/new/", "get", 403),
    (["/internalkeybinding/view"], "/keybindings/authentication/", "get", 200),
])
def test_rules_guard_the_pages(db, builtin_profiles, rules, url, method, status):
    client = ui_client("limited", rules)
    assert getattr(client, method)(url).status_code == status


def test_navigation_lists_both_pages(admin):
    html = admin.get("/keybindings/ocsp/").content.decode()
    assert 'href="/keybindings/authentication/"' in html and 'href="/keybindings/ocsp/"' in html
    assert admin.get("/keybindings/nothing/").status_code == 404


def test_edit_page_sets_trust_and_cipher_pairs_and_refuses_an_unknown_ca(admin, kb_token, root_ca):
    _create(admin, "authentication", kb_token, name="edited")
    binding = InternalKeyBinding.objects.get(name="edited")
    data = {"name": "edited", "signature_algorithm": "SHA256withECDSA", "next_key_pair_alias": "",
            "trusted_certificates": f"{root_ca.name};0A1B", "protocol_and_cipher_suites": [
                "TLSv1.3;TLS_AES_256_GCM_SHA384", "TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}
    assert admin.post(f"/keybindings/{binding.pk}/edit/", data).status_code == 302
    binding.refresh_from_db()
    assert binding.trusted_certificates == [{"ca_id": root_ca.pk, "serial": "a1b"}]
    assert binding.signature_algorithm == "SHA256withECDSA" and len(binding.protocol_and_cipher_suites) == 2
    r = admin.post(f"/keybindings/{binding.pk}/edit/", {**data, "trusted_certificates": "NoSuchCA"})
    assert r.status_code == 400 and b"No CA &#x27;NoSuchCA&#x27;" in r.content
    binding.refresh_from_db()
    assert binding.trusted_certificates == [{"ca_id": root_ca.pk, "serial": "a1b"}]
