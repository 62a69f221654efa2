"""Refused credentials neither flood the audit log (issue 11, item 10) nor tell the caller why (item 15).

``Authorization: Bearer x`` in a loop used to write one chained audit row per request; now the reason goes to
the server log (rate limited) and the audit log gets at most one summary per reason and interval, counted in
the shared cache across processes. Every bearer refusal answers the same 401, and REST lookups answer a CA or
crypto token the caller may not see exactly like a missing one.
"""

from __future__ import annotations

import logging
import time

import pytest
from django.core.cache import cache

from pki.auth import refusals
from pki.models import AccessRule, AuditEvent, Role
from tests.conftest import worker_redis_url
from tests.pki.test_oauth_bearer import (  # noqa: F401 - fixtures
    API_AUDIENCE,
    UNIFORM_BODY,
    UNIFORM_CHALLENGE,
    alg_none,
    call,
    claims,
    clients,
    fresh_memos,
    hs256_with_public_key,
    now,
    op1,
    op2,
    providers,
)
from tests.support.oidc_op.op import new_rsa_key

REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                     "LOCATION": worker_redis_url()}}


def failures():
    return AuditEvent.objects.filter(event_type="OAUTH_LOGIN", outcome="FAILURE")


def refusal_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pki.auth.refusals"]


@pytest.mark.parametrize("cache_backend", ["database", "redis"])
def test_garbage_bearer_flood_writes_one_audit_summary(db, settings, caplog, cache_backend):
    """The issue's attack: 200 unauthenticated requests with ``Bearer x``. Before: 200 chained audit rows.
    Now one summary row and one log line (plus a count of the suppressed ones)."""
    if cache_backend == "redis":
        settings.CACHES = REDIS
    cache.clear()
    settings.PKI_AUTH_REFUSAL_AUDIT_SECONDS = 60
    settings.PKI_AUTH_REFUSAL_LOG_SECONDS = 60
    with caplog.at_level(logging.INFO):
        statuses = {call("x").status_code for _ in range(200)}
    assert statuses == {401}
    assert failures().count() == 1
    assert failures().get().details["reason"] == "malformed token" and failures().get().details["count"] == 1
    assert len(refusal_lines(caplog)) == 1 and "malformed token" in refusal_lines(caplog)[0]
    cache.clear()


def test_summary_counts_the_suppressed_refusals_and_is_shared_across_processes(db, settings, caplog):
    settings.CACHES = REDIS
    cache.clear()
    settings.PKI_AUTH_REFUSAL_AUDIT_SECONDS = 3
    settings.PKI_AUTH_REFUSAL_LOG_SECONDS = 1
    call("x")
    started = time.monotonic()  # the summary window opened during that call
    for _ in range(4):
        call("x")
    refusals.clear()  # another process: its own log limiter, the same shared counters
    for _ in range(5):
        call("x")
    assert failures().count() == 1  # the other process found the summary window taken
    time.sleep(max(0.0, 3.1 - (time.monotonic() - started)))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        call("x")
    assert failures().count() == 2
    assert failures().latest("sequence").details["count"] == 10  # the 9 not audited before, and this one
    assert "(4 similar refusals not logged in the last 1s)" in refusal_lines(caplog)[0]
    cache.clear()


def test_reasons_are_throttled_apart_and_by_fixed_codes(providers, op1, settings, caplog):  # noqa: F811
    """Different reasons each get their summary; made-up alg names do not make new throttling keys."""
    settings.PKI_AUTH_REFUSAL_AUDIT_SECONDS = 60
    call("x")
    call(op1.mint(claims(op1, exp=now() - 3600, iat=now() - 7200)))
    for alg in ("HS256", "HS384", "HS512", "HSxyz"):
        token = hs256_with_public_key(op1).replace(*_header_alg("HS256", alg))
        call(token)
    reasons = sorted(e.details["reason"] for e in failures())
    assert reasons == ["malformed token", "symmetric algorithm 'HS256' is not accepted", "token expired"]


def _header_alg(old: str, new: str) -> tuple[str, str]:
    import base64
    import json

    def b64(header):
        return base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()

    return b64({"alg": old, "typ": "JWT", "kid": "bearer-op1-key-1"}), b64({"alg": new, "typ": "JWT",
                                                                             "kid": "bearer-op1-key-1"})


# --- item 15: one reply for every refusal ------------------------------------------------------------------

