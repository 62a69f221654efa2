"""A SCEP alias that cannot work is refused with the reason, through the service, the admin page and
``config scep uploadfile`` alike: RA mode on a CA without an RSA key and no RA key pair, RA mode with neither a
shared secret nor a challenge validator (it would issue to anyone), an RA key that is a CA's own signing key, an
RA key that is not RSA. Nothing is saved or audited on a refusal."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cryptotokens import services as tokens
from pki.errors import ValidationError
from pki.models import AuditEvent
from protocols.scep import services
from protocols.scep.models import ScepAlias
from tests.pki.test_views_auth import ui_client

from .server_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
VALIDATOR = "protocols.scep.validators.SharedSecretValidator"


@pytest.fixture
def world(actor, ca_factory, soft_token_factory, builtin_profiles):
    """An RSA CA, an EC CA, and an RA token with an RSA and an EC key pair."""
    from endentities.services import ensure_empty_profile

    ensure_empty_profile()
    rsa_ca = ca_factory("RsaCA", key_spec="RSA2048")
    ec_ca = ca_factory("EcCA", key_spec="P-256")
    ra_token = soft_token_factory("RaToken")
    tokens.generate_key_pair(actor, ra_token, "raRsa", "RSA2048")
    tokens.generate_key_pair(actor, ra_token, "raEc", "P-256")
    return {"rsa_ca": rsa_ca, "ec_ca": ec_ca, "ra_token": ra_token}


RA = {"operation_mode": "ra", "ra_auth_password": "s3cret", "ra_certificate_profile": "ENDUSER",
      "ra_end_entity_profile": "EMPTY"}


@pytest.mark.parametrize("values, field, reason", [
    ({**RA, "ra_default_ca": "EcCA"}, "ra_key_alias", "CA 'EcCA' has no RSA key"),
    ({**RA, "ra_default_ca": "EcCA", "ra_crypto_token": "RaToken", "ra_key_alias": "raEc"}, "ra_key_alias",
     "must be RSA"),
    ({**RA, "ra_default_ca": "RsaCA", "ra_auth_password": ""}, "ra_auth_password", "needs an RA shared secret"),
    ({**RA, "ra_default_ca": "RsaCA", "ra_crypto_token": "RsaCAToken", "ra_key_alias": "signKey"}, "ra_key_alias",
     "is the signing key of CA 'RsaCA'"),
    ({"operation_mode": "ca", "ra_crypto_token": "EcCAToken", "ra_key_alias": "signKey"}, "ra_key_alias",
     "is the signing key of CA 'EcCA'"),
    ({"use_intune": False, **RA, "ra_auth_password": "", "ra_default_ca": "EcCA"}, "ra_auth_password",
     "needs an RA shared secret"),
])
def test_an_alias_that_cannot_work_is_refused(actor, world, values, field, reason):
    events = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        services.add_alias(actor, "devices", **values)
    assert reason in refused.value.message and refused.value.field == field
    assert not ScepAlias.objects.filter(name="devices").exists() and AuditEvent.objects.count() == events


@pytest.mark.parametrize("values", [
    {**RA, "ra_default_ca": "RsaCA"},
    {**RA, "ra_default_ca": "EcCA", "ra_crypto_token": "RaToken", "ra_key_alias": "raRsa"},  # EC CA + RSA RA key
    {**RA, "ra_default_ca": "RsaCA", "ra_auth_password": "", "challenge_validator": VALIDATOR},
    {**RA, "ra_default_ca": "RsaCA", "ra_auth_password": "", "use_intune": True},  # Intune validates
    {"operation_mode": "ca", "default_ca": "EcCA"},  # CA mode: the end entity's CA decides, per request
])
def test_aliases_that_can_work_are_saved(actor, world, values):
    assert services.add_alias(actor, "devices", **values).name == "devices"


def test_an_edit_that_breaks_a_working_alias_is_refused(actor, world):
    services.add_alias(actor, "devices", **RA, ra_default_ca="RsaCA")
    with pytest.raises(ValidationError, match="has no RSA key"):
        services.edit_alias(actor, "devices", ra_default_ca="EcCA")
    with pytest.raises(ValidationError, match="needs an RA shared secret"):
        services.edit_alias(actor, "devices", ra_auth_password="")
    alias = services.get_alias("devices")
    assert alias.ra_default_ca.name == "RsaCA" and services.secret(alias, "ra_auth_password") == "s3cret"


def test_a_disabled_alias_may_wait_for_its_secret(actor, world):
    services.add_alias(actor, "devices", **{**RA, "ra_auth_password": ""}, ra_default_ca="RsaCA", enabled=False)
    with pytest.raises(ValidationError, match="needs an RA shared secret"):
        services.edit_alias(actor, "devices", enabled=True)
    assert services.edit_alias(actor, "devices", enabled=True, ra_auth_password="s3cret").enabled


def test_the_admin_page_says_why(world):
    admin = ui_client("scepadmin", ["/system_functionality/edit_systemconfiguration", "/administrator"])
    form = {"name": "devices", "enabled": "on", "operation_mode": "ra", "max_body_size": "65536",
            "default_ca": "", "ra_end_entity_profile": "EMPTY", "ra_certificate_profile": "ENDUSER",
            "ra_default_ca": "EcCA", "ra_auth_password": "s3cret", "ra_name_generation_scheme": "DN",
            "ra_name_generation_parameters": "CN"}
    r = admin.post("/system/scep/new/", form)
    assert r.status_code == 400
    assert "CA &#x27;EcCA&#x27; has no RSA key" in r.content.decode()
    assert not ScepAlias.objects.filter(name="devices").exists()


def test_config_scep_uploadfile_says_why(world, tmp_path):
    path = tmp_path / "scep.properties"
    path.write_text("ra9.operationmode=ra\nra9.ra.defaultCA=RsaCA\nra9.ra.certificateProfile=ENDUSER\n"
                    "ra9.ra.entityProfile=EMPTY\nra9.ra.authPwd=none\n")
    with pytest.raises(CommandError, match="needs an RA shared secret"):
        call_command("config", "scep", "uploadfile", "--alias", "ra9", "--file", str(path), stdout=io.StringIO())
    assert not ScepAlias.objects.filter(name="ra9").exists()
