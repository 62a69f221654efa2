"""Bearer tokens from a real OpenID provider (oidc-provider on Node): the issue's table of bad tokens, each
refused with one uniform ``WWW-Authenticate: Bearer error="invalid_token"`` 401 while the reason goes to the
server log and a throttled audit summary; roles from token claims; the token never in logs, audit rows or
replies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import pytest
from cryptography.hazmat.primitives import serialization
from rest_framework.test import APIClient

from pki.auth.access import Actor
from pki.auth.oauth import clear_memos
from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, Role, RoleMember
from pki.services import oauth as oauth_services
from tests.conftest import worker_redis_url
from tests.support.oidc_op.op import new_rsa_key, start_op

V1 = "/ejbca/ejbca-rest-api/v1"
API_AUDIENCE = "https://pki.example/api"
OP2_AUDIENCE = "urn:pki:ejbca"  # resource indicators are absolute URIs
ADMIN = Actor.system_actor("test")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def op1():
    return start_op("bearer-op1")


@pytest.fixture(scope="session")
def op2():
    return start_op("bearer-op2")


@pytest.fixture(scope="session")
def clients(op1, op2):
    """OP clients: one whose tokens carry the groups of the admin role, one with no role, one Ping-like
    (no aud), one at the second OP."""
    return {
        "admin": op1.register(x_groups=["pki-admins"]),
        "norole": op1.register(x_groups=["mail-users"]),
        "ping": op1.register(x_groups=["pki-admins"], x_omit_aud=True),
        "op2": op2.register(x_groups=["op2-admins"]),
    }


@pytest.fixture(autouse=True)
def fresh_memos(settings, db):  # the cache is a database table unless Redis is configured
    from django.core.cache import cache

    settings.PKI_OAUTH_JWKS_REFRESH_INTERVAL = 30
    cache.clear()
    clear_memos()
    yield
    clear_memos()


def make_provider(op, label: str, audience: str = API_AUDIENCE, **values):
    values = {"label": label, "issuer": op.issuer, "audience": audience, **values}
    provider = oauth_services.save_provider(ADMIN, values)
    clear_memos()  # the test transaction never commits, so the on-commit invalidation does not run
    return provider


def admin_role(provider, group: str) -> Role:
    role = Role.objects.create(name=f"admins-{provider.label}")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=provider,
                              claim="groups", match_value=group)
    return role


@pytest.fixture
def providers(db, op1, op2):
    p1 = make_provider(op1, "Test OP")
    p2 = make_provider(op2, "Second OP", audience=OP2_AUDIENCE)
    admin_role(p1, "pki-admins")
    admin_role(p2, "op2-admins")
    return p1, p2


def call(token: str | None, header: str | None = None):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header if header is not None else f"Bearer {token}")
    return client.get(f"{V1}/ca")


UNIFORM_CHALLENGE = 'Bearer error="invalid_token", error_description="The access token is invalid"'
UNIFORM_BODY = {"error_code": 401, "error_message": "Bearer token refused."}


def assert_refused(response, reason: str, caplog):
    """The caller gets the one uniform refusal; the reason is only in the server log."""
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == UNIFORM_CHALLENGE
    assert response.json() == UNIFORM_BODY
    logged = [r.getMessage() for r in caplog.records if r.name == "pki.auth.refusals"]
    assert any(reason in line for line in logged), logged


def now() -> int:
    return int(time.time())


def claims(op, **overrides):
    base = {"iss": op.issuer, "sub": "minted", "aud": API_AUDIENCE, "iat": now(), "exp": now() + 300,
            "groups": ["pki-admins"]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256_with_public_key(op) -> str:
    """The classic forgery: HS256 whose HMAC secret is the provider's published public key."""
    public_pem = op.signing_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": op.kid}).encode())
    payload = b64(json.dumps(claims(op)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def alg_none(op) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": op.kid}).encode())
    return f"{header}.{b64(json.dumps(claims(op)).encode())}."


def tampered(op, client) -> str:
    token = op.client_token(client, resource=API_AUDIENCE)
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["sub"] = "someone-else"
    return f"{header}.{b64(json.dumps(body).encode())}.{signature}"


# (case, how to get the token, expected reason or None for accepted, provider edits)
BAD_TOKENS = [
    ("wrong audience", lambda op1, op2, c: op1.client_token(c["admin"], resource="https://mail.example/"),
     "audience does not match", {}),
    ("missing audience", lambda op1, op2, c: op1.client_token(c["ping"], resource=API_AUDIENCE),
     "token has no audience", {}),
    ("audience check skipped", lambda op1, op2, c: op1.client_token(c["ping"], resource=API_AUDIENCE),
     None, {"skip_audience_check": True, "audience": ""}),
    ("expired", lambda op1, op2, c: op1.mint(claims(op1, iat=now() - 900, exp=now() - 120)), "token expired", {}),
    ("expired within skew", lambda op1, op2, c: op1.mint(claims(op1, exp=now() - 20)), None, {}),
    ("not yet valid", lambda op1, op2, c: op1.mint(claims(op1, nbf=now() + 600)), "token not yet valid", {}),
    ("issued in the future", lambda op1, op2, c: op1.mint(claims(op1, iat=now() + 600, exp=now() + 900)),
     "token not yet valid", {}),
    ("wrong issuer", lambda op1, op2, c: op1.mint(claims(op1, iss="https://evil.example")),
     "issuer is not a trusted OAuth provider", {}),
    ("unknown kid", lambda op1, op2, c: op1.mint(claims(op1), key=new_rsa_key("x")[0], kid="no-such-kid"),
     "unknown signing key (kid)", {}),
    ("signed by another key under the OP's kid",
     lambda op1, op2, c: op1.mint(claims(op1), key=new_rsa_key("x")[0]), "signature verification failed", {}),
    ("alg none", lambda op1, op2, c: alg_none(op1), "unsigned tokens (alg none) are not accepted", {}),
    ("HS256 with the provider's public key", lambda op1, op2, c: hs256_with_public_key(op1),
     "symmetric algorithm 'HS256' is not accepted", {}),
    ("algorithm not in the allow-list", lambda op1, op2, c: op1.client_token(c["admin"], resource=API_AUDIENCE),
     "algorithm 'RS256' is not allowed for this provider", {"allowed_algorithms": ["ES256", "PS256"]}),
    ("tampered payload", lambda op1, op2, c: tampered(op1, c["admin"]), "signature verification failed", {}),
    ("second provider with its audience", lambda op1, op2, c: op2.client_token(c["op2"], resource=OP2_AUDIENCE),
     None, {}),
    ("second provider with the first one's audience",
     lambda op1, op2, c: op2.client_token(c["op2"], resource=API_AUDIENCE), "audience does not match", {}),
    ("happy path", lambda op1, op2, c: op1.client_token(c["admin"], resource=API_AUDIENCE), None, {}),
    ("not a JWT", lambda op1, op2, c: "not-a-jwt", "malformed token", {}),
    ("garbage segments", lambda op1, op2, c: "eyJ!!.eyJ.sig", "malformed token", {}),
]


@pytest.mark.parametrize(("case", "get_token", "reason", "edits"), BAD_TOKENS, ids=[c[0] for c in BAD_TOKENS])
def test_token_table(providers, op1, op2, clients, case, get_token, reason, edits, caplog):
    if edits:
        oauth_services.save_provider(ADMIN, edits, providers[0])
        clear_memos()
    token = get_token(op1, op2, clients)
    with caplog.at_level(logging.INFO):
        response = call(token)
    if reason is None:
        assert response.status_code == 200, response.content
        assert "certificate_authorities" in response.json()
        return
    assert_refused(response, reason, caplog)
    event = AuditEvent.objects.filter(event_type="OAUTH_LOGIN").latest("sequence")
    assert event.outcome == "FAILURE"
    assert event.details["reason"] == reason
    if reason not in ("malformed token", "issuer is not a trusted OAuth provider"):
        assert event.details["provider"] == ("Second OP" if case.startswith("second") else "Test OP")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "bearer \u00e9t\u00e9"])
