"""Who may change whom a provider vouches for (issue 11, item 4), and members tied to the provider's id
(item 7).

The attack of item 4, end to end against the real test OP and a JWKS the attacker serves on loopback: a
caller holding only ``/system_functionality/edit_systemconfiguration`` repoints the provider that a Super
Administrator logs in through at its own key, then presents a token it signed itself. Refused, provider
unchanged, and the self-signed token gets no access; the same edit by a caller who covers the role works,
and is audited with old and new values, which shows the refusal is what stops the attack.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from pki.auth.access import Actor
from pki.auth.oauth import ProviderConfig, actor_for_oauth, clear_memos
from pki.choices import MemberMatch
from pki.errors import AuthorizationDenied, ConflictError
from pki.models import AccessRule, AuditEvent, Role, RoleMember, TrustedOAuthProvider
from pki.services import oauth as oauth_services
from tests.pki.test_api_auth import make_client
from tests.support.oidc_op.op import new_rsa_key, start_op

ADMIN = Actor.system_actor("test")
AUDIENCE = "https://pki.example/api"
API = "/api/v1/oauth-providers/"
V1 = "/ejbca/ejbca-rest-api/v1"
SYSCONFIG = "/system_functionality/edit_systemconfiguration"


class _AttackerSite(BaseHTTPRequestHandler):
    documents: dict[str, dict] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        document = self.documents.get(self.path)
        body = json.dumps(document).encode()
        self.send_response(200 if document is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def attacker():
    """The attacker's key and a loopback web server publishing its JWKS and a discovery document."""
    key, jwk = new_rsa_key("attacker-key")
    public = {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "kid", "use", "alg")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AttackerSite)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _AttackerSite.documents = {"/jwks": {"keys": [public]}}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"key": key, "kid": "attacker-key", "base": base, "jwks": f"{base}/jwks"}
    server.shutdown()


@pytest.fixture(scope="module")
def op():
    return start_op("trust-op")


@pytest.fixture
def provider(db, op):
    """A provider whose ``pki-admins`` group members are Super Administrators."""
    cache.clear()
    row = oauth_services.save_provider(ADMIN, {"label": "Corp IdP", "issuer": op.issuer, "audience": AUDIENCE})
    role = Role.objects.create(name="Super Administrator Role")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=row, claim="groups",
                              match_value="pki-admins")
    clear_memos()
    yield row
    clear_memos()


def forged_token(op, attacker) -> str:
    now = int(time.time())
    claims = {"iss": op.issuer, "sub": "mallory", "aud": AUDIENCE, "iat": now, "exp": now + 300,
              "groups": ["pki-admins"]}
    return jwt.encode(claims, attacker["key"], algorithm="RS256", headers={"kid": attacker["kid"]})


