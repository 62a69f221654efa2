"""RA mode: the shared secret, the name generation schemes with prefix and postfix, the RA profiles and CA,
creating and editing the end entity; refusals leave nothing behind. Also an EC CA with an RSA RA key."""

from __future__ import annotations

import re

import pytest

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate
from protocols.scep.messages import FailInfo, PkiStatus

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, openssl_verify, own

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("scheme, params, prefix, postfix, subject, expected", [
    ("DN", "CN", "", "", "CN=device1,O=Test", r"device1"),
    ("DN", "UID;CN", "", "", "CN=device2,O=Test", r"device2"),          # the first part present
    ("DN", "CN", "pre-", "-post", "CN=device3", r"pre-device3-post"),
    ("DN", "O", "", "", "CN=device4,O=Acme", r"Acme"),
    ("FIXED", "router", "", "", "CN=device5", r"router"),
    ("USERNAME", "", "", "", "CN=device6", r"device6"),
    ("RANDOM", "", "", "", "CN=device7", r"[A-Za-z0-9]{12}"),
    ("DN", "CN", "${RANDOM}-", "", "CN=device8", r"[A-Za-z0-9]{10}-device8"),
])
def test_ra_mode_creates_the_end_entity(scep, scep_ca, ra_alias, openssl, scheme, params, prefix, postfix,
                                        subject, expected):
    ra_alias(ra_name_generation_scheme=scheme, ra_name_generation_parameters=params,
             ra_name_generation_prefix=prefix, ra_name_generation_postfix=postfix)
    key = client_key(20)
    result = scep.enroll(make_csr(key, subject, "s3cret", san=["device.example"]), key, scep_ca.certificate)
    assert result.status == PkiStatus.SUCCESS
    cert = own(result, key)
    ee = EndEntity.objects.get()
    assert re.fullmatch(expected, ee.username)
    assert ee.status == EndEntityStatus.GENERATED
    assert ee.ca == scep_ca and ee.certificate_profile.name == "ENDUSER" and ee.end_entity_profile.name == "EMPTY"
    assert Certificate.objects.get(username=ee.username).serial == format(cert.serial_number, "x")
    assert "device.example" in ee.subject_alt_name
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", actor="scep:scep").exists()
    openssl_verify(openssl, cert, [scep_ca.certificate])


def test_ra_mode_edits_an_existing_end_entity(scep, scep_ca, ra_alias):
    ra_alias()
    key1, key2 = client_key(21), client_key(22)
    assert scep.enroll(make_csr(key1, "CN=dev,O=One", "s3cret"), key1, scep_ca.certificate).status == PkiStatus.SUCCESS
    assert scep.enroll(make_csr(key2, "CN=dev,O=Two", "s3cret"), key2, scep_ca.certificate).status == PkiStatus.SUCCESS
    ee = EndEntity.objects.get(username="dev")
    assert "O=Two" in ee.subject_dn
    assert Certificate.objects.filter(username="dev").count() == 2


