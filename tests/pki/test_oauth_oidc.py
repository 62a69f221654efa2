"""The OIDC code flow against the real OP without a browser: the authorization request (PKCE S256, state,
nonce, per-provider), the callback (ID token checks, user names namespaced per provider, the session's
claims and roles), and refusals that end on the login page with an audit event instead of an error page."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.test import Client

from pki.auth.access import Actor, actor_for_request
from pki.auth.oauth import SESSION_KEY, clear_memos
from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, Role, RoleMember, TrustedOAuthProvider
from pki.services import oauth as oauth_services
from tests.support.oidc_op.op import start_op

ADMIN = Actor.system_actor("test")
CALLBACK = "http://testserver/oidc/callback/"
GROUPS = {"alice": ["pki-auditors"], "bob": []}


@pytest.fixture(scope="module")
def ops():
    return start_op("oidc-op1", user_groups=GROUPS), start_op("oidc-op2", user_groups=GROUPS)


def add_provider(op, label: str, **changes) -> TrustedOAuthProvider:
    client = op.register(grant_types=["authorization_code"], response_types=["code"], redirect_uris=[CALLBACK],
                         post_logout_redirect_uris=["http://testserver/login/"],
                         token_endpoint_auth_method="client_secret_basic")
    row = oauth_services.save_provider(
        ADMIN, {"label": label, "issuer": op.issuer, "client_id": client["client_id"], "audience": "urn:pki",
                "scopes": "openid profile email groups", "user_claim": "preferred_username", **changes},
        client_secret=client["client_secret"])
    clear_memos()
    return row


@pytest.fixture
def providers(db, ops):
    p1, p2 = add_provider(ops[0], "First IdP"), add_provider(ops[1], "Second IdP")
    role = Role.objects.create(name="Auditors")
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in ("/administrator", "/audit/view")])
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=p1, claim="groups",
                              match_value="pki-auditors")
    yield p1, p2
    clear_memos()


def sign_in(authorization_url: str, login: str) -> str:
    """Walk oidc-provider's development login and consent forms; return the redirect back to us."""
    http = requests.Session()
    url, method, data = authorization_url, "GET", None
    for _ in range(12):
        r = http.request(method, url, data=data, allow_redirects=False, timeout=10)
        if r.is_redirect:
            url, method, data = urljoin(url, r.headers["Location"]), "GET", None
            if url.startswith("http://testserver"):
                return url
            continue
        form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', r.text)
        assert form, f"unexpected OP page: {r.status_code} {r.text[:300]}"
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text))
        if 'name="login"' in r.text:
            fields.update(login=login, password="any")
        url, method, data = urljoin(url, form.group(1)), "POST", fields
    raise AssertionError("the OP never redirected back")


def start_login(client: Client, provider) -> str:
    r = client.get(f"/oidc/{provider.pk}/login/?next=/audit/")
    assert r.status_code == 302
    return r["Location"]


def log_in(client: Client, provider, login: str):
    back = sign_in(start_login(client, provider), login)
    assert back.startswith(CALLBACK)
    return client.get(back.replace("http://testserver", ""))


