"""JWT time claims and lifetime (issue 11, item 11), e-mail members and ``azp`` (item 12), against the real
test OP's keys: every malformed time claim is a uniform 401, never a 500 and never accepted; a provider's
maximum token lifetime refuses long-lived tokens; a member on ``email`` matches only a verified address; an
ID token for several audiences must be authorized for our client."""

from __future__ import annotations

import logging
import time

import jwt
import pytest

from pki.auth import oauth as core
from pki.choices import MemberMatch
from pki.models import AccessRule, Role, RoleMember
from pki.services import oauth as oauth_services
from tests.pki.test_oauth_bearer import (  # noqa: F401 - fixtures
    ADMIN,
    API_AUDIENCE,
    assert_refused,
    call,
    clients,
    fresh_memos,
    op1,
    op2,
    providers,
)


def now() -> int:
    return int(time.time())


def raw_token(op, payload: str) -> str:
    """A token whose payload is exactly ``payload`` (JSON text Python's encoder would not write: 1e400, NaN),
    signed with the OP's own key, so only the claim checks can refuse it."""
    return jwt.api_jws.PyJWS().encode(payload.encode(), op.signing_key, algorithm="RS256",
                                      headers={"kid": op.kid})


def payload(op, **times: str) -> str:
    """The JSON text of a good token's claims with the given time claims as raw JSON values."""
    values = {"exp": str(now() + 300), "iat": str(now()), **times}
    fields = [f'"iss": "{op.issuer}"', '"sub": "minted"', f'"aud": "{API_AUDIENCE}"', '"groups": ["pki-admins"]']
    fields += [f'"{name}": {value}' for name, value in values.items() if value is not None]
    return "{" + ", ".join(fields) + "}"


BAD_TIME_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", '"1999999999"', "true", "false", "null",
                   "1999999999.5", "-1", "1" + "0" * 20, "[1999999999]", "{}"]


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", BAD_TIME_VALUES)
def test_time_claims_must_be_integers(providers, op1, claim, value, caplog):  # noqa: F811
    with caplog.at_level(logging.INFO):
        response = call(raw_token(op1, payload(op1, **{claim: value})))
    assert_refused(response, f"{claim} is not an integer NumericDate", caplog)


@pytest.mark.parametrize(("times", "accepted"), [
    ({}, True),  # the baseline: the same token with ordinary integers passes
    ({"exp": "EXP.0"}, True),  # a whole number written as a float is still a NumericDate
    ({"nbf": "NOW"}, True),
])
def test_integer_time_claims_accepted(providers, op1, times, accepted):  # noqa: F811
    times = {k: v.replace("EXP", str(now() + 300)).replace("NOW", str(now())) for k, v in times.items()}
    assert call(raw_token(op1, payload(op1, **times))).status_code == (200 if accepted else 401)


# (max_token_lifetime, iat offset or None for no iat, exp offset, accepted)
LIFETIMES = [
    (3600, 0, 3000, True),
    (3600, 0, 4000, False),  # exp - iat above the limit
    (3600, None, 4000, False),  # no iat: exp - now above the limit
    (3600, -3000, 500, True),  # an old token near its end: exp - iat = 3500
    (3600, -3500, 500, False),  # exp - iat = 4000 though it expires soon
    (0, 0, 10 * 86400, True),  # 0 turns the check off
    (None, 0, 2 * 86400, False),  # the default limit (a day)
    (None, 0, 86000, True),
]


@pytest.mark.parametrize(("limit", "iat", "exp", "accepted"), LIFETIMES)
def test_max_token_lifetime(providers, op1, limit, iat, exp, accepted, caplog):  # noqa: F811
    if limit is not None:
        oauth_services.save_provider(ADMIN, {"max_token_lifetime": limit}, providers[0])
        core.clear_memos()
    claims = {"iss": op1.issuer, "sub": "minted", "aud": API_AUDIENCE, "exp": now() + exp, "groups": ["pki-admins"]}
    if iat is not None:
        claims["iat"] = now() + iat
    with caplog.at_level(logging.INFO):
        response = call(op1.mint(claims))
    if accepted:
        assert response.status_code == 200, response.content
    else:
        assert_refused(response, "token lifetime exceeds the provider's maximum", caplog)


