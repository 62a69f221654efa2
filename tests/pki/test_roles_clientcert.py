"""Client certificate authentication behind the TLS proxy, with real certificates issued by the test CA.

The headers are the ones deploy/nginx/pki.conf sets: X-SSL-Client-Verify and X-SSL-Client-Cert (URL-encoded PEM).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.utils import timezone

from pki.choices import MemberMatch
from pki.issuance import IssuanceRequest, issue
from pki.models import AccessRule, AuditEvent, CertificateProfile, Role, RoleMember
from pki.revocation import revoke

V1 = "/ejbca/ejbca-rest-api/v1"


@pytest.fixture(autouse=True)
def behind_proxy(settings):
    settings.PKI_BEHIND_TLS_PROXY = True
    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's REMOTE_ADDR


def issue_client_cert(ca, actor, csr_factory, cn: str, **kw):
    csr, _ = csr_factory(f"CN={cn},O=Test")
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr, **kw))


def headers(cert: x509.Certificate, verify: str = "SUCCESS", **extra) -> dict:
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {"HTTP_X_SSL_CLIENT_VERIFY": verify, "HTTP_X_SSL_CLIENT_CERT": quote(pem, safe=""), **extra}


def role_with(rules: list[str], **member) -> Role:
    role = Role.objects.create(name=f"certrole-{Role.objects.count()}")
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
    RoleMember.objects.create(role=role, **member)
    return role


VIEW_CAS = ["/ca_functionality/view_ca", "/ca"]


@pytest.fixture
def client_cert(root_ca, actor, csr_factory):
    return issue_client_cert(root_ca, actor, csr_factory, "ra-client-1")


def test_serial_member_reaches_the_api(root_ca, client_cert):
    role_with(VIEW_CAS, match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=client_cert.row.serial,
              issuer_ca=root_ca)
    r = Client().get(f"{V1}/ca", **headers(client_cert.certificate))
    assert r.status_code == 200 and any(c["name"] == "TestRoot" for c in r.json()["certificate_authorities"])


def test_cn_member_reaches_the_admin_ui_without_a_session(root_ca, client_cert):
    role_with(VIEW_CAS + ["/administrator"], match_type=MemberMatch.CERTIFICATE_CN, match_value="ra-client-1",
              issuer_ca=root_ca)
    client = Client()
    r = client.get("/cas/", **headers(client_cert.certificate))
    html = r.content.decode()
    assert r.status_code == 200 and "TestRoot" in html and "ra-client-1 (certificate" in html
    assert client.get("/cas/").status_code == 302  # nothing kept in a session


def test_member_without_the_rule_gets_403_naming_it(root_ca, client_cert):
    role_with(["/administrator"], match_type=MemberMatch.CERTIFICATE_CN, match_value="ra-client-1", issuer_ca=root_ca)
    r = Client().get(f"{V1}/ca", **headers(client_cert.certificate))
    assert r.status_code == 403 and "/ca_functionality/view_ca" in r.json()["error_message"]


def _member(root_ca, cert):
    role_with(VIEW_CAS, match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=cert.row.serial, issuer_ca=root_ca)


@pytest.mark.parametrize(("case", "status"), [
    ("no proxy setting", 401),
    ("verify failed", 401),
    ("untrusted peer", 401),
    ("no trusted proxies", 401),  # an empty list means nobody, not any peer (issue 11, item 6)
    ("trusted peer", 200),
    ("malformed header", 401),
    # A certificate of ours that matches no member is authenticated without rights: 403, as EJBCA (issue 14).
    ("member of another CA", 403),
    ("no member", 403),
])
def test_when_the_forwarded_certificate_counts(settings, root_ca, ca_factory, client_cert, case, status):
    if case != "no member":
        other = ca_factory("OtherCA") if case == "member of another CA" else root_ca
        role_with(VIEW_CAS, match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=client_cert.row.serial,
                  issuer_ca=other)
    h = headers(client_cert.certificate)
    if case == "no proxy setting":
        settings.PKI_BEHIND_TLS_PROXY = False
    elif case == "verify failed":
        h["HTTP_X_SSL_CLIENT_VERIFY"] = "FAILED:certificate has expired"
    elif case == "untrusted peer":
        settings.PKI_TRUSTED_PROXIES = ["10.1.0.0/16"]
    elif case == "no trusted proxies":
        settings.PKI_TRUSTED_PROXIES = []
    elif case == "trusted peer":
        settings.PKI_TRUSTED_PROXIES = ["10.1.0.0/16", "127.0.0.1"]
    elif case == "malformed header":
        h["HTTP_X_SSL_CLIENT_CERT"] = "-----BEGIN%20CERTIFICATE-----%0Agarbage"
    r = Client().get(f"{V1}/ca", **h)
    assert r.status_code == status, r.content
    assert "Traceback" not in r.content.decode()


@pytest.mark.parametrize("state", ["revoked", "on hold", "expired", "unknown"])
def test_refused_certificates_of_our_ca_are_401_and_audited(root_ca, actor, csr_factory, client_cert, state):
    _member(root_ca, client_cert)
    row = client_cert.row
    if state == "revoked":
        revoke(actor, row, "keyCompromise")
    elif state == "on hold":
        revoke(actor, row, "certificateHold")
    elif state == "expired":
        row.__class__.objects.filter(pk=row.pk).update(not_after=timezone.now() - timedelta(minutes=1))
    else:
        row.__class__.objects.filter(pk=row.pk).update(serial="abcdef0123")  # the database does not know it
    r = Client().get(f"{V1}/ca", **headers(client_cert.certificate))
    assert r.status_code == 401
    word = {"revoked": "revoked", "on hold": "revoked", "expired": "expired", "unknown": "not known"}[state]
    assert word in r.json()["error_message"]
    event = AuditEvent.objects.get(event_type="CLIENT_CERTIFICATE_LOGIN", outcome="FAILURE")
    assert "ra-client-1" in event.actor and word in str(event.details)
    # The admin UI does not log it in either.
    assert Client().get("/cas/", **headers(client_cert.certificate)).status_code == 302


def test_a_lookalike_certificate_from_a_foreign_key_is_ignored(root_ca, client_cert):
    """Same issuer name and serial as a real member's certificate, signed by another key: not ours."""
    _member(root_ca, client_cert)
    real = client_cert.certificate
    key = ec.generate_private_key(ec.SECP256R1())
    fake = (x509.CertificateBuilder().subject_name(real.subject).issuer_name(real.issuer)
            .public_key(key.public_key()).serial_number(real.serial_number)
            .not_valid_before(real.not_valid_before_utc).not_valid_after(real.not_valid_after_utc)
            .sign(key, hashes.SHA256()))
    r = Client().get(f"{V1}/ca", **headers(fake))
    assert r.status_code == 401
    assert not AuditEvent.objects.filter(event_type="CLIENT_CERTIFICATE_LOGIN").exists()


