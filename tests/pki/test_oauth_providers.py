"""Trusted OAuth providers: validation and discovery (against the real test OP), the encrypted client
secret, audit, and the same service through the admin UI, the REST API and ``config oauth``."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils.html import escape

from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.errors import AuthorizationDenied, ConflictError, ValidationError
from pki.models import AuditEvent, Role, RoleMember, TrustedOAuthProvider
from pki.services import oauth as oauth_services
from pki.services.oauth import SKIP_AUDIENCE_WARNING
from tests.pki.test_api_auth import make_client
from tests.pki.test_views_auth import ui_client
from tests.support.oidc_op.op import start_op

ADMIN = Actor.system_actor("test")
SECRET = "s3cret-value-never-shown"


@pytest.fixture(scope="module")
def op():
    return start_op("providers-op")


def values(op, **changes):
    return {"label": "Corp IdP", "issuer": op.issuer, "audience": "urn:pki", "client_id": "pki-web", **changes}


def test_discovery_fills_blank_endpoints_explicit_ones_win(db, op):
    row = oauth_services.save_provider(ADMIN, values(op, end_session_endpoint="https://idp.example/bye"))
    assert row.discovery_url == op.issuer + "/.well-known/openid-configuration"
    assert row.jwks_uri == op.issuer + "/jwks"
    assert row.authorization_endpoint == op.issuer + "/auth"
    assert row.token_endpoint == op.issuer + "/token"
    assert row.end_session_endpoint == "https://idp.example/bye"
    assert row.supports_browser_login
    assert row.allowed_algorithms[0] == "RS256" and "none" not in row.allowed_algorithms
    assert row.clock_skew == 60 and row.user_claim == "sub" and row.skip_audience_check is False


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"label": " "}, "label", "label is required"),
        ({"issuer": ""}, "issuer", "issuer URL is required"),
        ({"issuer": "ftp://idp.example"}, "issuer", "https"),
        ({"issuer": "http://idp.example"}, "issuer", "http is accepted only for localhost"),
        ({"audience": ""}, "audience", "explicitly skip"),
        ({"allowed_algorithms": ["RS256", "none"]}, "allowed_algorithms", "refused: none"),
        ({"allowed_algorithms": ["HS256"]}, "allowed_algorithms", "never none or HS*"),
        ({"allowed_algorithms": []}, "allowed_algorithms", "empty list"),
        ({"clock_skew": 7200}, "clock_skew", "between 0 and 3600"),
        ({"user_claim": "nickname"}, "user_claim", "must be one of"),
        ({"scopes": "profile email"}, "scopes", "openid"),
        ({"provider_type": "KEYCLOAK"}, "realm", "realm"),
        ({"provider_type": "KEYCLOAK", "realm": "pki"}, "issuer", "/realms/pki"),
        ({"provider_type": "AZURE"}, "realm", "tenant"),
        ({"provider_type": "AZURE", "realm": "0000-tenant"}, "issuer", "tenant ID"),
        ({"discovery_url": "http://127.0.0.1:1/.well-known/openid-configuration"}, "discovery_url", "Could not read"),
    ],
)
def test_invalid_values_refused_nothing_saved(db, op, changes, field, message):
    with pytest.raises(ValidationError) as err:
        oauth_services.save_provider(ADMIN, values(op, **changes))
    assert err.value.field == field and message in err.value.message
    assert not TrustedOAuthProvider.objects.exists()
    assert not AuditEvent.objects.filter(event_type="OAUTH_PROVIDER_ADDED").exists()


def test_discovery_document_of_another_issuer_refused(db, op):
    other = start_op("providers-op-2")
    discovery = f"{other.issuer}/.well-known/openid-configuration"
    with pytest.raises(ValidationError) as err:
        oauth_services.save_provider(ADMIN, values(op, discovery_url=discovery))
    assert err.value.field == "issuer" and other.issuer in err.value.message


def test_database_refuses_missing_audience_without_skip(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        TrustedOAuthProvider.objects.create(label="x", issuer="https://x.example", audience="")


def test_skip_audience_check_needs_no_audience(db, op):
    row = oauth_services.save_provider(ADMIN, values(op, audience="", skip_audience_check=True, provider_type="PINGID"))
    assert row.skip_audience_check and row.audience == ""


def test_client_secret_encrypted_at_rest_and_never_audited(db, op):
    row = oauth_services.save_provider(ADMIN, values(op), client_secret=SECRET)
    stored = TrustedOAuthProvider.objects.get(pk=row.pk)
    assert stored.client_secret.startswith("enc1:") and SECRET not in stored.client_secret
    assert stored.get_client_secret() == SECRET
    # Editing something else keeps the secret; the issuer-bound encryption follows an issuer change.
    row = oauth_services.save_provider(ADMIN, {"label": "Renamed"}, stored)
    assert TrustedOAuthProvider.objects.get(pk=row.pk).get_client_secret() == SECRET
    row = oauth_services.save_provider(ADMIN, {}, row, client_secret="")
    assert not TrustedOAuthProvider.objects.get(pk=row.pk).has_client_secret
    audited = json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))
    assert SECRET not in audited
    assert [e.event_type for e in AuditEvent.objects.order_by("sequence")] == [
        "OAUTH_PROVIDER_ADDED", "OAUTH_PROVIDER_EDITED", "OAUTH_PROVIDER_EDITED"]
    assert AuditEvent.objects.order_by("sequence").last().details["changed"] == ["client_secret"]


def test_duplicates_conflict(db, op):
    oauth_services.save_provider(ADMIN, values(op))
    with pytest.raises(ConflictError) as err:
        oauth_services.save_provider(ADMIN, values(op, label="Other label"))
    assert err.value.field == "issuer"
    with pytest.raises(ConflictError) as err:
        oauth_services.save_provider(ADMIN, values(start_op("providers-op-2")))
    assert err.value.field == "label"


def test_rename_keeps_role_members(db, op):
    """Members belong to the provider's id: a new label changes nothing about who matches."""
    from pki.auth.oauth import ProviderConfig, actor_for_oauth

    row = oauth_services.save_provider(ADMIN, values(op))
    role = Role.objects.create(name="r")
    role.rules.create(resource="/audit/view")
    member = RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=row,
                                       claim="groups", match_value="admins")
    row = oauth_services.save_provider(ADMIN, {"label": "Corporate"}, row)
    member.refresh_from_db()
    assert member.provider_id == row.pk and member.provider.label == "Corporate"
    assert actor_for_oauth(ProviderConfig.from_model(row), {"sub": "x", "groups": ["admins"]}).roles == ["r"]


