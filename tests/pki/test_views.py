"""The admin UI: every page renders for an administrator, refusals are friendly, forms call the services."""

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.contrib.auth import get_user_model
from django.test import Client

from pki.choices import MemberMatch
from pki.models import (
    CRL,
    AccessRule,
    AuditEvent,
    Certificate,
    CertificateAuthority,
    CertificateProfile,
    Role,
    RoleMember,
)
from tests.conftest import pem


def _user(username: str, rules: list[str] | None) -> Client:
    get_user_model().objects.create_user(username, password="pw-" + username + "-123")
    if rules is not None:
        role = Role.objects.create(name=f"role-{username}")
        AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
        RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=username)
    client = Client()
    assert client.login(username=username, password="pw-" + username + "-123")
    return client


@pytest.fixture
def admin(db, builtin_profiles):
    return _user("uiadmin", ["/"])


@pytest.fixture
def leaf(sub_ca, actor, csr_factory):
    from pki.issuance import IssuanceRequest, issue

    csr, _ = csr_factory("CN=ui-leaf.example.com", san=["ui-leaf.example.com"])
    return issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr, username="uiuser")).row


def test_login_logout_are_audited(db):
    get_user_model().objects.create_user("alice", password="correct-horse-1")
    client = Client()
    r = client.post("/login/", {"username": "alice", "password": "wrong"})
    assert r.status_code == 200 and b"Log in" in r.content
    failed = AuditEvent.objects.get(event_type="LOGIN", outcome="FAILURE")
    assert failed.actor == "alice" and "wrong" not in str(failed.details).replace("wrong user", "")
    r = client.post("/login/", {"username": "alice", "password": "correct-horse-1"})
    assert r.status_code == 302
    assert AuditEvent.objects.filter(event_type="LOGIN", outcome="SUCCESS", actor="alice").exists()
    client.post("/logout/")
    assert AuditEvent.objects.filter(event_type="LOGOUT", actor="alice").exists()
    assert Client().get("/cas/").status_code == 302  # anonymous: to the login page


def test_dashboard_with_charts(admin, leaf):
    r = admin.get("/")
    html = r.content.decode()
    assert r.status_code == 200
    assert html.count("<svg") == 2 and "Certificates issued per day" in html and "expiring per week" in html
    assert re.search(r"<title>\d\d \w\w\w: 3</title>", html)  # today: root, sub-CA and leaf certificates
    assert "TestSub" in html
    assert "https://" not in html  # no external assets


@pytest.mark.parametrize("url", ["/", "/cas/", "/cas/new/", "/cas/import/", "/profiles/", "/profiles/new/",
                                 "/certificates/", "/certificates/issue/", "/crls/", "/audit/"])
def test_pages_render(admin, root_ca, url):
    r = admin.get(url)
    assert r.status_code == 200, url
    assert b"Certificate authorities" in r.content  # navigation is there


def test_user_without_role_sees_not_authorized(db, root_ca):
    client = _user("nobody", None)
    for url in ("/", "/cas/", f"/cas/{root_ca.pk}/", "/audit/", "/certificates/issue/"):
        r = client.get(url)
        assert r.status_code == 403 and b"Not authorized" in r.content, url
    r = client.get("/cas/")
    assert b"/ca_functionality/view_ca" in r.content


def test_auditor_navigation_is_limited(db, root_ca):
    client = _user("auditor", ["/administrator", "/audit/view"])
    html = client.get("/").content.decode()
    assert "Audit log" in html and "Issue for CSR" not in html and "Certificate profiles" not in html