def test_malformed_authorization_header(providers, header, caplog):
    with caplog.at_level(logging.INFO):
        response = call(None, header=header.encode("utf-8").decode("latin-1"))
    assert_refused(response, "malformed", caplog)


def test_no_credentials_offers_basic_and_bearer(db):
    response = APIClient().get(f"{V1}/ca")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="api", Bearer realm="pki"'


def test_token_without_role_is_authenticated_but_not_authorized(providers, op1, clients):
    response = call(op1.client_token(clients["norole"], resource=API_AUDIENCE))
    assert response.status_code == 403
    assert "/ca_functionality/view_ca" in response.json()["error_message"]


def test_role_member_matches_user_claim_and_list_claims(providers, op1, clients):
    """A member without a claim name matches the provider's user claim (sub here); list claims match on
    membership; the actor is named <label>:<user>."""
    from pki.auth.oauth import actor_for_oauth, provider_for_issuer

    p1 = provider_for_issuer(op1.issuer)
    role = Role.objects.create(name="by-sub")
    AccessRule.objects.create(role=role, resource="/audit/view")
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=providers[0], claim="",
                              match_value="alice")
    # Same value, other provider: must not match.
    RoleMember.objects.create(role=Role.objects.create(name="other"), match_type=MemberMatch.OAUTH_CLAIM,
                              provider=providers[1], claim="", match_value="alice")
    actor = actor_for_oauth(p1, {"sub": "alice", "groups": ["x", "pki-admins"]})
    assert actor.kind == "oauth" and actor.name == "Test OP:alice"
    assert set(actor.roles) == {"by-sub", "admins-Test OP"}
    assert actor_for_oauth(p1, {"sub": "bob", "groups": "pki-admins-not"}).roles == []


def test_local_user_role_does_not_apply_to_token_subject(providers, op1, clients):
    """A token whose subject equals a local user's name gets none of that user's roles."""
    sub = clients["norole"]["client_id"]
    role = Role.objects.create(name="local")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=sub)
    assert call(op1.client_token(clients["norole"], resource=API_AUDIENCE)).status_code == 403


