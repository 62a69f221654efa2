"""SCEP aliases as data: the services' rules (names, references, secrets, audit) and the admin UI's
"SCEP Configuration" page (list, add, edit, delete) behind ``/system_functionality/edit_systemconfiguration``."""

from __future__ import annotations

import pytest

from pki.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from pki.models import AuditEvent
from protocols.scep import services
from protocols.scep.models import ScepAlias
from tests.pki.test_views_auth import ui_client

from .server_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db
RULE = "/system_functionality/edit_systemconfiguration"


@pytest.mark.parametrize("name, ok", [
    ("scep", True), ("my-alias", True), ("my_alias_2", True), ("A" * 32, True),
    ("", False), ("a.b", False), ("a b", False), ("a/b", False), ("A" * 33, False), ("ä", False),
])
def test_alias_names(alias_factory, name, ok):
    if ok:
        assert alias_factory(name).name == name
    else:
        with pytest.raises(ValidationError) as exc:
            alias_factory(name)
        assert exc.value.field == "name"
        assert not ScepAlias.objects.exists()


def test_defaults_are_ejbcas(alias_factory):
    alias = alias_factory("fresh")
    assert alias.operation_mode == "ca" and alias.include_ca and alias.return_ca_chain
    assert not alias.allow_legacy_digest and not alias.allow_des and alias.max_body_size == 64 * 1024
    assert alias.ra_certificate_profile.name == "ENDUSER" and alias.ra_end_entity_profile.name == "EMPTY"
    assert alias.ra_name_generation_scheme == "DN" and alias.ra_name_generation_parameters == "CN"
    assert not alias.client_certificate_renewal and not alias.allow_client_certificate_renewal_with_old_key


def test_references_secrets_and_audit(alias_factory, scep_ca, actor):
    alias_factory("a1", ra_default_ca="ScepCA", ra_auth_password="s3cret")
    alias = services.get_alias("a1")
    assert alias.ra_default_ca == scep_ca
    assert "s3cret" not in alias.ra_auth_password and services.secret(alias, "ra_auth_password") == "s3cret"
    event = AuditEvent.objects.get(event_type="SCEP_ALIAS_ADD", object_id="a1")
    assert "s3cret" not in str(event.details) and event.details["ra_auth_password"] == "(changed)"
    with pytest.raises(ValidationError, match="No CA named 'Nope'") as exc:
        services.edit_alias(actor, "a1", default_ca="Nope")
    assert exc.value.field == "default_ca"
    with pytest.raises(ConflictError):
        alias_factory("a1")
    with pytest.raises(NotFoundError):
        services.edit_alias(actor, "zz", include_ca=False)
    with pytest.raises(ValidationError, match="RA key"):
        services.edit_alias(actor, "a1", ra_key_alias="nokey")


def test_services_need_the_system_configuration_rule(alias_factory):
    from pki.auth.access import Actor

    alias_factory("a1")
    weak = Actor(name="weak", role_rules={"r": [("/ca_functionality", True)]})
    for call in (lambda: services.add_alias(weak, "a2"), lambda: services.edit_alias(weak, "a1", include_ca=False),
                 lambda: services.remove_alias(weak, "a1"), lambda: services.upload_properties(weak, "a1", "")):
        with pytest.raises(AuthorizationDenied):
            call()
    assert ScepAlias.objects.get(name="a1").include_ca


def test_validator_class_must_import(alias_factory, actor):
    alias_factory("a1")
    with pytest.raises(ValidationError, match="cannot be imported"):
        services.edit_alias(actor, "a1", challenge_validator="no.such.Module")
    services.edit_alias(actor, "a1", challenge_validator="protocols.scep.validators.SharedSecretValidator")


# --- admin UI -----------------------------------------------------------------------------------------------

def _form(**changes) -> dict:
    data = {"name": "devices", "enabled": "on", "operation_mode": "ra", "include_ca": "on", "return_ca_chain": "on",
            "max_body_size": "65536", "default_ca": "", "ra_end_entity_profile": "EMPTY",
            "ra_certificate_profile": "ENDUSER", "ra_default_ca": "ScepCA", "ra_auth_password": "s3cret",
            "ra_name_generation_scheme": "DN", "ra_name_generation_parameters": "CN",
            "client_certificate_renewal": "on"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_pages(scep_ca, builtin_profiles, alias_factory):
    admin = ui_client("scepadmin", [RULE, "/administrator"])
    assert "SCEP Configuration" in admin.get("/").content.decode()  # in the navigation
    assert admin.get("/system/scep/").status_code == 200
    assert admin.get("/system/scep/new/").status_code == 200
    resp = admin.post("/system/scep/new/", _form())
    assert resp.status_code == 302, resp.content.decode()
    alias = services.get_alias("devices")
    assert alias.ra_mode and alias.ra_default_ca == scep_ca and alias.client_certificate_renewal
    assert services.secret(alias, "ra_auth_password") == "s3cret"
    page = admin.get("/system/scep/").content.decode()
    assert "devices" in page and "s3cret" not in page
    edit = admin.get("/system/scep/devices/edit/").content.decode()
    assert "s3cret" not in edit and 'value="ScepCA" selected' in edit
    # Editing without typing the secret keeps it; renaming keeps it too.
    resp = admin.post("/system/scep/devices/edit/", _form(name="devices-2", ra_auth_password="", include_ca=None))
    assert resp.status_code == 302
    alias = services.get_alias("devices-2")
    assert not alias.include_ca and services.secret(alias, "ra_auth_password") == "s3cret"
    bad = admin.post("/system/scep/devices-2/edit/", _form(name="devices-2", ra_default_ca="", max_body_size="10"))
    assert bad.status_code == 400
    bad_name = admin.post("/system/scep/new/", _form(name="bad name"))
    assert bad_name.status_code == 400 and not ScepAlias.objects.filter(name="bad name").exists()
    assert admin.post("/system/scep/devices-2/delete/").status_code == 302
    assert not ScepAlias.objects.filter(name="devices-2").exists()
    assert admin.get("/system/scep/nope/edit/").status_code == 404
    assert list(AuditEvent.objects.filter(event_type__startswith="SCEP_ALIAS_").values_list("event_type", flat=True)
                .order_by("sequence")) == ["SCEP_ALIAS_ADD", "SCEP_ALIAS_RENAME", "SCEP_ALIAS_EDIT",
                                           "SCEP_ALIAS_REMOVE"]


def test_admin_pages_need_the_rule(builtin_profiles, alias_factory):
    alias_factory("keep")
    viewer = ui_client("viewer", ["/administrator", "/ca_functionality"])
    assert viewer.get("/system/scep/").status_code == 403
    assert viewer.post("/system/scep/new/", _form()).status_code == 403
    assert viewer.post("/system/scep/keep/delete/").status_code == 403
    assert ScepAlias.objects.filter(name="keep").exists() and not ScepAlias.objects.filter(name="devices").exists()
    assert "SCEP Configuration" not in viewer.get("/").content.decode()


def test_ra_key_in_use_is_not_removed(alias_factory, actor, soft_token_factory):
    from cryptotokens import services as token_services
    from cryptotokens.errors import CryptoTokenError

    token = soft_token_factory("RaToken")
    token_services.generate_key_pair(actor, token, "raKey", "RSA2048")
    alias_factory("ra1", ra_crypto_token=token, ra_key_alias="raKey")
    with pytest.raises(CryptoTokenError, match="SCEP alias 'ra1'"):
        token_services.remove_key_pair(actor, token, "raKey")
    with pytest.raises(CryptoTokenError, match="SCEP alias 'ra1'"):
        token_services.delete_token(actor, token)
