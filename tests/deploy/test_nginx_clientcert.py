"""Issue 11, items 2 and 6, against the running stack: deploy/nginx/pki.conf in front of the application
(pytest-django's live server, the test database), with real client certificates issued by the test CA.

* Item 2: an RA operator who logs in with its client certificate pkcs10enrolls a CSR for CN=<the super
  administrator member's CN> from the CA that issues administrator credentials: refused (403), nothing stored.
* Item 6: forged client-certificate headers carrying the administrator's (public) certificate, sent straight
  to the application from a peer that is not the proxy, or through nginx (which overwrites them), authenticate
  nobody; the same headers from the configured proxy address are believed.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization

from pki.bootstrap import DEFAULT_ROLES
from pki.choices import MemberMatch
from pki.issuance import IssuanceRequest, issue
from pki.models import AccessRule, AuditEvent, Certificate, CertificateProfile, Role, RoleMember
from tests.deploy.test_nginx import HOST, Proxy, nginx_binary, render
from tests.endentities.entities_support import *  # noqa: F403  (ee_profile)

V1 = "/ejbca/ejbca-rest-api/v1"
ADMIN_CN = "pki-superadmin"
UNTRUSTED_PEER = "127.0.0.3"  # a loopback address of its own: "another host" that reaches gunicorn directly


def _pem(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def _role(name: str, rules: list[str], cn: str, ca) -> None:
    role = Role.objects.create(name=name)
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
    RoleMember.objects.create(role=role, match_type=MemberMatch.CERTIFICATE_CN, match_value=cn, issuer_ca=ca)


@pytest.fixture
def stack(settings, live_server, root_ca, actor, csr_factory, ee_profile, tmp_path):
    """nginx (the shipped configuration) -> the application; TestRoot issues the administrators' certificates."""
    settings.PKI_BEHIND_TLS_PROXY = True
    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1"]  # what the systemd units ship: nginx on the same host
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    profile = CertificateProfile.objects.get(name="ENDUSER")
    certs = {}
    for name, cn in (("raop", "ra-operator"), ("admin", ADMIN_CN)):
        csr, key = csr_factory(f"CN={cn},O=Test")
        certs[name] = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=profile, csr=csr)).certificate
        (tmp_path / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _role("Super Administrator Role", ["/"], ADMIN_CN, root_ca)
    _role("RA Administrator", [r for r, allowed in DEFAULT_ROLES["RA Administrator"][1] if allowed], "ra-operator",
          root_ca)

    proxy = Proxy(tmp_path)
    tls = tmp_path / "tls"
    (tls / "client-ca.pem").write_bytes(_pem(root_ca.certificate))
    (tls / "raop.pem").write_bytes(_pem(certs["raop"]))
    (tls / "raop.key").write_bytes((tmp_path / "raop.key").read_bytes())
    port = int(live_server.url.rsplit(":", 1)[1])
    proxy.config = render(tmp_path, port, proxy.http_port, proxy.https_port)
    proxy.start(nginx_binary())
    try:
        yield proxy, port, certs
    finally:
        proxy.stop()


def _enroll_body(csr_factory, cn: str, username: str) -> bytes:
    # O=Elsewhere: not the administrator's own DN, which the CA's unique-DN rule would refuse anyway.
    csr, _ = csr_factory(f"CN={cn},O=Elsewhere")
    return json.dumps({"certificate_request": _pem(csr).decode(), "username": username, "password": "foo123",
                       "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
                       "certificate_authority_name": "TestRoot"}).encode()


@pytest.mark.django_db(transaction=True)
def test_ra_operator_with_its_client_certificate_cannot_issue_itself_an_admin_certificate(stack, csr_factory):
    proxy, _, _ = stack
    json_headers = {"Content-Type": "application/json"}
    status, _, body = proxy.request("https", "POST", f"{V1}/certificate/pkcs10enroll", headers=json_headers,
                                    body=_enroll_body(csr_factory, ADMIN_CN, "evil"), client="raop")
    assert status == 403, body[:500]
    assert "Super Administrator Role" in json.loads(body)["error_message"]
    assert list(Certificate.objects.filter(subject_dn__startswith=f"CN={ADMIN_CN}").values_list("username", flat=True)
                ) == [""]  # only the administrator's own certificate of the fixture
    refusal = AuditEvent.objects.filter(outcome="FAILURE", actor__startswith="ra-operator").latest("sequence")
    assert "would log in as a member of role 'Super Administrator Role'" in refusal.details["reason"]
    # The operator is authenticated by its certificate through nginx and enrolls anyone else.
    status, _, body = proxy.request("https", "POST", f"{V1}/certificate/pkcs10enroll", headers=json_headers,
                                    body=_enroll_body(csr_factory, "printer-17", "printer17"), client="raop")
    assert status == 201, body[:500]


def _direct(port: int, source: str, headers: dict) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        conn.request("GET", f"{V1}/ca", headers={"Host": HOST, **headers})
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_forged_certificate_headers_count_only_from_the_proxy(stack, settings):
    proxy, port, certs = stack
    forged = {"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-Cert": quote(_pem(certs["admin"]).decode(), safe="")}
    # Straight to the application from another peer: ignored, nobody is authenticated.
    assert _direct(port, UNTRUSTED_PEER, forged) == 401
    # Through nginx without a certificate: nginx overwrites both headers.
    assert proxy.request("https", "GET", f"{V1}/ca", headers=forged)[0] == 401
    # The same headers from the proxy's address are believed (what makes the address list matter).
    assert _direct(port, "127.0.0.1", forged) == 200
    # The old shipped default, an empty list, meant "any peer"; the settings now refuse to start with it, and
    # set at run time it means nobody.
    settings.PKI_TRUSTED_PROXIES = []
    assert _direct(port, UNTRUSTED_PEER, forged) == 401
    assert _direct(port, "127.0.0.1", forged) == 401