ORACLE_CASES = [
    ("untrusted issuer", lambda op: op.mint(claims(op, iss="https://evil.example"))),
    ("trusted issuer, unknown kid", lambda op: op.mint(claims(op), key=new_rsa_key("x")[0], kid="nope")),
    ("trusted issuer, bad signature", lambda op: op.mint(claims(op), key=new_rsa_key("x")[0])),
    ("alg none", alg_none),
    ("HS256", hs256_with_public_key),
    ("allowed alg, expired", lambda op: op.mint(claims(op, exp=now() - 3600, iat=now() - 7200))),
    ("wrong audience", lambda op: op.mint(claims(op, aud="https://mail.example/"))),
    ("garbage", lambda op: "x"),
]


@pytest.mark.parametrize(("case", "make"), ORACLE_CASES, ids=[c[0] for c in ORACLE_CASES])
def test_every_bearer_refusal_answers_the_same(providers, op1, case, make, caplog):  # noqa: F811
    with caplog.at_level(logging.INFO):
        response = call(make(op1))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == UNIFORM_CHALLENGE
    assert response.json() == UNIFORM_BODY
    assert refusal_lines(caplog)  # the reason is in the server log instead


def _role_client(name: str, rules: list[tuple[str, bool]]):
    from tests.pki.test_api_auth import make_client

    client = make_client(name, [r for r, allowed in rules if allowed])
    role = Role.objects.get(name=f"role-{name}")
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r, allowed=False) for r, a in rules if not a])
    return client


# (who, rules with {hidden} for the hidden object's id, the status both hidden and missing answer)
CA_CALLERS = [
    ("one CA only", [("/ca_functionality/view_ca", True), ("/ca/{root}", True)], 403),
    ("every CA but one", [("/ca_functionality/view_ca", True), ("/ca", True), ("/ca/{hidden}", False)], 404),
]


@pytest.mark.parametrize(("who", "rules", "status"), CA_CALLERS, ids=[c[0] for c in CA_CALLERS])
def test_hidden_ca_answers_like_a_missing_one(db, root_ca, sub_ca, who, rules, status, caplog):
    client = _role_client("caller", [(r.format(root=root_ca.pk, hidden=sub_ca.pk), a) for r, a in rules])
    base = "/ejbca/ejbca-rest-api/v1/ca"
    with caplog.at_level(logging.INFO, logger="pki.api"):
        hidden = client.get(f"{base}/{sub_ca.name}/certificate/download")
    missing = client.get(f"{base}/NoSuchCA/certificate/download")
    assert hidden.status_code == missing.status_code == status
    assert hidden.content.decode() == missing.content.decode().replace("NoSuchCA", sub_ca.name)
    assert f"/ca/{sub_ca.pk}" not in hidden.content.decode()
    assert any(f"/ca/{sub_ca.pk}" in r.getMessage() for r in caplog.records)  # the server log knows
    assert client.get(f"{base}/{root_ca.name}/certificate/download").status_code == 200


TOKEN_CALLERS = [
    ("no token rights", [("/ca_functionality/view_ca", True)], 403),
    ("every token but one", [("/cryptotoken", True), ("/cryptotoken/view/{hidden}", False),
                             ("/cryptotoken/activate/{hidden}", False), ("/cryptotoken/deactivate/{hidden}", False),
                             ("/cryptotoken/generate_keys/{hidden}", False),
                             ("/cryptotoken/remove_keys/{hidden}", False)], 422),  # EJBCA: "Unknown crypto token"
]


@pytest.mark.parametrize(("who", "rules", "status"), TOKEN_CALLERS, ids=[c[0] for c in TOKEN_CALLERS])
@pytest.mark.parametrize(("method", "path"), [
    ("put", "{token}/activate"), ("put", "{token}/deactivate"), ("post", "{token}/generatekeys"),
    ("post", "{token}/somekey/removekeys"),
])
def test_hidden_crypto_token_answers_like_a_missing_one(db, root_ca, who, rules, status, method, path, caplog):
    token = root_ca.crypto_token
    client = _role_client("caller", [(r.format(hidden=token.pk), a) for r, a in rules])
    base = "/ejbca/ejbca-rest-api/v1/cryptotoken"
    with caplog.at_level(logging.INFO, logger="cryptotokens.api"):
        hidden = getattr(client, method)(f"{base}/{path.format(token=token.name)}", {}, format="json")
    missing = getattr(client, method)(f"{base}/{path.format(token='NoSuchToken')}", {}, format="json")
    assert hidden.status_code == missing.status_code == status
    assert hidden.content.decode() == missing.content.decode().replace("NoSuchToken", token.name)
    assert f"/{token.pk}" not in hidden.content.decode()
    assert any("may not see" in r.getMessage() for r in caplog.records)