def test_rule_required(db, op):
    nobody = Actor(name="nobody")
    with pytest.raises(AuthorizationDenied) as err:
        oauth_services.save_provider(nobody, values(op))
    assert err.value.resource == "/system_functionality/edit_systemconfiguration"
    row = oauth_services.save_provider(ADMIN, values(op))
    with pytest.raises(AuthorizationDenied):
        oauth_services.delete_provider(nobody, row)
    assert TrustedOAuthProvider.objects.filter(pk=row.pk).exists()


# --- admin UI ---------------------------------------------------------------------------------------------

@pytest.fixture
def ui(db):
    return ui_client("sysadmin", ["/system_functionality/edit_systemconfiguration", "/administrator"])


def form_data(op, **changes):
    data = {"provider_type": "GENERIC", "label": "Corp IdP", "issuer": op.issuer, "audience": "urn:pki",
            "client_id": "pki-web", "client_secret": SECRET, "scopes": "openid profile email", "user_claim": "sub",
            "allowed_algorithms": ["RS256", "ES256"], "clock_skew": "60"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_ui_add_edit_delete(ui, op):
    assert "Trusted OAuth providers" in ui.get("/").content.decode()  # the navigation entry
    r = ui.post("/system/oauth-providers/new/", form_data(op))
    assert r.status_code == 302, r.content.decode()
    row = TrustedOAuthProvider.objects.get()
    assert row.get_client_secret() == SECRET and row.allowed_algorithms == ["RS256", "ES256"]
    listing = ui.get("/system/oauth-providers/").content.decode()
    assert "Corp IdP" in listing and op.issuer in listing
    edit = ui.get(f"/system/oauth-providers/{row.pk}/").content.decode()
    assert SECRET not in edit and row.client_secret not in edit and 'placeholder="(unchanged)"' in edit
    r = ui.post(f"/system/oauth-providers/{row.pk}/", form_data(op, client_secret="", audience="urn:other"))
    assert r.status_code == 302
    row.refresh_from_db()
    assert row.audience == "urn:other" and row.get_client_secret() == SECRET
    r = ui.post(f"/system/oauth-providers/{row.pk}/delete/")
    assert r.status_code == 302 and not TrustedOAuthProvider.objects.exists()
    assert AuditEvent.objects.filter(event_type="OAUTH_PROVIDER_REMOVED", actor="sysadmin").exists()


def test_ui_skip_audience_shows_warning(ui, op):
    form = ui.get("/system/oauth-providers/new/").content.decode()
    assert "act as those users" in form  # the warning next to the checkbox
    r = ui.post("/system/oauth-providers/new/", form_data(op, audience="", skip_audience_check="on"), follow=True)
    page = r.content.decode()
    assert "audience check skipped" in page and "act as those users" in page
    assert escape(SKIP_AUDIENCE_WARNING) in page


def test_ui_refusal_is_a_form_error_nothing_saved(ui, op):
    r = ui.post("/system/oauth-providers/new/", form_data(op, audience=""))
    assert r.status_code == 400 and "explicitly skip the audience check" in r.content.decode()
    assert SECRET not in r.content.decode()
    assert not TrustedOAuthProvider.objects.exists()


def test_ui_needs_rule(db):
    client = ui_client("auditor", ["/administrator"])
    r = client.get("/system/oauth-providers/")
    assert r.status_code == 403 and "/system_functionality/edit_systemconfiguration" in r.content.decode()
    assert "Trusted OAuth providers" not in client.get("/").content.decode()


def test_login_page_shows_one_button_per_browser_provider(db, op):
    oauth_services.save_provider(ADMIN, values(op))
    oauth_services.save_provider(ADMIN, values(start_op("providers-op-2"), label="API only", client_id=""))
    from django.test import Client

    page = Client().get("/login/").content.decode()
    assert "Sign in with Corp IdP" in page and "Sign in with API only" not in page
    assert 'name="username"' in page  # local login stays for the bootstrap admin


# --- REST -------------------------------------------------------------------------------------------------

API = "/api/v1/oauth-providers/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_rest_crud(db, op):
    api = make_client("restadmin", ["/system_functionality/edit_systemconfiguration"])
    r = api.post(API, {**values(op), "client_secret": SECRET, "allowed_algorithms": ["ES256"]}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["has_client_secret"] is True and "client_secret" not in body and SECRET not in r.content.decode()
    assert body["jwks_uri"] == op.issuer + "/jwks" and body["allowed_algorithms"] == ["ES256"]
    assert api.get(API).json()[0]["label"] == "Corp IdP"
    r = api.patch(f"{API}Corp IdP/", {"skip_audience_check": True, "audience": ""}, format="json")
    assert r.status_code == 200 and r.json()["skip_audience_check"] is True and r.json()["has_client_secret"]
    assert api.post(API, values(op), format="json").status_code == 409
    r = api.post(API, {**values(op, label="x"), "allowed_algorithms": ["none"]}, format="json")
    assert r.status_code == 400
    assert api.delete(f"{API}{body['id']}/").status_code == 204
    assert api.get(f"{API}{body['id']}/").status_code == 404


def test_rest_needs_rule(db, op):
    api = make_client("restuser", ["/ca_functionality/view_ca"])
    r = api.get(API)
    assert r.status_code == 403 and "/system_functionality/edit_systemconfiguration" in r.json()["error_message"]


# --- CLI --------------------------------------------------------------------------------------------------

def run(*args) -> str:
    out = StringIO()
    call_command("config", "oauth", *args, stdout=out)
    return out.getvalue()


def test_cli_add_list_edit_remove(db, op, monkeypatch):
    monkeypatch.setenv("IDP_SECRET", SECRET)
    out = run("add", "--label", "Corp IdP", "--issuer", op.issuer, "--audience", "urn:pki", "--client-id", "web",
              "--client-secret-env", "IDP_SECRET", "--user-claim", "email", "--algorithms", "RS256,PS256")
    assert "Added trusted OAuth provider 'Corp IdP'" in out
    row = TrustedOAuthProvider.objects.get()
    assert row.get_client_secret() == SECRET and row.user_claim == "email"
    assert row.allowed_algorithms == ["RS256", "PS256"]
    listing = run("list")
    assert "Corp IdP" in listing and "audience urn:pki" in listing and "secret set" in listing
    assert SECRET not in listing
    out = run("edit", "Corp IdP", "--skip-audience-check", "--audience", "")
    assert "WARNING" in out and "act as those users" in out
    assert "audience check SKIPPED" in run("list")
    assert "Removed" in run("remove", str(row.pk))
    assert not TrustedOAuthProvider.objects.exists()
    assert AuditEvent.objects.filter(event_type="OAUTH_PROVIDER_ADDED", actor="cli").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("remove", "nope"), "does not exist"),
        (("add", "--label", "x", "--issuer", "http://idp.example", "--audience", "a"), "only for localhost"),
        (("add", "--label", "x", "--issuer", "https://idp.example", "--client-secret-env", "NO_SUCH_VAR"),
         "NO_SUCH_VAR is not set"),
    ],
)
def test_cli_refusals(db, args, message):
    with pytest.raises(CommandError) as err:
        run(*args)
    assert message in str(err.value)