@pytest.mark.parametrize(("value", "message"), [(-1, "between 0"), (31 * 86400, "between 0"), ("x", "number")])
def test_max_token_lifetime_validated(providers, value, message):  # noqa: F811
    from pki.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        oauth_services.save_provider(ADMIN, {"max_token_lifetime": value}, providers[0])
    assert err.value.field == "max_token_lifetime" and message in err.value.message


# --- item 12: e-mail members need a verified address ------------------------------------------------------

@pytest.mark.parametrize(("member_claim", "user_claim", "token", "matches"), [
    ("email", "sub", {"email": "boss@example.com", "email_verified": True}, True),
    ("email", "sub", {"email": "boss@example.com", "email_verified": "true"}, True),
    ("email", "sub", {"email": "boss@example.com"}, False),
    ("email", "sub", {"email": "boss@example.com", "email_verified": False}, False),
    ("email", "sub", {"email": "boss@example.com", "email_verified": "yes"}, False),
    ("", "email", {"email": "boss@example.com"}, False),  # the user claim is email: same rule
    ("", "email", {"email": "boss@example.com", "email_verified": True}, True),
    ("preferred_username", "sub", {"preferred_username": "boss@example.com"}, True),  # not an e-mail member
])
def test_email_members_match_only_verified_addresses(providers, member_claim, user_claim, token,  # noqa: F811
                                                     matches):
    provider = providers[0]
    if user_claim != "sub":
        oauth_services.save_provider(ADMIN, {"user_claim": user_claim}, provider)
    role = Role.objects.create(name="by-mail")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=provider, claim=member_claim,
                              match_value="boss@example.com")
    provider.refresh_from_db()
    actor = core.actor_for_oauth(core.ProviderConfig.from_model(provider), {"sub": "u1", **token})
    assert ("by-mail" in actor.roles) is matches


def test_oidc_session_claims_keep_email_verified():
    from pki.auth.oidc import session_claims

    kept = session_claims({"email": "a@example.com", "email_verified": True, "exp": 1})
    assert kept == {"email": "a@example.com", "email_verified": "true"}
    assert core.email_verified(kept)
    assert not core.email_verified(session_claims({"email": "a@example.com"}))


# --- item 12: azp when the ID token names several audiences -----------------------------------------------

@pytest.mark.parametrize(("aud", "azp", "reason"), [
    (["CLIENT"], None, None),
    (["CLIENT", "other-app"], None, "ID token for several audiences without azp"),
    (["CLIENT", "other-app"], "other-app", "ID token authorized for another party (azp)"),
    (["CLIENT", "other-app"], "CLIENT", None),
    ("CLIENT", "other-app", "ID token authorized for another party (azp)"),
    ("CLIENT", "CLIENT", None),
])
def test_id_token_azp(providers, op1, aud, azp, reason):  # noqa: F811
    client_id = "pki-web"
    config = core.ProviderConfig.from_model(providers[0])
    aud = [a.replace("CLIENT", client_id) for a in aud] if isinstance(aud, list) else aud.replace("CLIENT", client_id)
    claims = {"iss": op1.issuer, "sub": "alice", "aud": aud, "iat": now(), "exp": now() + 300, "nonce": "n"}
    if azp is not None:
        claims["azp"] = azp.replace("CLIENT", client_id)
    token = op1.mint(claims)
    if reason is None:
        assert core.verify_id_token(config, token, client_id, "n")["sub"] == "alice"
    else:
        with pytest.raises(core.TokenRefused) as err:
            core.verify_id_token(config, token, client_id, "n")
        assert err.value.reason == reason
