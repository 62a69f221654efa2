"""``init``'s credentials for make run's HTTPS listener (pki.admin_credentials): what is made, when it is made
again, and what an operator's decision keeps (issue 14)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from pki import bootstrap
from pki.admin_credentials import credential_paths
from pki.auth.access import Actor
from pki.auth.clientcert import actor_for_certificate
from pki.models import Certificate, CertificateAuthority, RoleMember
from pki.revocation import revoke


@pytest.fixture
def first(db):
    result = bootstrap.run()
    return result, credential_paths()


def _p12(paths, password: str):
    key, cert, chain = pkcs12.load_key_and_certificates(paths.superadmin_p12.read_bytes(), password.encode())
    return key, cert, chain


def test_init_makes_a_superadmin_p12_and_a_server_certificate(first):
    result, paths = first
    key, cert, chain = _p12(paths, result.superadmin_password)
    assert cert.subject.rfc4514_string() == "CN=SuperAdmin" and [c.subject for c in chain] == [cert.issuer]
    who = actor_for_certificate(cert)  # the certificate logs in as a Super Administrator
    assert who.is_allowed("/") and who.roles == ["Super Administrator Role"]
    member = RoleMember.objects.get(role__name="Super Administrator Role", match_type="CERTIFICATE_SERIAL")
    assert (member.issuer_ca.name, member.match_value) == ("ManagementCA", format(cert.serial_number, "x"))
    server = x509.load_pem_x509_certificates(paths.server_cert.read_bytes())[0]
    assert {str(ip) for ip in server.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    assert oct(paths.server_key.stat().st_mode & 0o777) == oct(0o600)
    assert oct(paths.superadmin_p12.stat().st_mode & 0o777) == oct(0o600)
    # nginx verifies client certificates against the local CAs (here ManagementCA only).
    assert x509.load_pem_x509_certificates(paths.client_ca.read_bytes()) == [
        CertificateAuthority.objects.get(name="ManagementCA").certificate]


def test_init_again_makes_nothing_and_prints_no_password(first):
    before = Certificate.objects.count()
    again = bootstrap.run()
    assert again.created == [] and again.superadmin_password is None and Certificate.objects.count() == before


def test_a_new_database_beside_an_old_var_gets_new_credentials(first):
    _, paths = first
    old = paths.superadmin_p12.read_bytes()
    Certificate.objects.filter(username="superadmin").delete()  # as if the database were another one
    again = bootstrap.run()
    assert again.superadmin_password and paths.superadmin_p12.read_bytes() != old


def test_a_revoked_superadmin_certificate_is_not_replaced_behind_the_operators_back(first):
    revoke(Actor.system_actor("test"), Certificate.objects.get(username="superadmin"), "keyCompromise")
    again = bootstrap.run()
    assert again.superadmin_password is None
    assert Certificate.objects.filter(username="superadmin").count() == 1
    # Deleting the file is how the operator asks for a new one.
    credential_paths().superadmin_p12.unlink()
    assert bootstrap.run().superadmin_password
    assert Certificate.objects.filter(username="superadmin").count() == 2
