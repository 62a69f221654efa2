"""Certificate pages: search and pagination, the decoded view, downloads, revoke / hold / take off hold,
and issuing for a CSR."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.files.uploadedfile import SimpleUploadedFile

from pki.issuance import IssuanceRequest, issue
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.revocation import revoke
from pki.services.cas import edit_ca
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def server_profile(builtin_profiles):
    return CertificateProfile.objects.get(name="SERVER")


@pytest.fixture
def leaf(sub_ca, actor, csr_factory, server_profile):
    csr, _ = csr_factory("CN=ui-leaf.example.com,O=Test", san=["ui-leaf.example.com"])
    return issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=server_profile, csr=csr, username="uiuser")).row


def _rows(html: str) -> list[str]:
    """Subjects listed in the result table."""
    return re.findall(r'<a href="/certificates/\d+/">([^<]+)</a>', html)


SEARCHES = [
    ("q=ui-leaf", True),
    ("q=UI-LEAF.EXAMPLE", True),
    ("q=uiuser", True),
    ("q={serial_upper}", True),
    ("q={serial_colons}", True),
    ("q={fingerprint}", True),
    ("q=nothing-like-this", False),
    ("status=ACTIVE", True),
    ("status=REVOKED", False),
    ("ca={sub}", True),
    ("ca={root}", False),
    ("ca={sub}&status=ACTIVE&q=ui-leaf", True),
    ("expires_before=2000-01-01", False),
    ("expires_after=2000-01-01", True),
    ("expires_after=2999-01-01", False),
]


@pytest.mark.parametrize(("query", "found"), SEARCHES)
def test_search(admin, leaf, root_ca, sub_ca, query, found):
    serial = leaf.serial.upper()
    query = query.format(serial_upper=serial, serial_colons=":".join(re.findall("..", serial.zfill(40))),
                         fingerprint=leaf.fingerprint_sha256, sub=sub_ca.pk, root=root_ca.pk)
    r = admin.get(f"/certificates/?{query}")
    assert r.status_code == 200
    assert ("CN=ui-leaf.example.com,O=Test" in _rows(r.content.decode())) is found


def test_search_of_revoked_and_on_hold(admin, leaf, actor):
    revoke(actor, leaf, "certificateHold")
    assert "CN=ui-leaf.example.com,O=Test" in _rows(admin.get("/certificates/?status=ON_HOLD").content.decode())
    assert not _rows(admin.get("/certificates/?status=REVOKED&q=ui-leaf").content.decode())


def test_search_input_errors_are_shown_not_raised(admin, leaf):
    r = admin.get("/certificates/?expires_before=not-a-date&status=BOGUS")
    assert r.status_code == 400 and b"Enter a valid date" in r.content and b"Select a valid choice" in r.content


def test_search_pages_50_at_a_time_and_keeps_filters(admin, sub_ca, actor, csr_factory, server_profile):
    for i in range(51):
        csr, _ = csr_factory(f"CN=bulk{i:02d}.example.com")
        issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=server_profile, csr=csr))
    first = admin.get("/certificates/?q=bulk").content.decode()
    assert len(_rows(first)) == 50 and "Page 1 of 2" in first and "51 in all" in first
    assert "q=bulk&amp;page=2" in first
    second = admin.get("/certificates/?q=bulk&page=2").content.decode()
    assert _rows(second) == ["CN=bulk00.example.com"]  # newest first: the first one issued is last


def test_certificate_page_shows_the_decoded_certificate(admin, leaf):
    cert = leaf.certificate
    html = admin.get(f"/certificates/{leaf.pk}/").content.decode()
    serial = format(cert.serial_number, "X")
    serial = ("0" + serial) if len(serial) % 2 else serial
    for text in ("CN=ui-leaf.example.com,O=Test", "CN=TestSub,O=Test,C=SE", ":".join(re.findall("..", serial)),
                 "DNSNAME=ui-leaf.example.com", "digitalSignature", "serverAuth", "SERVER", "uiuser", "Active",
                 ":".join(re.findall("..", cert.fingerprint(hashes.SHA256()).hex().upper())),
                 ":".join(re.findall("..", cert.fingerprint(hashes.SHA1()).hex().upper())),
                 "subjectKeyIdentifier", "authorityKeyIdentifier", "BEGIN CERTIFICATE"):
        assert text in html, text


@pytest.mark.parametrize(("what", "count"), [("pem", 1), ("der", 1), ("chain", 3)])
def test_downloads_parse(admin, leaf, sub_ca, root_ca, what, count):
    r = admin.get(f"/certificates/{leaf.pk}/download/{what}/")
    assert r.status_code == 200 and r["Content-Disposition"].startswith('attachment; filename="uiuser')
    certs = [x509.load_der_x509_certificate(r.content)] if what == "der" else x509.load_pem_x509_certificates(r.content)
    assert len(certs) == count and certs[0].serial_number == leaf.serial_int
    if what == "chain":
        assert certs[1:] == [sub_ca.certificate, root_ca.certificate]


def test_certificates_of_hidden_cas_are_not_found(db, leaf, root_ca):
    client = ui_client("rootonly", ["/ca_functionality/view_certificate", f"/ca/{root_ca.pk}"])
    assert client.get(f"/certificates/{leaf.pk}/").status_code == 404
    assert client.get(f"/certificates/{leaf.pk}/download/pem/").status_code == 404
    assert _rows(client.get("/certificates/?q=ui-leaf").content.decode()) == []


def test_revoke_hold_and_take_off_hold(admin, leaf):
    page = admin.get(f"/certificates/{leaf.pk}/").content.decode()
    assert "keyCompromise" in page and "certificateHold" in page and "removeFromCRL" not in page
    assert "Take off hold" not in page

    r = admin.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "6"}, follow=True)
    assert Certificate.objects.get(pk=leaf.pk).status == "ON_HOLD"
    assert b"is now on hold" in r.content and b"Take off hold" in r.content

    r = admin.post(f"/certificates/{leaf.pk}/unhold/", follow=True)
    leaf.refresh_from_db()
    assert leaf.status == "ACTIVE" and leaf.revoked_at is None and b"taken off hold" in r.content

    r = admin.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "1"}, follow=True)
    leaf.refresh_from_db()
    assert (leaf.status, leaf.revocation_reason) == ("REVOKED", 1)
    assert b"keyCompromise" in r.content and b"revoked for good" in r.content
    assert list(AuditEvent.objects.filter(event_type__in=["CERT_REVOKED", "CERT_UNREVOKED"])
                .order_by("sequence").values_list("event_type", flat=True)) == \
        ["CERT_REVOKED", "CERT_UNREVOKED", "CERT_REVOKED"]


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        ("revoke", {"reason": "1"}, "already revoked"),
        ("unhold", {}, "not on hold"),
        ("revoke", {"reason": "8"}, "Choose a revocation reason"),
        ("revoke", {}, "Choose a revocation reason"),
    ],
)
def test_revocation_refusals_are_messages(admin, leaf, actor, url, data, message):
    revoke(actor, leaf, 1)
    r = admin.post(f"/certificates/{leaf.pk}/{url}/", data, follow=True)
    assert r.status_code == 200 and message in r.content.decode()
    assert Certificate.objects.get(pk=leaf.pk).revocation_reason == 1


def test_revoke_needs_its_rule_and_the_cas(db, leaf, sub_ca):
    viewer = ui_client("viewer", ["/ca_functionality/view_certificate", "/ca/"])
    assert b"Revoke" not in viewer.get(f"/certificates/{leaf.pk}/").content
    r = viewer.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "1"})
    assert r.status_code == 403 and b"/ra_functionality/revoke_end_entity" in r.content
    # The rule without the CA: the certificate is not even found
    other = ui_client("otherra", ["/ca_functionality/view_certificate", "/ra_functionality/revoke_end_entity"])
    assert other.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "1"}).status_code == 404
    assert Certificate.objects.get(pk=leaf.pk).status == "ACTIVE"


@pytest.mark.parametrize("how", ["paste", "upload-pem", "upload-der"])
def test_issue_for_csr(admin, sub_ca, csr_factory, server_profile, how):
    csr, _ = csr_factory("CN=form.example.com")
    data = {"ca": sub_ca.pk, "certificate_profile": server_profile.pk, "username": "formuser",
            "subject_alt_name": "DNSNAME=form.example.com, IPADDRESS=10.0.0.1"}
    if how == "paste":
        data["csr_pem"] = csr.public_bytes(Encoding.PEM).decode()
    else:
        encoding = Encoding.PEM if how == "upload-pem" else Encoding.DER
        data["csr_file"] = SimpleUploadedFile("req.csr", csr.public_bytes(encoding))
    r = admin.post("/certificates/issue/", data)
    assert r.status_code == 302
    cert = Certificate.objects.get(username="formuser")
    assert r["Location"] == f"/certificates/{cert.pk}/"
    assert cert.ca == sub_ca and cert.certificate_profile == server_profile
    assert cert.subject_alt_name == "DNSNAME=form.example.com, IPADDRESS=10.0.0.1"
    assert cert.certificate.public_key() == csr.public_key()
    cert.certificate.verify_directly_issued_by(sub_ca.certificate)


def test_issue_with_subject_override_and_validity(admin, sub_ca, csr_factory, server_profile):
    CertificateProfile.objects.filter(pk=server_profile.pk).update(allow_validity_override=True)
    csr, _ = csr_factory("CN=request-subject")
    r = admin.post("/certificates/issue/", {"ca": sub_ca.pk, "certificate_profile": server_profile.pk,
                                            "csr_pem": csr.public_bytes(Encoding.PEM).decode(),
                                            "subject_dn": "CN=override.example.com,O=Test", "validity": "30"})
    assert r.status_code == 302
    cert = Certificate.objects.get(subject_dn="CN=override.example.com,O=Test")
    assert (cert.not_after - cert.not_before).days == 30


def test_issue_form_offers_only_active_local_cas_and_end_entity_profiles(admin, root_ca, sub_ca, actor):
    from pki.models import CertificateAuthority

    edit_ca(actor, root_ca, status="OFFLINE")
    html = admin.get("/certificates/issue/").content.decode()
    ca_select = html.split('name="ca"', 1)[1].split("</select>", 1)[0]
    assert ">TestSub<" in ca_select and ">TestRoot<" not in ca_select
    profiles = html.split('name="certificate_profile"', 1)[1].split("</select>", 1)[0]
    assert ">SERVER<" in profiles and ">SUBCA<" not in profiles
    assert CertificateAuthority.objects.count() == 2


BAD_CSRS = [
    ({"csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nxx\n-----END CERTIFICATE REQUEST-----\n"},
     "not a valid PKCS#10"),
    ({"csr_pem": "just some text"}, "not a valid PKCS#10"),
    ({"csr_file": SimpleUploadedFile("req.der", b"\x30\x03\x02\x01\x00")}, "not a valid PKCS#10"),
    ({"csr_pem": "TAMPERED"}, "signature does not verify"),
    ({"csr_pem": "VALID", "validity": "30"}, "does not allow validity override"),
    ({"csr_pem": "VALID", "subject_alt_name": "FOO=bar"}, "FOO"),
    ({}, "Upload a CSR file or paste the PEM request"),
]


@pytest.mark.parametrize(("data", "message"), BAD_CSRS)
def test_issue_refusals_are_form_errors_and_create_nothing(admin, sub_ca, csr_factory, server_profile, data,
                                                           message):
    csr, _ = csr_factory("CN=bad.example.com")
    if data.get("csr_pem") == "VALID":
        data = {**data, "csr_pem": csr.public_bytes(Encoding.PEM).decode()}
    elif data.get("csr_pem") == "TAMPERED":
        der = bytearray(csr.public_bytes(Encoding.DER))
        der[-5] ^= 0xFF  # flip bits inside the signature
        data = {"csr_file": SimpleUploadedFile("req.der", bytes(der))}
    before = Certificate.objects.count()
    r = admin.post("/certificates/issue/", {"ca": sub_ca.pk, "certificate_profile": server_profile.pk, **data})
    html = r.content.decode()
    assert r.status_code == 400 and message in html and 'class="errorlist"' in html
    assert Certificate.objects.count() == before


def test_issuing_on_an_offline_ca_token_is_a_form_error(admin, ca_factory, soft_token_factory, actor, csr_factory,
                                                      server_profile):
    from cryptotokens.services import deactivate

    token = soft_token_factory("Manual", auto_activate=False)
    ca = ca_factory("OfflineCA", token=token)
    deactivate(actor, token)
    csr, _ = csr_factory("CN=offline.example.com")
    before = Certificate.objects.count()
    r = admin.post("/certificates/issue/", {"ca": ca.pk, "certificate_profile": server_profile.pk,
                                            "csr_pem": csr.public_bytes(Encoding.PEM).decode()})
    assert r.status_code == 503 and "offline" in r.content.decode()
    assert Certificate.objects.count() == before


def test_certificate_list_makes_a_fixed_number_of_queries(admin, sub_ca, actor, csr_factory, server_profile):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n):
        for _ in range(n):
            csr, _ = csr_factory("CN=count.example.com")
            issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=server_profile, csr=csr))

    add(1)
    admin.get("/certificates/")
    with CaptureQueriesContext(connection) as few:
        admin.get("/certificates/")
    add(5)
    with CaptureQueriesContext(connection) as more:
        admin.get("/certificates/")
    assert len(more) == len(few)
