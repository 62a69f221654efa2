"""RA portal search: end entities and certificates limited to what the operator's rules allow, the view
pages, revocation (buttons only for those allowed) and certificate downloads; the portal's own navigation."""

from __future__ import annotations

import re

import pytest
from cryptography import x509

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.bootstrap import DEFAULT_ROLES
from pki.choices import CertificateStatus
from pki.models import Certificate
from tests.endentities import entities_support
from tests.pki.test_views_auth import ui_client

# The service tests' fixtures (a profile, a profile factory, end entities added through the service).
ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory

RA_ADMIN_RULES = [r for r, allowed in DEFAULT_ROLES["RA Administrator"][1] if allowed]
AUDITOR_RULES = [r for r, allowed in DEFAULT_ROLES["Auditor"][1] if allowed]


@pytest.fixture
def other_profile(ee_profile_factory, root_ca):
    return ee_profile_factory("Other", ca=root_ca)


@pytest.fixture
def issued(entity_factory, ee_profile, other_profile, actor, csr_factory):
    """anna (TestEEP) and otto (Other), each with one certificate."""
    from endentities.services import enroll_with_ra

    entity_factory("anna", subject_dn="CN=anna,O=Test,C=SE")
    entity_factory("otto", subject_dn="CN=otto,O=Test,C=SE", profile=other_profile)
    for name in ("anna", "otto"):
        csr, _ = csr_factory(f"CN={name}")
        enroll_with_ra(actor, name, csr=csr)
    return {name: Certificate.objects.get(username=name) for name in ("anna", "otto")}


@pytest.fixture
def ra(db, ee_profile):
    return ui_client("rasearch", RA_ADMIN_RULES)  # the default RA Administrator role has use_username


@pytest.fixture
def auditor(db, ee_profile):
    return ui_client("raaud", AUDITOR_RULES)


def _names(html: str, kind: str) -> list[str]:
    return re.findall(rf'<a href="/ra/{kind}/\d+/">([^<]+)</a>', html)


def test_portal_has_its_own_navigation(ra):
    html = ra.get("/ra/").content.decode()
    assert 'class="ra-menu"' in html and 'class="side"' not in html
    for label, url in (("Make New Request", "/ra/enroll/"), ("Use Username", "/ra/enroll/username/"),
                       ("End Entities", "/ra/endentities/"), ("Certificates", "/ra/certificates/")):
        assert f'<a href="{url}">{label}</a>' in html
    assert "<summary>Enroll</summary>" in html and "<summary>Search</summary>" in html
    admin_nav = ra.get("/endentities/").content.decode()
    assert 'href="/ra/"' in admin_nav  # the admin UI's navigation links to the portal


@pytest.mark.parametrize("query, expected", [
    ("", ["anna", "otto"]),
    ("text=ann", ["anna"]),
    ("status=40", ["anna", "otto"]),
    ("status=10", []),
])
def test_search_end_entities(ra, issued, query, expected):
    r = ra.get("/ra/endentities/?" + query)
    assert r.status_code == 200 and _names(r.content.decode(), "endentities") == expected


def test_search_only_finds_what_the_rules_allow(db, issued, ee_profile):
    op = ui_client("annaonly", ["/ra_functionality", "/ca", "/ca_functionality/view_certificate",
                                f"/endentityprofilesrules/{ee_profile.pk}"])
    assert _names(op.get("/ra/endentities/").content.decode(), "endentities") == ["anna"]
    otto = EndEntity.objects.get(username="otto")
    assert op.get(f"/ra/endentities/{otto.pk}/").status_code == 404
    op.post(f"/ra/endentities/{otto.pk}/revoke/", {"reason": "1"})
    assert EndEntity.objects.get(username="otto").status == EndEntityStatus.GENERATED

    no_ca = ui_client("noca", ["/ra_functionality", "/ca_functionality/view_certificate",
                               "/endentityprofilesrules"])
    assert _names(no_ca.get("/ra/endentities/").content.decode(), "endentities") == []
    assert "No certificates match." in no_ca.get("/ra/certificates/").content.decode()
    assert no_ca.get(f"/ra/certificates/{issued['anna'].pk}/").status_code == 404


