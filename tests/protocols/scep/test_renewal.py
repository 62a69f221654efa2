"""Client certificate renewal (RFC 8894 Appendix D, the seed's "Allow Client Certificate Renewal"): signed
by the current certificate's key, past half its validity, a new key unless the old one is allowed; and CA
certificate rollover (Appendix E): GetNextCACert, then issuance under the new certificate once active."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.utils import timezone

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models import Certificate
from protocols.scep.messages import FailInfo, MessageType, PkiStatus, parse_degenerate
from protocols.scep.messages import client as scep_client

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, openssl_verify, own

pytestmark = pytest.mark.django_db


@pytest.fixture
def enrolled(scep, scep_ca, alias_factory, end_entity_factory):
    """router1 enrolled once through SCEP; returns (key, certificate)."""
    alias_factory(default_ca=scep_ca, client_certificate_renewal=True)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(40)
    result = scep.enroll(make_csr(key, "CN=router1,O=Test,C=SE", "foo123"), key, scep_ca.certificate)
    assert result.status == PkiStatus.SUCCESS
    return key, own(result, key)


def _age(cert, fraction: float) -> None:
    """Move the stored certificate's validity so that ``fraction`` of it has passed (what the server reads)."""
    row = Certificate.objects.get(serial=format(cert.serial_number, "x"))
    length = row.not_after - row.not_before
    now = timezone.now()
    Certificate.objects.filter(pk=row.pk).update(not_before=now - length * fraction,
                                                 not_after=now + length * (1 - fraction))


def _renew(scep, scep_ca, old_key, old_cert, new_key, *, message_type=MessageType.PKCS_REQ, cn="router1"):
    csr = make_csr(new_key, f"CN={cn},O=Test,C=SE", None)
    return scep.enroll(csr, new_key, scep_ca.certificate, signer_cert=old_cert, signer_key=old_key,
                       message_type=message_type)


@pytest.mark.parametrize("message_type", [MessageType.PKCS_REQ, MessageType.RENEWAL_REQ])
def test_renewal_with_new_key(scep, scep_ca, enrolled, openssl, message_type):
    old_key, old_cert = enrolled
    _age(old_cert, 0.6)
    new_key = client_key(41)
    result = _renew(scep, scep_ca, old_key, old_cert, new_key, message_type=message_type)
    assert result.status == PkiStatus.SUCCESS
    new_cert = own(result, new_key)
    assert new_cert.subject == old_cert.subject and new_cert.serial_number != old_cert.serial_number
    assert EndEntity.objects.get(username="router1").status == EndEntityStatus.GENERATED
    assert Certificate.objects.filter(username="router1").count() == 2
    openssl_verify(openssl, new_cert, [scep_ca.certificate])


def test_renewal_too_early_is_bad_request(scep, scep_ca, enrolled):
    old_key, old_cert = enrolled
    _age(old_cert, 0.3)
    result = _renew(scep, scep_ca, old_key, old_cert, client_key(41))
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert Certificate.objects.filter(username="router1").count() == 1
    assert EndEntity.objects.get(username="router1").status == EndEntityStatus.GENERATED


def test_renewal_with_old_key_only_when_allowed(scep, scep_ca, enrolled, actor):
    from protocols.scep import services

    old_key, old_cert = enrolled
    _age(old_cert, 0.6)
    refused = _renew(scep, scep_ca, old_key, old_cert, old_key)
    assert (refused.status, refused.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    services.edit_alias(actor, "scep", allow_client_certificate_renewal_with_old_key=True)
    allowed = _renew(scep, scep_ca, old_key, old_cert, old_key)
    assert allowed.status == PkiStatus.SUCCESS
    assert Certificate.objects.filter(username="router1").count() == 2


def test_renewal_signed_by_revoked_certificate(scep, scep_ca, enrolled, actor):
    from pki.revocation import revoke

    old_key, old_cert = enrolled
    _age(old_cert, 0.6)
    revoke(actor, Certificate.objects.get(serial=format(old_cert.serial_number, "x")), 1)
    result = _renew(scep, scep_ca, old_key, old_cert, client_key(41))
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)