def bearer_get(token: str, path: str = f"{V1}/ca"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(path)


def snapshot(row) -> dict:
    return {k: getattr(TrustedOAuthProvider.objects.get(pk=row.pk), k) for k in oauth_services.FIELDS}


def test_sysconfig_editor_cannot_repoint_jwks_at_its_own_key(provider, op, attacker):
    before = snapshot(provider)
    mallory = make_client("mallory", [SYSCONFIG])
    r = mallory.patch(f"{API}{provider.pk}/", {"jwks_uri": attacker["jwks"]}, format="json")
    assert r.status_code == 403, r.content
    assert snapshot(provider) == before
    assert not AuditEvent.objects.filter(event_type="OAUTH_PROVIDER_EDITED").exists()
    clear_memos()
    assert bearer_get(forged_token(op, attacker)).status_code == 401
    # Nor can it remove the provider (and with it the Super Administrators' members).
    assert mallory.delete(f"{API}{provider.pk}/").status_code == 403
    assert RoleMember.objects.filter(provider=provider).count() == 1


def test_the_same_edit_by_a_super_administrator_is_allowed_and_audited(provider, op, attacker):
    """The control: with the rights, the repointing goes through, and the self-signed token is then
    accepted as Super Administrator, so the refusal above is what stopped the attack."""
    root = make_client("root", ["/"])
    old_jwks = provider.jwks_uri
    r = root.patch(f"{API}{provider.pk}/", {"jwks_uri": attacker["jwks"]}, format="json")
    assert r.status_code == 200, r.content
    event = AuditEvent.objects.get(event_type="OAUTH_PROVIDER_EDITED")
    assert event.actor == "root" and event.details["changed"] == ["jwks_uri"]
    assert event.details["old"] == {"jwks_uri": old_jwks} and event.details["new"] == {"jwks_uri": attacker["jwks"]}
    clear_memos()
    assert bearer_get(forged_token(op, attacker)).status_code == 200


TRUST_EDITS = [
    {"jwks_uri": "ATTACKER/jwks"},
    {"discovery_url": "ATTACKER/.well-known/openid-configuration", "jwks_uri": "ATTACKER/jwks"},
    {"issuer": "ATTACKER"},
    {"userinfo_endpoint": "ATTACKER/userinfo"},
    {"token_endpoint": "ATTACKER/token"},
    {"user_claim": "email"},
    {"skip_audience_check": True, "audience": ""},
    {"audience": "urn:another-app"},
    {"client_id": "another-client"},
    {"allowed_algorithms": ["RS256", "ES256"]},
    {"clock_skew": 3600},
    {"max_token_lifetime": 0},
]


@pytest.mark.parametrize("edit", TRUST_EDITS, ids=["+".join(e) for e in TRUST_EDITS])
def test_trust_fields_need_the_roles_of_the_providers_members(provider, attacker, edit):
    edit = {k: v.replace("ATTACKER", attacker["base"]) if isinstance(v, str) else v for k, v in edit.items()}
    if "issuer" in edit:
        _AttackerSite.documents["/.well-known/openid-configuration"] = {"issuer": edit["issuer"],
                                                                        "jwks_uri": attacker["jwks"]}
    before = snapshot(provider)
    sysadmin = Actor(name="sysadmin", role_rules={"r": [(SYSCONFIG, True)]})
    with pytest.raises(AuthorizationDenied) as err:
        oauth_services.save_provider(sysadmin, edit, provider)
    assert err.value.resource == "/"
    assert snapshot(provider) == before


@pytest.mark.parametrize("edit", [{"label": "Corporate IdP"}, {"scopes": "openid email"},
                                  {"end_session_endpoint": "https://idp.example/logout"}])
def test_other_fields_need_only_the_system_configuration_rule(provider, edit):
    sysadmin = Actor(name="sysadmin", role_rules={"r": [(SYSCONFIG, True)]})
    row = oauth_services.save_provider(sysadmin, edit, provider)
    assert all(getattr(row, k) == v for k, v in edit.items())


def test_covering_the_members_roles_is_enough(db, op, attacker):
    """Not only '/': an editor that holds every rule of every role with members on the provider may change it."""
    row = oauth_services.save_provider(ADMIN, {"label": "Audit IdP", "issuer": op.issuer, "audience": AUDIENCE})
    role = Role.objects.create(name="Auditors")
    AccessRule.objects.create(role=role, resource="/audit/view")
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=row, match_value="x")
    auditor_admin = Actor(name="aa", role_rules={"r": [(SYSCONFIG, True), ("/audit/view", True)]})
    assert oauth_services.save_provider(auditor_admin, {"jwks_uri": attacker["jwks"]}, row).jwks_uri == attacker["jwks"]
    sysadmin = Actor(name="sysadmin", role_rules={"r": [(SYSCONFIG, True)]})
    with pytest.raises(AuthorizationDenied):
        oauth_services.save_provider(sysadmin, {"jwks_uri": ""}, row)


def test_provider_without_members_needs_only_the_rule(db, op, attacker):
    sysadmin = Actor(name="sysadmin", role_rules={"r": [(SYSCONFIG, True)]})
    row = oauth_services.save_provider(sysadmin, {"label": "New IdP", "issuer": op.issuer, "audience": AUDIENCE})
    assert oauth_services.save_provider(sysadmin, {"jwks_uri": attacker["jwks"]}, row).jwks_uri == attacker["jwks"]