def test_view_and_revoke_an_end_entity(ra, issued):
    anna = EndEntity.objects.get(username="anna")
    html = ra.get(f"/ra/endentities/{anna.pk}/").content.decode()
    assert "CN=anna" in html and issued["anna"].serial.upper() in html
    assert f"/ra/endentities/{anna.pk}/revoke/" in html and f"/ra/certificates/{issued['anna'].pk}/" in html
    r = ra.post(f"/ra/endentities/{anna.pk}/revoke/", {"reason": "4"})
    assert r.status_code == 302
    anna.refresh_from_db()
    assert anna.status == EndEntityStatus.REVOKED
    cert = Certificate.objects.get(pk=issued["anna"].pk)
    assert (cert.status, cert.revocation_reason) == (CertificateStatus.REVOKED, 4)
    assert f"/ra/endentities/{anna.pk}/revoke/" not in ra.get(f"/ra/endentities/{anna.pk}/").content.decode()


def test_auditor_views_without_revoke_buttons_and_cannot_revoke(auditor, issued):
    anna = EndEntity.objects.get(username="anna")
    html = auditor.get(f"/ra/endentities/{anna.pk}/").content.decode()
    assert "CN=anna" in html and "/revoke/" not in html
    cert_page = auditor.get(f"/ra/certificates/{issued['anna'].pk}/").content.decode()
    assert "Download PEM" in cert_page and "/revoke/" not in cert_page
    for url in (f"/ra/endentities/{anna.pk}/revoke/", f"/ra/certificates/{issued['anna'].pk}/revoke/"):
        r = auditor.post(url, {"reason": "1"})
        assert r.status_code == 403 and "/ra_functionality/revoke_end_entity" in r.content.decode()
    assert Certificate.objects.get(pk=issued["anna"].pk).status == CertificateStatus.ACTIVE


def test_no_role_gets_nothing(db, issued):
    nobody = ui_client("ranone", None)
    for url in ("/ra/endentities/", "/ra/certificates/", f"/ra/certificates/{issued['anna'].pk}/download/pem/"):
        assert nobody.get(url).status_code == 403


@pytest.mark.parametrize("query, expected", [
    ("q=anna", ["CN=anna,O=Test,C=SE"]),
    ("q=otto", ["CN=otto,O=Test,C=SE"]),
    ("status=REVOKED", []),
    ("q=nobody-at-all", []),
])
def test_search_certificates(ra, issued, query, expected):
    html = ra.get("/ra/certificates/?" + query).content.decode()
    assert [s.replace(", ", ",") for s in _names(html, "certificates")] in (expected, [
        ",".join(reversed(e.split(","))) for e in expected])


def test_certificate_view_downloads_and_revoke(ra, issued, root_ca):
    cert = issued["anna"]
    html = ra.get(f"/ra/certificates/{cert.pk}/").content.decode()
    assert cert.serial.upper().replace(":", "") in html.replace(":", "").upper()
    pem = ra.get(f"/ra/certificates/{cert.pk}/download/pem/")
    assert x509.load_pem_x509_certificate(pem.content).serial_number == int(cert.serial, 16)
    der = ra.get(f"/ra/certificates/{cert.pk}/download/der/")
    assert der["Content-Type"] == "application/pkix-cert"
    chain = x509.load_pem_x509_certificates(ra.get(f"/ra/certificates/{cert.pk}/download/chain/").content)
    assert chain[-1] == root_ca.certificate
    assert ra.get(f"/ra/certificates/{cert.pk}/download/p7b/").status_code == 404
    r = ra.post(f"/ra/certificates/{cert.pk}/revoke/", {"reason": "6"})
    assert r.status_code == 302
    assert Certificate.objects.get(pk=cert.pk).status == CertificateStatus.ON_HOLD