def test_an_authorization_header_wins_over_the_certificate(root_ca, client_cert):
    import base64

    from django.contrib.auth import get_user_model

    _member(root_ca, client_cert)
    get_user_model().objects.create_user("basicuser", password="pw-basic-1")
    auth = "Basic " + base64.b64encode(b"basicuser:pw-basic-1").decode()
    r = Client().get(f"{V1}/ca", HTTP_AUTHORIZATION=auth, **headers(client_cert.certificate))
    assert r.status_code == 403  # basicuser has no role; the certificate's role is not borrowed


@pytest.mark.parametrize(("sent", "status"), [(None, 401), ("wrong-secret", 401), ("proxy-secret-1", 200)])
def test_with_a_proxy_secret_only_requests_carrying_it_count(settings, root_ca, client_cert, sent, status):
    """A local process reaching gunicorn's loopback port is a trusted peer by address; the secret make run's nginx
    adds (PKI_PROXY_SECRET) is what it lacks."""
    settings.PKI_PROXY_SECRET = "proxy-secret-1"
    _member(root_ca, client_cert)
    extra = {} if sent is None else {"HTTP_X_PKI_PROXY_SECRET": sent}
    assert Client().get(f"{V1}/ca", **headers(client_cert.certificate, **extra)).status_code == status


