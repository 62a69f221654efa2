"""RA portal enrollment: Make New Request (certificate type = end entity profile with its description, the
generated form, a CSR or a keystore generated here) and Use Username (enrollment code, one time), refusals
that leave nothing behind, and who may enroll."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.bootstrap import DEFAULT_ROLES
from pki.models import Certificate
from tests.endentities import entities_support
from tests.endentities.test_views_entities import field_block
from tests.pki.test_views_auth import ui_client

# The service tests' fixtures (a profile, a profile factory, end entities added through the service).
ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory

RA_ADMIN_RULES = [r for r, allowed in DEFAULT_ROLES["RA Administrator"][1] if allowed]
USE_USERNAME = "/ca_functionality/use_username"
AUDITOR_RULES = [r for r, allowed in DEFAULT_ROLES["Auditor"][1] if allowed]


@pytest.fixture
def web_profile(ee_profile_factory, root_ca):
    return ee_profile_factory(
        "Web servers", ca=root_ca, description="TLS server certificates for the shop's web servers",
        subject_dn_fields=[{"type": "CN", "required": True, "modifiable": True},
                           {"type": "OU", "modifiable": False, "value": "Web;Mail"},
                           {"type": "O", "modifiable": False, "value": "Shop AB"}],
        subject_alt_name_fields=[{"type": "DNSNAME", "use_entity_cn": True}],
        available_token_types=[1, 2, 4], default_token_type=1, password_required=True,
    )


@pytest.fixture
def ra(db, web_profile):
    return ui_client("raop", RA_ADMIN_RULES)  # the default RA Administrator role has use_username


def request_data(profile, **changes) -> dict:
    data = {"username": "web1", "password": "foo123", "password_confirm": "foo123", "dn_0": "web1.shop.example",
            "dn_1": "Mail", "ca": str(profile.default_ca_id),
            "certificate_profile": str(profile.default_certificate_profile_id), "key-token_type": "1",
            "key-key_algorithm": "P-256", "key-certificate_format": "pem"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def _csr_pem(csr_factory, dn="CN=ignored", key_spec="P-256") -> str:
    csr, _ = csr_factory(dn, key_spec=key_spec)
    return csr.public_bytes(Encoding.PEM).decode()


def test_certificate_types_and_their_description(ra, web_profile, ee_profile):
    html = ra.get("/ra/enroll/").content.decode()
    assert "Certificate type" in html
    assert f'<option value="{web_profile.pk}"' in html and f'<option value="{ee_profile.pk}"' in html
    assert "TLS server certificates for the shop" in html  # for the script that shows it on change
    page = ra.get(f"/ra/enroll/?profile={web_profile.pk}").content.decode()
    assert re.search(r'id="profile-description">TLS server certificates', page)
    assert re.search(r'<select name="dn_1"', page) and 'value="Shop AB"' in page and "disabled" in page
    assert 'name="key-csr_file"' in page and 'name="key-csr_pem"' in page
    assert re.findall(r'name="key-token_type" value="(\d)"', page) == ["1", "2", "4"]
    assert "Ed25519" in page and "RSA 4096 bits" in page


def test_ca_and_certificate_profile_are_asked_only_when_there_is_a_choice(ra, web_profile, builtin_profiles):
    from pki.models import CertificateProfile

    page = ra.get(f"/ra/enroll/?profile={web_profile.pk}").content.decode()
    assert re.search(r'<input type="hidden" name="certificate_profile" value="\d+"', page)
    assert re.search(r'<input type="hidden" name="ca" value="\d+"', page)
    web_profile.available_certificate_profiles.add(CertificateProfile.objects.get(name="SERVER"))
    page = ra.get(f"/ra/enroll/?profile={web_profile.pk}").content.decode()
    assert re.search(r'<select name="certificate_profile"', page) and ">SERVER</option>" in page


def test_make_new_request_with_a_csr(ra, web_profile, csr_factory, root_ca):
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}",
                request_data(web_profile, **{"key-csr_pem": _csr_pem(csr_factory), "key-certificate_format": "der"}))
    assert r.status_code == 302, r.content.decode()[-3000:]
    cert = Certificate.objects.get(username="web1")
    assert r["Location"] == f"/ra/certificates/{cert.pk}/?format=der"
    parsed = cert.certificate
    assert parsed.subject.rfc4514_string() in ("CN=web1.shop.example,OU=Mail,O=Shop AB",
                                               "O=Shop AB,OU=Mail,CN=web1.shop.example")
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web1.shop.example"]  # "use entity CN field"
    assert EndEntity.objects.get(username="web1").status == EndEntityStatus.GENERATED
    page = ra.get(r["Location"]).content.decode()
    assert "Certificate issued to &#x27;web1&#x27;" in page or "Certificate issued to 'web1'" in page
    der = ra.get(f"/ra/certificates/{cert.pk}/download/der/")
    assert x509.load_der_x509_certificate(der.content).serial_number == parsed.serial_number


def test_make_new_request_with_an_uploaded_csr_file(ra, web_profile, csr_factory):
    upload = SimpleUploadedFile("req.csr", _csr_pem(csr_factory).encode())
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}", {**request_data(web_profile), "key-csr_file": upload})
    assert r.status_code == 302 and Certificate.objects.filter(username="web1").exists()


def test_make_new_request_with_a_p12_generated_here(ra, web_profile):
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}",
                request_data(web_profile, **{"key-token_type": "2", "key-key_algorithm": "RSA2048"}))
    assert r.status_code == 200 and r["Content-Type"] == "application/x-pkcs12", r.content[-2000:]
    assert 'filename="web1.p12"' in r["Content-Disposition"]
    key, cert, chain = pkcs12.load_key_and_certificates(r.content, b"foo123")
    assert key.key_size == 2048 and cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        "web1.shop.example"
    assert len(chain) >= 1
    assert Certificate.objects.get(username="web1").serial == format(cert.serial_number, "x")


def test_make_new_request_with_a_pem_keystore(ra, web_profile):
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}",
                request_data(web_profile, **{"key-token_type": "4", "key-key_algorithm": "P-384"}))
    assert r.status_code == 200 and b"PRIVATE KEY-----" in r.content and b"BEGIN CERTIFICATE" in r.content


@pytest.mark.parametrize("changes, field, message", [
    ({"dn_0": ""}, "dn_0", "This field is required."),
    ({"dn_1": "Finance"}, "dn_1", "Select a valid choice"),
    ({"key-csr_pem": ""}, "key-csr_pem", "Upload or paste the certificate request"),
    ({"key-csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"},
     "key-csr_pem", "not a valid PKCS#10"),
    ({"key-token_type": "3"}, "key-token_type", "Select a valid choice"),  # JKS is not offered by this profile
    ({"password_confirm": "other"}, "password_confirm", "The passwords differ."),
])
def test_refused_requests_show_the_field_and_leave_nothing(ra, web_profile, csr_factory, changes, field, message):
    data = request_data(web_profile, **{"key-csr_pem": _csr_pem(csr_factory)})
    data.update(changes)
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}", data)
    html = r.content.decode()
    assert r.status_code == 400
    block = field_block(html, field)
    assert 'has-error"' in block[:20] and message in block, block
    assert not EndEntity.objects.exists() and not Certificate.objects.filter(username="web1").exists()


def test_an_enrollment_the_certificate_profile_refuses_leaves_no_end_entity(ra, web_profile, csr_factory):
    data = request_data(web_profile, **{"key-csr_pem": _csr_pem(csr_factory, key_spec="RSA1024")})
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}", data)
    assert r.status_code == 400 and 'class="errorlist"' in r.content.decode()
    assert not EndEntity.objects.filter(username="web1").exists()
    assert not Certificate.objects.filter(username="web1").exists()


@pytest.fixture
def registered(entity_factory):
    return entity_factory("walter", password="code-1234", subject_dn="CN=walter,O=Test,C=SE")


def test_use_username_with_a_csr_is_one_time(ra, registered, csr_factory, root_ca, openssl):
    data = {"username": "walter", "enrollment_code": "code-1234", "key_source": "csr",
            "csr_pem": _csr_pem(csr_factory), "certificate_format": "chain", "key_algorithm": "RSA2048"}
    r = ra.post("/ra/enroll/username/", data)
    assert r.status_code == 200 and r["Content-Type"] == "application/x-pem-file"
    assert 'filename="walter-chain.pem"' in r["Content-Disposition"]
    certs = x509.load_pem_x509_certificates(r.content)
    assert certs[0].subject.rfc4514_string() in ("CN=walter,O=Test,C=SE", "C=SE,O=Test,CN=walter")
    assert certs[-1] == root_ca.certificate
    openssl.write("ca.pem", root_ca.certificate.public_bytes(Encoding.PEM))
    openssl.write("leaf.pem", certs[0].public_bytes(Encoding.PEM))
    assert "leaf.pem: OK" in openssl("verify", "-CAfile", "ca.pem", "leaf.pem").stdout

    again = ra.post("/ra/enroll/username/", data)
    assert again.status_code == 403 and 'class="errorlist"' in again.content.decode()
    assert Certificate.objects.filter(username="walter").count() == 1


def test_use_username_with_a_wrong_code_issues_nothing(ra, registered, csr_factory):
    r = ra.post("/ra/enroll/username/", {"username": "walter", "enrollment_code": "wrong", "key_source": "csr",
                                         "csr_pem": _csr_pem(csr_factory), "certificate_format": "pem",
                                         "key_algorithm": "RSA2048"})
    assert r.status_code == 403 and 'class="errorlist"' in r.content.decode()
    assert "wrong" not in r.content.decode().split("errorlist")[1][:300]  # the code is not echoed
    assert not Certificate.objects.filter(username="walter").exists()


def test_use_username_with_a_keystore_generated_here(ra, entity_factory):
    entity_factory("p12user", password="code-1234", subject_dn="CN=p12user,O=Test,C=SE", token_type=2)
    r = ra.post("/ra/enroll/username/", {"username": "p12user", "enrollment_code": "code-1234",
                                         "key_source": "server", "key_algorithm": "P-256",
                                         "certificate_format": "pem"})
    assert r.status_code == 200 and r["Content-Type"] == "application/x-pkcs12", r.content[-2000:]
    key, cert, _ = pkcs12.load_key_and_certificates(r.content, b"code-1234")
    assert Certificate.objects.get(username="p12user").serial == format(cert.serial_number, "x")
    assert r["Cache-Control"] == "no-store"


def test_use_username_asks_for_a_csr_when_the_token_is_user_generated(ra, registered):
    r = ra.post("/ra/enroll/username/", {"username": "walter", "enrollment_code": "code-1234",
                                         "key_source": "server", "key_algorithm": "P-256",
                                         "certificate_format": "pem"})
    assert r.status_code == 400 and "USERGENERATED" in r.content.decode()
    assert not Certificate.objects.filter(username="walter").exists()


def test_who_may_enroll(db, web_profile, registered):
    auditor = ui_client("raauditor", AUDITOR_RULES)
    r = auditor.get("/ra/enroll/")
    assert r.status_code == 403 and "/ra_functionality/create_end_entity" in r.content.decode()
    home = auditor.get("/ra/").content.decode()
    assert "Make New Request" not in home and "Use Username" not in home and "End Entities" in home
    r = auditor.get("/ra/enroll/username/")
    assert r.status_code == 403 and USE_USERNAME in r.content.decode()
    nobody = ui_client("ranobody", None)
    assert nobody.get("/ra/enroll/").status_code == 403
    r = nobody.get("/ra/")
    assert r.status_code == 403 and "/ra_functionality/view_end_entity" in r.content.decode()
    code_only = ui_client("codeonly", [USE_USERNAME])
    assert code_only.get("/ra/enroll/username/").status_code == 200
    assert "Use Username" in code_only.get("/ra/").content.decode()
    anonymous = Client().get("/ra/enroll/username/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    only_web = ui_client("webonly", ["/ra_functionality", "/ca", "/ca_functionality/create_certificate",
                                     f"/endentityprofilesrules/{web_profile.pk}"])
    r = only_web.get("/ra/enroll/")
    assert r.status_code == 302 and r["Location"] == f"/ra/enroll/?profile={web_profile.pk}"