# --- item 7: members belong to the provider's id ---------------------------------------------------------

def test_removing_a_provider_removes_its_members_and_a_namesake_inherits_nothing(provider, op, attacker):
    other = Role.objects.create(name="Operators")
    AccessRule.objects.create(role=other, resource="/")  # keeps a super administrator after the removal
    RoleMember.objects.create(role=other, match_type=MemberMatch.LOCAL_USER, match_value="bootstrap")
    removed = oauth_services.delete_provider(ADMIN, provider)
    assert removed == 1
    assert not RoleMember.objects.filter(match_type=MemberMatch.OAUTH_CLAIM).exists()
    event = AuditEvent.objects.get(event_type="OAUTH_PROVIDER_REMOVED")
    assert event.details["removed_members"] == [
        {"role": "Super Administrator Role", "claim": "groups", "value": "pki-admins"}]
    # A different identity provider under the same label and issuer: none of the old members.
    newcomer = oauth_services.save_provider(ADMIN, {"label": "Corp IdP", "issuer": op.issuer, "audience": AUDIENCE,
                                                   "jwks_uri": attacker["jwks"]})
    clear_memos()
    assert actor_for_oauth(ProviderConfig.from_model(newcomer), {"sub": "m", "groups": ["pki-admins"]}).roles == []
    assert bearer_get(forged_token(op, attacker)).status_code == 403  # authenticated, but no role


def test_removing_the_last_super_administrators_provider_is_refused(provider):
    with pytest.raises(ConflictError):
        oauth_services.delete_provider(ADMIN, provider)
    assert TrustedOAuthProvider.objects.filter(pk=provider.pk).exists()
    assert RoleMember.objects.filter(provider=provider).count() == 1
    assert not AuditEvent.objects.filter(event_type="OAUTH_PROVIDER_REMOVED").exists()


def test_cli_remove_says_how_many_members_went(provider):
    from io import StringIO

    keep = Role.objects.create(name="Keep")
    AccessRule.objects.create(role=keep, resource="/")
    RoleMember.objects.create(role=keep, match_type=MemberMatch.LOCAL_USER, match_value="bootstrap")
    out = StringIO()
    call_command("config", "oauth", "remove", "Corp IdP", stdout=out)
    assert "Removed trusted OAuth provider 'Corp IdP' and its 1 role member(s)" in out.getvalue()


def test_role_member_added_by_label_is_stored_by_id(provider):
    from pki.services.roles import MemberSpec, add_member

    role = Role.objects.create(name="Viewers")
    member = add_member(ADMIN, role, MemberSpec(MemberMatch.OAUTH_CLAIM, "bob", provider="Corp IdP", claim="sub"))
    assert member.provider_id == provider.pk


@pytest.mark.django_db(transaction=True)
def test_migration_maps_labels_to_ids_and_drops_orphans():
    """The data migration: members named by label point at that provider's id; members of a provider
    that no longer exists are deleted (a future namesake would have inherited them)."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = ("pki", "0007_auth_throttle"), ("pki", "0008_role_member_provider_fk_token_lifetime")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        apps = executor.loader.project_state([before]).apps
        Provider, Role_, Member = (apps.get_model("pki", n) for n in ("TrustedOAuthProvider", "Role", "RoleMember"))
        kept = Provider.objects.create(label="Kept", issuer="https://kept.example", audience="a")
        role = Role_.objects.create(name="R")
        Member.objects.create(role=role, match_type="OAUTH_CLAIM", provider="Kept", claim="sub", match_value="a")
        Member.objects.create(role=role, match_type="OAUTH_CLAIM", provider="Gone", claim="sub", match_value="b")
        Member.objects.create(role=role, match_type="LOCAL_USER", match_value="c")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate([after])
        # Back to the latest state: migrating to 0007 also undid every later migration (their tables are gone
        # for the tests that run after this one on the same database).
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    rows = sorted(RoleMember.objects.values_list("match_value", "provider_id"))
    assert rows == [("a", kept.pk), ("c", None)]
