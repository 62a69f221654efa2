"""The configdump: export (JSON, one type, one item, zip of YAML, CLI) and all-or-nothing import through the
same services (REST JSON and multipart zip), with EJBCA's item type names, no secrets, access rules, audit."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import yaml
from django.core.management import call_command

from endentities.models import EndEntityProfile
from pki.models import AccessRule, AuditEvent, CertificateProfile, Role, RoleMember, TrustedOAuthProvider
from pki.services import oauth as oauth_services
from pki.services import profiles as profile_services
from protocols.scep.models import ScepAlias
from protocols.scep.services import add_alias
from tests.pki.test_api_auth import (
    V1,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)

DUMP = f"{V1}/configdump"


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def config(db, actor, root_ca, builtin_profiles):
    """A small configuration: a certificate profile, an end entity profile on the CA, an RA-mode SCEP alias
    with a secret, an OAuth provider with a client secret, a role with rules and a member."""
    cp = profile_services.save_profile(actor, "WebServer", {"validity": "1y", "key_usage": ["digitalSignature"]})
    eep = EndEntityProfile.objects.create(name="Servers", default_ca=root_ca, default_certificate_profile=cp,
                                          any_ca=False)
    eep.available_cas.set([root_ca])
    eep.available_certificate_profiles.set([cp])
    add_alias(actor, "devices", operation_mode="ra", ra_auth_password="s3cret-ra", default_ca="TestRoot",
              ra_end_entity_profile="Servers", ra_certificate_profile="WebServer")
    oauth_services.save_provider(actor, {
        "label": "Corp IdP", "issuer": "https://idp.example.com/", "jwks_uri": "https://idp.example.com/jwks",
        "authorization_endpoint": "https://idp.example.com/auth", "token_endpoint": "https://idp.example.com/token",
        "client_id": "pki", "audience": "pki"}, client_secret="client-s3cret")
    role = Role.objects.create(name="Operators", description="RA operators")
    rules = [f"/ca/{root_ca.pk}", f"/endentityprofilesrules/{eep.pk}/create_end_entity",
             "/ra_functionality/create_end_entity"]
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
    RoleMember.objects.create(role=role, match_type="LOCAL_USER", match_value="olivia")
    return {"cp": cp, "eep": eep, "role": role}


def _json_text(obj) -> str:
    return json.dumps(obj)


def test_status(api):
    assert api.get(f"{DUMP}/status").json()["status"] == "OK"


def test_export_has_every_type_by_ejbca_names_and_no_secrets(api, config, root_ca):
    r = api.get(DUMP)
    assert r.status_code == 200, r.content
    dump = r.json()
    assert {"certification-authorities", "certificate-profiles", "end-entity-profiles", "scep-config",
            "trusted-oauth-providers", "admin-roles"} <= set(dump)
    text = _json_text(dump)
    assert "s3cret-ra" not in text and "client-s3cret" not in text and "enc1:" not in text
    assert "PRIVATE KEY" not in text
    ca = next(i for i in dump["certification-authorities"] if i["name"] == "TestRoot")
    assert ca["object_type"] == "Certification Authority" and "BEGIN CERTIFICATE" in ca["certificate"]
    eep = next(i for i in dump["end-entity-profiles"] if i["name"] == "Servers")
    assert eep["default_ca"] == "TestRoot" and eep["available_certificate_profiles"] == ["WebServer"]
    role = next(i for i in dump["admin-roles"] if i["name"] == "Operators")
    # Rules name CAs and profiles by name, so the dump means the same on another installation.
    assert role["access_rules"] == {"/ca/TestRoot": True, "/endentityprofilesrules/Servers/create_end_entity": True,
                                    "/ra_functionality/create_end_entity": True}
    assert role["members"][0]["match_value"] == "olivia"
    assert AuditEvent.objects.filter(event_type="CONFIGDUMP_EXPORT", actor="apiadmin").exists()


def test_export_one_type_one_item_and_filters(api, config):
    r = api.get(f"{DUMP}/certificate-profiles")
    assert r.status_code == 200 and set(r.json()) == {"certificate-profiles"}
    assert api.get(f"{DUMP}/CERTPROFILE/WebServer").json()["certificate-profiles"][0]["validity"] == "1y"
    assert api.get(f"{DUMP}/CERTPROFILE/Nope").status_code == 404
    assert api.get(f"{DUMP}/NOSUCHTYPE").status_code == 404
    r = api.get(DUMP, {"exclude": "*:*Server*"})
    assert "end-entity-profiles" not in r.json() and "certificate-profiles" not in r.json()
    r = api.get(DUMP, {"include": "EEPROFILE:Servers"})
    assert [i["name"] for i in r.json()["end-entity-profiles"]] == ["Servers"]
    assert api.get(DUMP, {"include": "nocolon"}).status_code == 400


def test_export_needs_administrator_and_skips_what_the_caller_may_not_view(db, config):
    assert make_client("plain", ["/ca_functionality/view_ca"]).get(DUMP).status_code == 403
    viewer = make_client("viewer", ["/administrator", "/ca_functionality/view_certificate_profiles"])
    assert set(viewer.get(DUMP).json()) == {"certificate-profiles"}
    assert viewer.get(f"{DUMP}/ROLE").status_code == 403


def _wipe(config) -> None:
    ScepAlias.objects.filter(name="devices").delete()
    EndEntityProfile.objects.filter(name="Servers").delete()
    CertificateProfile.objects.filter(name="WebServer").delete()
    config["role"].delete()
    TrustedOAuthProvider.objects.all().delete()


def test_round_trip_json(api, config, root_ca):
    dump = api.get(DUMP).json()
    _wipe(config)
    r = api.post(DUMP, dump, format="json", QUERY_STRING="overwrite=skip")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["success"] is True and body["errors"] == [], body
    assert any("secret" in w for w in body["warnings"])
    eep = EndEntityProfile.objects.get(name="Servers")
    assert eep.default_ca == root_ca and list(eep.available_certificate_profiles.values_list("name", flat=True)) == [
        "WebServer"]
    alias = ScepAlias.objects.get(name="devices")
    assert alias.ra_end_entity_profile == eep and alias.ra_auth_password == ""
    role = Role.objects.get(name="Operators")
    assert set(role.rules.values_list("resource", flat=True)) == {
        f"/ca/{root_ca.pk}", f"/endentityprofilesrules/{eep.pk}/create_end_entity",
        "/ra_functionality/create_end_entity"}
    assert role.members.get().match_value == "olivia"
    assert TrustedOAuthProvider.objects.get(label="Corp IdP").client_secret == ""
    assert AuditEvent.objects.filter(event_type="CONFIGDUMP_IMPORT", outcome="SUCCESS").exists()


def test_import_is_all_or_nothing(api, config):
    dump = {"certificate-profiles": [{"name": "Good", "validity": "2y"}],
            "end-entity-profiles": [{"name": "Broken", "available_token_types": [999]}],
            "admin-roles": [{"name": "Sneaky", "access_rules": {"/no/such/rule": True}}]}
    r = api.post(DUMP, dump, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is False and len(body["errors"]) == 2, body
    assert any("Broken" in e for e in body["errors"]) and any("Sneaky" in e for e in body["errors"])
    assert not CertificateProfile.objects.filter(name="Good").exists()  # valid, but nothing is written
    assert not Role.objects.filter(name="Sneaky").exists()
    assert AuditEvent.objects.filter(event_type="CONFIGDUMP_IMPORT", outcome="FAILURE").exists()


@pytest.mark.parametrize("overwrite, success, validity", [("abort", False, "1y"), ("skip", True, "1y"),
                                                          ("yes", True, "3y")])
def test_existing_items_follow_overwrite(api, config, overwrite, success, validity):
    dump = {"certificate-profiles": [{"name": "WebServer", "validity": "3y"}]}
    body = api.post(f"{DUMP}?overwrite={overwrite}", dump, format="json").json()
    assert body["success"] is success, body
    assert CertificateProfile.objects.get(name="WebServer").validity == validity


@pytest.mark.parametrize("resolve, success, default_ca", [("abort", False, None), ("useDefault", True, None)])
def test_missing_references_follow_resolve(api, config, resolve, success, default_ca):
    dump = {"end-entity-profiles": [{"name": "Orphan", "default_ca": "NoSuchCA"}]}
    body = api.post(f"{DUMP}?resolve={resolve}", dump, format="json").json()
    assert body["success"] is success, body
    orphan = EndEntityProfile.objects.filter(name="Orphan").first()
    assert (orphan is not None) is success and (orphan is None or orphan.default_ca is None)


@pytest.mark.parametrize("body", [[1, 2], {"certificate-profiles": "x"}, {"certificate-profiles": [1]}])
def test_malformed_json_is_400(api, db, body):
    r = api.post(DUMP, body, format="json")
    assert r.status_code == 400 and set(r.json()) == {"error_code", "error_message"}


def test_bad_modes_are_400(api, db):
    assert api.post(f"{DUMP}?overwrite=maybe", {}, format="json").status_code == 400


def test_import_cannot_escalate(db, config):
    """Attack: an administrator who may only edit certificate profiles imports a role granting '/'."""
    client = make_client("cpeditor", ["/administrator", "/ca_functionality/edit_certificate_profiles"])
    dump = {"admin-roles": [{"name": "Operators", "access_rules": {"/": True},
                             "members": [{"match_type": "LOCAL_USER", "match_value": "cpeditor"}]}]}
    body = client.post(f"{DUMP}?overwrite=yes", dump, format="json").json()
    assert body["success"] is False
    assert not AccessRule.objects.filter(resource="/", role__name="Operators").exists()
    assert not RoleMember.objects.filter(match_value="cpeditor", role__name="Operators").exists()


def test_zip_round_trip(api, config):
    r = api.get(f"{DUMP}/configdump.zip")
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert "certificate-profiles/WebServer.yaml" in zf.namelist()
    assert yaml.safe_load(zf.read("certificate-profiles/WebServer.yaml"))["validity"] == "1y"
    _wipe(config)
    upload = io.BytesIO(r.content)
    upload.name = "configdump.zip"
    r = api.post(f"{DUMP}/configdump.zip", {"zipfile": upload, "overwrite": "skip"}, format="multipart")
    assert r.status_code == 200 and r.json()["success"] is True, r.content
    assert CertificateProfile.objects.filter(name="WebServer").exists()
    assert ScepAlias.objects.filter(name="devices").exists()


@pytest.mark.parametrize("payload, message", [
    (b"not a zip", "Not a zip"),
    (None, "zipfile"),
])
def test_zip_refusals(api, db, payload, message):
    data = {"overwrite": "skip"}
    if payload is not None:
        f = io.BytesIO(payload)
        f.name = "x.zip"
        data["zipfile"] = f
    r = api.post(f"{DUMP}/configdump.zip", data, format="multipart")
    assert r.status_code == 400 and message in r.json()["error_message"]


def test_zip_bomb_is_refused_before_expansion(api, db):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("certificate-profiles/big.yaml", b"a" * (11 * 1024 * 1024))
    f = io.BytesIO(buf.getvalue())
    f.name = "bomb.zip"
    r = api.post(f"{DUMP}/configdump.zip", {"zipfile": f}, format="multipart")
    assert r.status_code == 400 and "too much" in r.json()["error_message"]


def test_json_endpoint_refuses_multipart(api, db):
    r = api.post(DUMP, {"a": "b"}, format="multipart")
    assert r.status_code == 415


def test_cli_config_dump(config, tmp_path):
    out = io.StringIO()
    call_command("config", "dump", "--type", "CERTPROFILE", stdout=out)
    assert json.loads(out.getvalue())["certificate-profiles"][0]["name"] == "WebServer"
    target = tmp_path / "dump.zip"
    call_command("config", "dump", "--format", "zip", "-o", str(target), stdout=io.StringIO())
    assert "scep-config/devices.yaml" in zipfile.ZipFile(target).namelist()


@pytest.mark.parametrize("item", [
    {"name": "T1", "validity": 12345},                      # a number where text is expected
    {"name": "T2", "key_usage": "digitalSignature"},        # a string where a list is expected
    {"name": "T3", "allowed_rsa_sizes": ["big"]},
    {"name": "x" * 500, "validity": "1y"},                  # longer than the column
    {"name": "T5", "path_length": -4},
])
def test_wrong_types_are_reported_not_500(api, db, item):
    r = api.post(DUMP, {"certificate-profiles": [item]}, format="json")
    assert r.status_code == 200 and r.json()["success"] is False, r.content
    assert not CertificateProfile.objects.filter(name=item["name"]).exists()