def test_create_root_and_sub_ca_through_forms(admin, soft_token, openssl):
    r = admin.post("/cas/new/", {
        "name": "UiRoot", "subject_dn": "CN=UI Root,O=Test,C=SE", "crypto_token": soft_token.pk,
        "key_alias": "rootKey", "generate_key": "on", "key_spec": "P-256", "validity": "5y",
        "crl_period_hours": "24", "crl_overlap_hours": "0.5", "delta_crl_period_hours": "0",
    })
    assert r.status_code == 302, r.content.decode()[-2000:]
    root = CertificateAuthority.objects.get(name="UiRoot")
    r = admin.post("/cas/new/", {
        "name": "UiSub", "subject_dn": "CN=UI Sub,O=Test,C=SE", "crypto_token": soft_token.pk, "signed_by": root.pk,
        "key_alias": "subKey", "generate_key": "on", "key_spec": "RSA2048", "validity": "2y",
        "signature_algorithm": "SHA256WithRSA", "crl_period_hours": "12", "crl_overlap_hours": "1",
        "delta_crl_period_hours": "1", "crl_distribution_point": "http://127.0.0.1/crl/UiSub.crl",
    })
    assert r.status_code == 302
    sub = CertificateAuthority.objects.get(name="UiSub")
    assert sub.signed_by == root and sub.crl_period.total_seconds() == 12 * 3600
    openssl.write("root.pem", pem(root.certificate))
    openssl.write("sub.pem", pem(sub.certificate))
    assert "OK" in openssl("verify", "-CAfile", "root.pem", "sub.pem").stdout
    page = admin.get(f"/cas/{sub.pk}/").content.decode()
    assert "UI Sub" in page and "Signed by" in page and "UiRoot" in page
    chain = admin.get(f"/cas/{sub.pk}/download/chain/")
    assert len(x509.load_pem_x509_certificates(chain.content)) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject_dn": "BOGUS=1"}, "Unknown DN attribute"),
        ({"name": "TestRoot"}, "already exists"),
        ({"validity": "forever"}, "Cannot read validity"),
        ({"key_spec": "RSA2048", "signature_algorithm": "SHA256withECDSA"}, "needs a EC key"),
    ],
)
def test_create_ca_errors_show_on_the_form(admin, root_ca, soft_token, changes, message):
    data = {"name": "Bad", "subject_dn": "CN=Bad", "crypto_token": soft_token.pk, "key_alias": "k",
            "generate_key": "on", "key_spec": "P-256", "validity": "1y", "crl_period_hours": "24",
            "crl_overlap_hours": "0", "delta_crl_period_hours": "0", **changes}
    r = admin.post("/cas/new/", data)
    assert r.status_code == 400 and message in r.content.decode()
    assert not CertificateAuthority.objects.filter(name="Bad").exists()


def test_import_edit_renew(admin, root_ca, sub_ca):
    from tests.pki.test_cas import _external_chain

    ext_sub, ext_root = _external_chain()
    r = admin.post("/cas/import/", {"name": "Ext", "certificate_pem": pem(ext_sub, ext_root).decode()})
    assert r.status_code == 302 and CertificateAuthority.objects.get(name="Ext").is_external
    r = admin.post("/cas/import/", {"name": "Junk", "certificate_pem": "junk"})
    assert r.status_code == 400 and b"Not a certificate" in r.content
    r = admin.post(f"/cas/{sub_ca.pk}/edit/", {
        "description": "edited", "validity": "3y", "signature_algorithm": "SHA384withECDSA", "status": "ACTIVE",
        "crl_period_hours": "6", "crl_overlap_hours": "0.25", "delta_crl_period_hours": "0", "is_default": "on"})
    assert r.status_code == 302
    sub_ca.refresh_from_db()
    assert (sub_ca.description, sub_ca.signature_algorithm, sub_ca.is_default) == ("edited", "SHA384withECDSA", True)
    old = sub_ca.certificate.serial_number
    assert admin.post(f"/cas/{sub_ca.pk}/renew/", {}).status_code == 302
    sub_ca.refresh_from_db()
    assert sub_ca.certificate.serial_number != old
    r = admin.post(f"/cas/{root_ca.pk}/renew/", {"new_key": "on", "new_key_alias": "next", "new_key_spec": "P-384",
                                                 "activate_at": "2099-01-01T00:00"})
    assert r.status_code == 302
    root_ca.refresh_from_db()
    assert root_ca.rollover_certificate is not None and root_ca.key_alias == "signKey"
    assert b"Rollover certificate" in admin.get(f"/cas/{root_ca.pk}/").content


def test_profiles_create_edit_clone_delete(admin):
    server = CertificateProfile.objects.get(name="SERVER")
    assert admin.get(f"/profiles/{server.pk}/edit/").status_code == 302  # fixed: back to the view page
    r = admin.post(f"/profiles/{server.pk}/clone/", {"name": "WebServer"})
    clone = CertificateProfile.objects.get(name="WebServer")
    assert r.status_code == 302 and clone.key_usage == server.key_usage
    data = {"name": "WebServer", "profile_type": "ENDENTITY", "validity": "397d", "key_usage": ["digitalSignature"],
            "key_usage_critical": "on", "extended_key_usage": ["1.3.6.1.5.5.7.3.1"], "extra_eku": "1.2.3.4.5",
            "allowed_key_algorithms": ["EC"], "allowed_curves": ["secp256r1"], "basic_constraints": "on",
            "use_subject_key_id": "on", "ext-TOTAL_FORMS": "2", "ext-INITIAL_FORMS": "0",
            "ext-0-oid": "1.2.3.9", "ext-0-encoding": "UTF8String", "ext-0-value": "hello",
            "ext-1-oid": "", "ext-1-encoding": "UTF8String"}
    r = admin.post(f"/profiles/{clone.pk}/edit/", data)
    assert r.status_code == 302, r.content.decode()[-3000:]
    clone.refresh_from_db()
    assert clone.validity == "397d" and clone.extended_key_usage == ["1.3.6.1.5.5.7.3.1", "1.2.3.4.5"]
    assert clone.custom_extensions == [{"oid": "1.2.3.9", "critical": False, "encoding": "UTF8String",
                                        "value": "hello", "dynamic": False}]
    bad = admin.post(f"/profiles/{clone.pk}/edit/", {**data, "validity": "soon"})
    assert bad.status_code == 400 and b"Cannot read validity" in bad.content
    assert admin.post(f"/profiles/{clone.pk}/delete/").status_code == 302
    assert not CertificateProfile.objects.filter(name="WebServer").exists()