def test_authorization_request_uses_pkce_state_nonce_per_provider(providers, ops):
    client = Client()
    location = start_login(client, providers[1])
    assert location.startswith(ops[1].issuer + "/auth?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["response_type"] == "code" and query["client_id"] == providers[1].client_id
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == CALLBACK and query["scope"] == "openid profile email groups"
    entry = client.session["oidc_states"][query["state"]]
    assert entry["nonce"] == query["nonce"] and entry["code_verifier"]
    assert entry["pki_provider_id"] == providers[1].pk


def test_code_flow_logs_in_with_role_from_claims(providers):
    client = Client()
    r = log_in(client, providers[0], "alice")
    assert r.status_code == 302 and r["Location"] == "/audit/"
    assert client.session[SESSION_KEY]["provider_id"] == providers[0].pk
    assert client.session[SESSION_KEY]["claims"]["groups"] == ["pki-auditors"]
    page = client.get("/audit/")
    assert page.status_code == 200
    assert f"oauth-{providers[0].pk}:alice" in page.content.decode()
    assert client.get("/cas/").status_code == 403  # the role has no CA rules
    request = page.wsgi_request
    request._pki_actor = None
    who = actor_for_request(request)
    assert who.kind == "oauth" and who.roles == ["Auditors"] and who.name == "First IdP:alice"


def test_same_user_at_two_providers_gets_two_accounts(providers):
    from django.contrib.auth import get_user_model

    log_in(Client(), providers[0], "alice")
    second = Client()
    log_in(second, providers[1], "alice")
    names = set(get_user_model().objects.filter(username__startswith="oauth-").values_list("username", flat=True))
    assert names == {f"oauth-{providers[0].pk}:alice", f"oauth-{providers[1].pk}:alice"}
    # alice at the second provider matches no member of the first provider's role
    assert second.get("/audit/").status_code == 403
    assert not get_user_model().objects.get(username=f"oauth-{providers[1].pk}:alice").has_usable_password()


def test_user_without_role_sees_not_authorized(providers):
    client = Client()
    log_in(client, providers[0], "bob")
    r = client.get("/")
    assert r.status_code == 403 and "Not authorized" in r.content.decode()


def test_removed_provider_leaves_session_without_roles(providers):
    client = Client()
    log_in(client, providers[0], "alice")
    oauth_services.delete_provider(ADMIN, providers[0])
    clear_memos()
    assert client.get("/audit/").status_code == 403


def test_unknown_state_ends_on_login_page_with_audit(providers):
    client = Client()
    r = client.get("/oidc/callback/?code=abc&state=never-issued", follow=True)
    assert r.redirect_chain[-1][0] == "/login/"
    assert "no login attempt matches this reply" in r.content.decode()
    event = AuditEvent.objects.get(event_type="OAUTH_LOGIN")
    assert event.outcome == "FAILURE" and "state" in event.details["reason"]


def test_provider_error_reply(providers):
    client = Client()
    state = parse_qs(urlsplit(start_login(client, providers[0])).query)["state"][0]
    r = client.get(f"/oidc/callback/?error=access_denied&state={state}", follow=True)
    assert "Login with First IdP failed: the provider answered access_denied" in r.content.decode()
    assert AuditEvent.objects.get(event_type="OAUTH_LOGIN").details["provider"] == "First IdP"
    assert "_auth_user_id" not in client.session


def test_wrong_client_secret_is_a_refusal_not_an_error(providers):
    row = providers[0]
    oauth_services.save_provider(ADMIN, {}, row, client_secret="wrong")
    client = Client()
    back = sign_in(start_login(client, row), "alice")
    r = client.get(back.replace("http://testserver", ""), follow=True)
    assert r.status_code == 200 and "token endpoint failed" in r.content.decode()
    assert "_auth_user_id" not in client.session


def test_id_token_audience_is_our_client_and_nonce_is_the_attempts(providers, ops):
    """ID tokens for another client, or with another login attempt's nonce, are refused."""
    from pki.auth import oauth as core

    row = providers[0]

    config = core.ProviderConfig.from_model(row)
    now = int(time.time())
    with pytest.raises(core.TokenRefused) as err:
        core.verify_id_token(config, ops[0].mint({"iss": row.issuer, "sub": "alice", "aud": "someone-else",
                                                  "iat": now, "exp": now + 300, "nonce": "n"}), row.client_id, "n")
    assert err.value.reason == "audience does not match"
    with pytest.raises(core.TokenRefused) as err:
        core.verify_id_token(config, ops[0].mint({"iss": row.issuer, "sub": "alice", "aud": row.client_id,
                                                  "iat": now, "exp": now + 300, "nonce": "n"}), row.client_id, "m")
    assert err.value.reason == "nonce does not match the login attempt"


def test_logout_goes_to_end_session_endpoint(providers):
    client = Client()
    log_in(client, providers[0], "alice")
    r = client.post("/logout/")
    assert r.status_code == 302
    target = urlsplit(r["Location"])
    assert r["Location"].startswith(providers[0].end_session_endpoint)
    params = parse_qs(target.query)
    assert params["client_id"] == [providers[0].client_id]
    assert params["post_logout_redirect_uri"] == ["http://testserver/login/"]
    assert "_auth_user_id" not in client.session


def test_local_logout_unchanged(db):
    from tests.pki.test_views_auth import ui_client

    client = ui_client("localadmin", ["/"])
    r = client.post("/logout/")
    assert r.status_code == 302 and r["Location"] == "/login/"


def test_callback_flood_writes_one_audit_summary(providers):
    """Anyone can request the callback in a loop: one throttled audit summary, not a row per request."""
    from django.core.cache import cache

    cache.clear()
    client = Client()
    for _ in range(30):
        assert client.get("/oidc/callback/?code=abc&state=never-issued").status_code == 302
    event = AuditEvent.objects.get(event_type="OAUTH_LOGIN")
    assert event.outcome == "FAILURE" and event.details["count"] == 1


def test_id_token_refusal_reason_is_not_shown_to_the_user(providers, caplog):
    """The user sees that the login failed, not which algorithm or key was refused; the log has the reason."""
    import logging

    row = providers[0]
    oauth_services.save_provider(ADMIN, {"allowed_algorithms": ["ES256"]}, row)  # the OP signs with RS256
    clear_memos()
    client = Client()
    with caplog.at_level(logging.INFO):
        r = client.get(sign_in(start_login(client, row), "alice").replace("http://testserver", ""), follow=True)
    page = r.content.decode()
    assert "Login with First IdP failed: the ID token was not accepted" in page
    assert "RS256" not in page and "algorithm" not in page
    assert "_auth_user_id" not in client.session
    assert any("algorithm 'RS256' is not allowed" in rec.getMessage() for rec in caplog.records)
    assert "RS256" in AuditEvent.objects.get(event_type="OAUTH_LOGIN").details["reason"]


@pytest.mark.parametrize(("claims", "accepted"), [
    ({"email": "alice@example.com", "email_verified": True}, True),
    ({"email": "alice@example.com", "email_verified": False}, False),
    ({"email": "alice@example.com"}, False),
])
def test_email_user_claim_needs_a_verified_address(providers, claims, accepted):
    """A provider that names users by e-mail logs in only verified addresses (the account is keyed by it)."""
    from pki.auth.oauth import ProviderConfig
    from pki.auth.oidc import ProviderOIDCBackend

    row = oauth_services.save_provider(ADMIN, {"user_claim": "email"}, providers[0])
    backend = ProviderOIDCBackend()
    backend.provider = ProviderConfig.from_model(row)
    assert backend.verify_claims({"sub": "a", **claims}) is accepted