def test_token_never_logged_or_audited(providers, op1, clients, caplog):
    good = op1.client_token(clients["admin"], resource=API_AUDIENCE)
    bad = [op1.client_token(clients["admin"], resource="https://mail.example/"), tampered(op1, clients["admin"]),
           op1.mint(claims(op1, exp=now() - 3600, iat=now() - 7200))]
    with caplog.at_level(logging.DEBUG):
        responses = [call(t) for t in [good, *bad]]
    assert [r.status_code for r in responses] == [200, 401, 401, 401]
    secrets = [t.split(".")[2] for t in [good, *bad]] + [good, *bad]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    audited = json.dumps([list(e) for e in AuditEvent.objects.values_list("actor", "details", "object_id")])
    for secret in secrets:
        assert secret not in logged
        assert secret not in audited
        for r in responses:
            assert secret not in r.content.decode()
            assert secret not in r.get("WWW-Authenticate", "")
    assert AuditEvent.objects.filter(event_type="OAUTH_LOGIN", outcome="FAILURE").count() == 3


def test_jwks_cached_not_fetched_per_request(providers, op1, clients):
    token = op1.client_token(clients["admin"], resource=API_AUDIENCE)
    before = op1.stats()["jwks_requests"]
    for _ in range(5):
        assert call(token).status_code == 200
    assert op1.stats()["jwks_requests"] == before + 1
    clear_memos()  # a new process: reads the shared cache, not the OP
    assert call(token).status_code == 200
    assert op1.stats()["jwks_requests"] == before + 1


def test_jwks_shared_through_redis(providers, op1, clients, settings):
    """With Redis as the cache, a second process finds the keys the first one fetched."""

    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": worker_redis_url()}}
    cache.clear()
    token = op1.client_token(clients["admin"], resource=API_AUDIENCE)
    before = op1.stats()["jwks_requests"]
    assert call(token).status_code == 200
    clear_memos()
    assert call(token).status_code == 200
    assert op1.stats()["jwks_requests"] == before + 1
    cache.clear()


def test_unknown_kids_are_rate_limited(providers, op1, clients, caplog):
    good = op1.client_token(clients["admin"], resource=API_AUDIENCE)
    assert call(good).status_code == 200
    before = op1.stats()["jwks_requests"]
    for i in range(5):
        forged = op1.mint(claims(op1), key=new_rsa_key("x")[0], kid=f"made-up-{i}")
        with caplog.at_level(logging.INFO):
            assert_refused(call(forged), "unknown signing key (kid)", caplog)
    assert op1.stats()["jwks_requests"] == before + 1  # one refresh for the first unknown kid, then none


def test_key_rotation_picked_up_on_unknown_kid(providers, op1, clients, settings, caplog):
    settings.PKI_OAUTH_JWKS_REFRESH_INTERVAL = 0  # let the refresh happen right away
    assert call(op1.client_token(clients["admin"], resource=API_AUDIENCE)).status_code == 200
    old_key, old_kid = op1.signing_key, op1.kid
    new_key, new_jwk = new_rsa_key(f"{op1.name}-rotated-{now()}")
    try:
        op1.rotate({"keys": [new_jwk]})
        op1.signing_key, op1.kid = new_key, new_jwk["kid"]
        token = op1.client_token(clients["admin"], resource=API_AUDIENCE)
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header["kid"] == new_jwk["kid"]
        before = op1.stats()["jwks_requests"]
        assert call(token).status_code == 200
        assert op1.stats()["jwks_requests"] == before + 1
        # The old key is gone from the JWKS: its tokens are refused now.
        old = op1.mint(claims(op1), key=old_key, kid=old_kid)
        with caplog.at_level(logging.INFO):
            assert_refused(call(old), "unknown signing key (kid)", caplog)
    finally:
        import jwt as pyjwt

        restored = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(old_key))
        restored.update({"kid": old_kid, "use": "sig", "alg": "RS256"})
        op1.rotate({"keys": [restored]})
        op1.signing_key, op1.kid = old_key, old_kid


def test_verified_memo_respects_expiry_and_provider_changes(providers, op1, clients, caplog):
    """A token verified once is not re-verified, but the memo never outlives the token's exp, and a changed
    provider (here: audience now required to be something else) is checked afresh."""
    short = op1.mint(claims(op1, exp=now() + 2))
    oauth_services.save_provider(ADMIN, {"clock_skew": 0}, providers[0])
    clear_memos()
    assert call(short).status_code == 200
    time.sleep(2.2)
    with caplog.at_level(logging.INFO):
        assert_refused(call(short), "token expired", caplog)

    token = op1.client_token(clients["admin"], resource=API_AUDIENCE)
    assert call(token).status_code == 200
    oauth_services.save_provider(ADMIN, {"audience": "urn:something-else"}, providers[0])
    from pki.auth import oauth as core

    core._providers.clear()  # another process saved the change: the provider memo reloads
    with caplog.at_level(logging.INFO):
        assert_refused(call(token), "audience does not match", caplog)