@pytest.mark.parametrize("challenge", ["wrong", None, ""])
def test_ra_mode_wrong_secret_leaves_nothing(scep, scep_ca, ra_alias, challenge):
    ra_alias()
    key = client_key(23)
    result = scep.enroll(make_csr(key, "CN=intruder", challenge), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.exists() and not Certificate.objects.filter(username="intruder").exists()
    assert AuditEvent.objects.filter(event_type="SCEP_ENROLLMENT", outcome="FAILURE").exists()


def test_ra_mode_without_secret_or_validator_is_not_saved(scep_ca, ra_alias):
    """It would issue a certificate to anyone who asks (EJBCA's ``ra.authPwd = none``): refused with the reason
    (tests/protocols/scep/test_alias_checks.py has the other aliases that cannot work)."""
    from pki.errors import ValidationError

    with pytest.raises(ValidationError, match="needs an RA shared secret"):
        ra_alias(ra_auth_password="")


def test_an_ra_alias_stored_without_secret_or_validator_refuses_every_request(scep, scep_ca, ra):
    """An alias saved before that rule, or whose secret was removed behind the service's back, does not fall back
    to EJBCA's "no password: anyone" — the request is refused and nothing is created."""
    from protocols.scep.models import ScepAlias

    ScepAlias.objects.filter(pk=ra.pk).update(ra_auth_password="")
    key = client_key(26)
    for challenge in ("", "s3cret", "anything"):
        result = scep.enroll(make_csr(key, "CN=anyone", challenge), key, scep_ca.certificate)
        assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.filter(username="anyone").exists()
    assert not Certificate.objects.filter(username="anyone").exists()


def test_ra_mode_refused_issuance_rolls_back_the_end_entity(scep, scep_ca, ra_alias, actor):
    """A key the certificate profile refuses: FAILURE, and the end entity the request would create is gone."""
    from pki.models import CertificateProfile

    CertificateProfile.objects.filter(name="ENDUSER").update(allowed_rsa_sizes=[4096])
    ra_alias()
    key = client_key(25)
    result = scep.enroll(make_csr(key, "CN=weak", "s3cret"), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.filter(username="weak").exists()


def test_named_alias_and_default_alias_differ(client, scep_ca, ra_alias, alias_factory, end_entity_factory):
    from .server_fixtures import ScepTestClient

    alias_factory("scep", default_ca=scep_ca)          # CA mode on the default alias
    ra_alias("ra-devices", ra_auth_password="other")   # RA mode on a named one
    end_entity_factory("ca-user", "foo123", ca=scep_ca)
    key = client_key(26)
    ca_mode = ScepTestClient(client, alias=None)
    ra_mode = ScepTestClient(client, alias="ra-devices", short=True)
    assert ca_mode.enroll(make_csr(key, "CN=ca-user", "foo123"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    ra_key = client_key(27)  # another user may not reuse ca-user's key (the CA enforces unique public keys)
    assert ra_mode.enroll(make_csr(ra_key, "CN=ra-user", "other"), ra_key,
                          scep_ca.certificate).status == PkiStatus.SUCCESS
    # The RA secret is no enrollment code on the CA-mode alias, and vice versa.
    assert ca_mode.enroll(make_csr(key, "CN=x-user", "other"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert ra_mode.enroll(make_csr(key, "CN=y-user", "foo123"), key, scep_ca.certificate).status == PkiStatus.FAILURE


def test_ec_ca_with_rsa_ra_key(scep, ca_factory, alias_factory, actor, soft_token_factory, openssl):
    """An EC CA cannot decrypt: the alias's RSA RA key pair does, and signs the replies."""
    from cryptotokens.services import generate_key_pair
    from protocols.scep.services import issue_ra_certificate

    ec_ca = ca_factory("EcCA", key_spec="P-256")
    token = soft_token_factory("RaToken")
    generate_key_pair(actor, token, "raKey", "RSA2048")
    alias_factory(operation_mode="ra", ra_default_ca=ec_ca, ra_auth_password="s3cret", ra_crypto_token=token,
                  ra_key_alias="raKey", ra_certificate_profile="ENDUSER", ra_end_entity_profile="EMPTY")
    from tests.pki.test_views_auth import ui_client

    config_only = ui_client("config", ["/system_functionality/edit_systemconfiguration", "/administrator"])
    assert "Issue RA certificate" in config_only.get("/system/scep/").content.decode()
    assert config_only.post("/system/scep/scep/ra-certificate/").status_code == 403  # issuing needs the CA's rules
    admin = ui_client("scepadmin", ["/system_functionality/edit_systemconfiguration", "/administrator",
                                    f"/ca/{ec_ca.pk}", "/ca_functionality/create_certificate"])
    assert admin.post("/system/scep/scep/ra-certificate/").status_code == 302
    first = scep.ca_certs()
    issue_ra_certificate(actor, "scep")  # renewing it: the new one is served
    certs = scep.ca_certs()
    assert certs != first
    ra_cert = next(c for c in certs if c != ec_ca.certificate)
    assert ec_ca.certificate in certs
    key = client_key(27)
    result = scep.enroll(make_csr(key, "CN=behind-ra", "s3cret"), key, ra_cert)
    assert result.status == PkiStatus.SUCCESS
    assert result.message.signer_certificate == ra_cert
    openssl_verify(openssl, own(result, key), [ec_ca.certificate])


def test_ec_ca_without_ra_key_is_bad_alg(scep, ca_factory, alias_factory, end_entity_factory):
    ec_ca = ca_factory("EcCA", key_spec="P-256")
    alias_factory(default_ca=ec_ca)
    end_entity_factory("router1", "foo123", ca=ec_ca)
    key = client_key(28)
    # The client can only encrypt to an RSA certificate: use its own to get a well-formed request.
    from .server_fixtures import self_signed

    result = scep.enroll(make_csr(key, "CN=router1"), key, self_signed(client_key(29), "fake"))
    assert result.status == PkiStatus.FAILURE
    assert not Certificate.objects.filter(username="router1").exists()