def test_renewal_signed_by_another_users_certificate(scep, scep_ca, enrolled, end_entity_factory):
    old_key, old_cert = enrolled
    _age(old_cert, 0.6)
    end_entity_factory("router2", "foo123", ca=scep_ca)
    before = EndEntity.objects.get(username="router2")
    result = _renew(scep, scep_ca, old_key, old_cert, client_key(41), cn="router2")
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)
    after = EndEntity.objects.get(username="router2")
    assert (after.status, after.failed_login_count) == (before.status, before.failed_login_count)
    assert not Certificate.objects.filter(username="router2").exists()


def test_renewal_with_bad_signature(scep, scep_ca, enrolled):
    old_key, old_cert = enrolled
    _age(old_cert, 0.6)
    new_key = client_key(41)
    request = scep_client.build_pkcs_req(make_csr(new_key, "CN=router1,O=Test,C=SE", None), old_cert,
                                         client_key(42), scep_ca.certificate)  # signed by a key not the cert's
    resp = scep.post(request.data)
    assert resp.status_code == 200
    result = scep_client.parse_cert_rep(resp.content, client_key(42), old_cert, ca_certs=[scep_ca.certificate])
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)


def test_renewal_disabled_needs_the_code(scep, scep_ca, enrolled, actor):
    """Without client certificate renewal a request signed by the old certificate is an ordinary enrollment:
    the used code is refused."""
    from protocols.scep import services

    services.edit_alias(actor, "scep", client_certificate_renewal=False)
    old_key, old_cert = enrolled
    _age(old_cert, 0.6)
    result = _renew(scep, scep_ca, old_key, old_cert, client_key(41))
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


# --- CA certificate rollover --------------------------------------------------------------------------------------

def test_get_next_ca_cert_and_rollover(scep, scep_ca, alias_factory, end_entity_factory, actor, openssl):
    from pki.models import CertificateAuthority
    from pki.services.cas import renew_ca

    alias_factory(default_ca=scep_ca)
    assert scep.get("GetNextCACert").status_code == 403  # no rollover certificate yet
    renew_ca(actor, scep_ca, new_key_alias="nextKey", new_key_spec="RSA2048",
             activate_at=timezone.now() + timedelta(hours=1))
    ca = CertificateAuthority.objects.get(pk=scep_ca.pk)
    resp = scep.get("GetNextCACert")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/x-x509-next-ca-cert"
    openssl.write("next.der", resp.content)
    openssl.write("current.pem", scep_ca.certificate.public_bytes(Encoding.PEM))
    openssl("cms", "-verify", "-inform", "DER", "-in", "next.der", "-CAfile", "current.pem", "-out", "inner.der",
            "-binary")
    inner_certs = parse_degenerate((openssl.workdir / "inner.der").read_bytes())[0]
    assert inner_certs == [ca.rollover_certificate]
    # Before activation, issuance is under the current certificate...
    end_entity_factory("before", "foo123", ca=scep_ca)
    key = client_key(43)
    before = own(scep.enroll(make_csr(key, "CN=before"), key, scep_ca.certificate), key)
    assert before.issuer == scep_ca.certificate.subject
    openssl_verify(openssl, before, [scep_ca.certificate])
    # ...and once the rollover time has come, under the new one (the CA switches on the next request).
    CertificateAuthority.objects.filter(pk=ca.pk).update(rollover_at=timezone.now() - timedelta(seconds=1))
    end_entity_factory("after", "foo123", ca=scep_ca)
    new_ca_cert = ca.rollover_certificate
    key = client_key(44)  # a user of its own key: the CA enforces unique public keys
    after = own(scep.enroll(make_csr(key, "CN=after"), key, new_ca_cert), key)
    openssl_verify(openssl, after, [new_ca_cert])
    assert scep.ca_certs() == [new_ca_cert]
    assert scep.get("GetNextCACert").status_code == 403