def test_certificate_search_view_download(admin, leaf, sub_ca):
    for query, found in (("?q=ui-leaf", True), (f"?q={leaf.serial.upper()}", True), ("?status=REVOKED", False),
                         (f"?ca={sub_ca.pk}&status=ACTIVE", True), ("?q=nothing-like-this", False),
                         ("?expires_before=2000-01-01", False)):
        html = admin.get("/certificates/" + query).content.decode()
        assert ("ui-leaf.example.com" in html) is found, query
    html = admin.get(f"/certificates/{leaf.pk}/").content.decode()
    assert "DNSNAME=ui-leaf.example.com" in html and "serverAuth" in html and "SHA-256 fingerprint" in html
    assert x509.load_pem_x509_certificate(admin.get(f"/certificates/{leaf.pk}/download/pem/").content).serial_number \
        == leaf.serial_int
    assert x509.load_der_x509_certificate(admin.get(f"/certificates/{leaf.pk}/download/der/").content)
    assert len(x509.load_pem_x509_certificates(admin.get(f"/certificates/{leaf.pk}/download/chain/").content)) == 3


def test_revoke_hold_and_unhold(admin, leaf):
    admin.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "6"})
    assert Certificate.objects.get(pk=leaf.pk).status == "ON_HOLD"
    assert b"Take off hold" in admin.get(f"/certificates/{leaf.pk}/").content
    admin.post(f"/certificates/{leaf.pk}/unhold/")
    assert Certificate.objects.get(pk=leaf.pk).status == "ACTIVE"
    admin.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "1"})
    assert Certificate.objects.get(pk=leaf.pk).status == "REVOKED"
    r = admin.post(f"/certificates/{leaf.pk}/revoke/", {"reason": "1"}, follow=True)
    assert b"already revoked" in r.content


def test_issue_for_csr(admin, sub_ca, csr_factory):
    csr, _ = csr_factory("CN=form.example.com")
    profile = CertificateProfile.objects.get(name="SERVER")
    r = admin.post("/certificates/issue/", {
        "ca": sub_ca.pk, "certificate_profile": profile.pk, "username": "formuser",
        "csr_pem": csr.public_bytes(Encoding.PEM).decode(), "subject_alt_name": "DNSNAME=form.example.com"})
    assert r.status_code == 302
    cert = Certificate.objects.get(username="formuser")
    assert r["Location"] == f"/certificates/{cert.pk}/" and cert.subject_alt_name == "DNSNAME=form.example.com"
    before = Certificate.objects.count()
    for data, message in (({"csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nxx\n"}, "not a valid PKCS#10"),
                          ({"csr_pem": csr.public_bytes(Encoding.PEM).decode(), "validity": "30"},
                           "does not allow validity override"),
                          ({}, "Upload a CSR file")):
        r = admin.post("/certificates/issue/", {"ca": sub_ca.pk, "certificate_profile": profile.pk, **data})
        assert r.status_code == 400 and message in r.content.decode()
    assert Certificate.objects.count() == before


def test_crl_button_and_task_status(admin, sub_ca):
    r = admin.post(f"/crls/{sub_ca.pk}/create/", follow=True)
    assert r.status_code == 200 and b"CRL #1 for TestSub created" in r.content
    assert CRL.objects.filter(ca=sub_ca).count() == 1
    status = admin.get("/tasks/does-not-exist/").json()
    assert status["state"] == "PENDING"


def test_audit_page_and_verify(admin, leaf):
    html = admin.get("/audit/?event_type=CERT_CREATION").content.decode()
    assert "CERT_CREATION" in html and "CA_CREATION" not in html
    assert "Chain intact" in admin.get("/audit/?verify=1").content.decode()
    AuditEvent.objects.filter(sequence=2).update(actor="mallory")
    assert "Chain broken" in admin.get("/audit/?verify=1").content.decode()