def test_a_certificate_without_member_is_403_on_the_api_but_no_identity_in_the_ui(root_ca, client_cert):
    """EJBCA answers 403 to a known client certificate without a role (it is authenticated, not authorized); the
    admin UI keeps sending it to the login page rather than showing pages it may not see."""
    r = Client().get(f"{V1}/ca", **headers(client_cert.certificate))
    assert r.status_code == 403 and "error_message" in r.json()
    r = Client().post(f"{V1}/ca/{quote(root_ca.subject_dn, safe='')}/createcrl", content_type="application/json",
                      **headers(client_cert.certificate))
    assert r.status_code == 403 and root_ca.crls.count() == 1  # nothing made
    assert Client().get("/cas/", **headers(client_cert.certificate)).status_code == 302


def test_a_session_decides_over_a_certificate_without_member(root_ca, client_cert):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("sessionadmin", password="pw-session-1")
    role_with(VIEW_CAS, match_type=MemberMatch.LOCAL_USER, match_value=user.username)
    client = Client()
    client.force_login(user)
    r = client.get(f"{V1}/ca", **headers(client_cert.certificate))
    assert r.status_code == 200 and any(c["name"] == "TestRoot" for c in r.json()["certificate_authorities"])


def test_api_post_with_a_certificate_needs_no_csrf_token(root_ca, client_cert):
    role_with(["/ca_functionality/create_crl", "/ca"], match_type=MemberMatch.CERTIFICATE_SERIAL,
              match_value=client_cert.row.serial, issuer_ca=root_ca)
    r = Client(enforce_csrf_checks=True).post(f"{V1}/ca/{quote(root_ca.subject_dn, safe='')}/createcrl",
                                              content_type="application/json", **headers(client_cert.certificate))
    assert r.status_code == 200, r.content
    assert root_ca.crls.count() == 2  # the one made with the CA, and this one


@pytest.mark.django_db(transaction=True)
def test_through_the_shipped_nginx_with_a_certificate_of_our_ca(settings, live_server, root_ca, actor, csr_factory,
                                                                 tmp_path):
    """deploy/nginx/pki.conf verifies the client certificate against our CA and forwards it; the application
    turns it into the role member's identity. The same certificate revoked: 401."""
    from tests.deploy.test_nginx import HOST, Proxy, nginx_binary, render

    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    csr, key = csr_factory("CN=nginx-client,O=Test")
    leaf = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr))
    role_with(VIEW_CAS, match_type=MemberMatch.CERTIFICATE_CN, match_value="nginx-client", issuer_ca=root_ca)

    proxy = Proxy(tmp_path)
    tls = tmp_path / "tls"
    (tls / "client-ca.pem").write_bytes(root_ca.certificate.public_bytes(serialization.Encoding.PEM))
    (tls / "ours.pem").write_bytes(leaf.certificate.public_bytes(serialization.Encoding.PEM))
    (tls / "ours.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    proxy.config = render(tmp_path, int(live_server.url.rsplit(":", 1)[1]), proxy.http_port, proxy.https_port)
    try:
        proxy.start(nginx_binary())
        status, _, body = proxy.request("https", "GET", f"{V1}/ca", client="ours")
        assert status == 200, body[:500]
        assert "TestRoot" in body.decode()
        # Without a certificate nobody is authenticated.
        assert proxy.request("https", "GET", f"{V1}/ca")[0] == 401
        revoke(actor, leaf.row, "keyCompromise")
        status, _, body = proxy.request("https", "GET", f"{V1}/ca", client="ours")
        assert status == 401 and b"revoked" in body
    finally:
        proxy.stop()


def test_a_certificate_from_before_a_ca_renewal_with_a_new_key_still_counts(root_ca, actor, client_cert):
    from pki.services.cas import renew_ca

    _member(root_ca, client_cert)
    renewed = renew_ca(actor, root_ca, new_key_alias="signKey2", new_key_spec="P-256")
    with pytest.raises(InvalidSignature):  # the current CA certificate did not sign it
        client_cert.certificate.verify_directly_issued_by(renewed.certificate)
    r = Client().get(f"{V1}/ca", **headers(client_cert.certificate))
    assert r.status_code == 200
