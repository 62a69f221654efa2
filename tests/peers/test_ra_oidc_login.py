"""Logging in at an RA node's portal with an OpenID provider the CA trusts, against the real test provider
(tests/support/oidc_op): the login page lists the CA's providers, the CA builds the authorization request (state,
nonce, PKCE) with the RA's login page as the callback, and redeems the code the RA carries back; the session it
answers with runs each page as the OAuth user of the claims. And the attacks: a replayed or foreign state, a state
started through another connector, a code for another client, an ID token with the wrong nonce or audience or
signed by another key, a provider the CA does not trust."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.test import Client

from peers import portal_sessions
from peers import services as peers
from peers.carried_http import run_portal
from peers.models import PeerWorkItem
from peers.portal_ra import OIDC_PENDING, PORTAL_SESSION
from pki.auth import refusals
from pki.auth.oauth import clear_memos
from pki.choices import MemberMatch
from pki.models import AuditEvent, RoleMember
from pki.services import oauth as oauth_services
from pki.services import roles
from tests.endentities import entities_support
from tests.endentities.test_ra_portal_enroll import RA_ADMIN_RULES
from tests.pki.test_oauth_oidc import sign_in
from tests.support.oidc_op.op import new_rsa_key, start_op

from .conftest import csrf_token

entity_factory = entities_support.entity_factory
ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
DB = pytest.mark.django_db(transaction=True)  # the held page waits on another connection for the carrier's answer
CALLBACK = "http://testserver/ra/login/"
GROUPS = {"alice": ["ra-operators"], "bob": []}


@pytest.fixture(scope="module")
def op():
    return start_op("ra-oidc-op", user_groups=GROUPS)


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The providers list the RA keeps, and the refusal summaries' windows, from other tests.
    cache.clear()
    refusals.clear()
    yield
    cache.clear()
    clear_memos()


def add_provider(op, label: str, redirect_uri: str = CALLBACK):
    from pki.auth.access import Actor

    client = op.register(grant_types=["authorization_code"], response_types=["code"], redirect_uris=[redirect_uri],
                         token_endpoint_auth_method="client_secret_basic")
    row = oauth_services.save_provider(
        Actor.system_actor("test"),
        {"label": label, "issuer": op.issuer, "client_id": client["client_id"], "audience": "urn:pki",
         "scopes": "openid profile email groups", "user_claim": "preferred_username"},
        client_secret=client["client_secret"])
    clear_memos()
    return row


@pytest.fixture
def provider(op, actor):
    """A trusted provider; its users in the group ra-operators are RA operators at the CA."""
    row = add_provider(op, "RA IdP")
    role = roles.create_role(actor, "RA operators by OIDC")
    RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=row, claim="groups",
                              match_value="ra-operators")
    roles.set_rules(actor, role, dict.fromkeys(RA_ADMIN_RULES, True))
    return row


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _start(client: Client, provider, next_url: str = "/ra/") -> str:
    """Open the RA's login page, choose ``provider``: the authorization URL the browser is sent to."""
    page = client.get(f"/ra/login/?next={next_url}")
    assert page.status_code == 200 and f"Log in with {provider.label}" in page.content.decode()
    r = client.post("/ra/login/", {"provider": provider.pk, "next": next_url,
                                   "csrfmiddlewaretoken": csrf_token(page.content.decode())})
    assert r.status_code == 302, r.content[-500:]
    return r["Location"]


def _back(url: str) -> str:
    assert url.startswith(CALLBACK), url
    return url.replace("http://testserver", "")


def _ca_records() -> list[dict]:
    return [s.get_decoded() for s in Session.objects.all() if portal_sessions.USER in s.get_decoded()]


def _step(connector_pk, **step):
    return run_portal({"method": "POST", "path": "/ra/login/", "body": "", "identity": {"oidc": step}},
                      connector_pk)


def _body(answer) -> dict:
    return json.loads(base64.b64decode(answer["body"]))


def _started(connector_pk, provider) -> tuple[str, str]:
    """A login started at the CA through ``connector_pk``: (authorization URL, state)."""
    answer = _step(connector_pk, action="start", provider=provider.pk, redirect_uri=CALLBACK)
    assert answer["status"] == 200, answer
    data = _body(answer)
    return data["authorization_url"], data["state"]


@DB
def test_login_with_a_provider_runs_the_pages_as_the_oauth_user(ra_portal, portal_carrier, provider, op, entity_factory,
                                                                tracebacks):
    entity_factory("anna")
    browser = Client(enforce_csrf_checks=True)
    location = _start(browser, provider, "/ra/endentities/?text=ann")
    # The CA built the request: the provider's endpoint, the RA's login page as callback, PKCE S256, nonce, state.
    assert location.startswith(op.issuer + "/auth?")
    query = _query(location)
    assert query["client_id"] == provider.client_id and query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["nonce"] and query["state"] == browser.session[OIDC_PENDING]["state"]
    back = _back(sign_in(location, "alice"))
    r = browser.get(back)
    assert r.status_code == 302 and r["Location"] == "/ra/endentities/?text=ann", r.content[-800:]
    page = browser.get(r["Location"])
    assert page.status_code == 200 and "CN=anna" in page.content.decode()
    # The CA's records: a LOGIN of the OAuth account, the session with the provider and the claims, no pending one.
    user = User.objects.get(username=f"oauth-{provider.pk}:alice")
    assert not user.has_usable_password()
    assert AuditEvent.objects.filter(event_type="LOGIN", actor=user.username, outcome="SUCCESS").count() == 1
    (record,) = _ca_records()
    assert record[portal_sessions.OAUTH] == {"provider_id": provider.pk, "claims": record[portal_sessions.OAUTH]
                                             ["claims"]}
    assert record[portal_sessions.OAUTH]["claims"]["groups"] == ["ra-operators"]
    assert not [s for s in Session.objects.all() if portal_sessions.PENDING in s.get_decoded()]
    carried = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__requester="RA IdP:alice")
    assert carried.count() == 1  # the page, as the OAuth actor of the claims
    # The RA keeps the key only; neither the code nor the key is left in its queue.
    assert browser.session[PORTAL_SESSION]["username"] == "RA IdP:alice"
    queue_text = repr(list(PeerWorkItem.objects.values_list("payload", "result")))
    assert _query(back)["code"] not in queue_text and browser.session[PORTAL_SESSION]["key"] not in queue_text
    # Log out: the record ends at the CA.
    r = browser.post("/logout/", {"csrfmiddlewaretoken": csrf_token(page.content.decode())})
    assert r.status_code == 302 and _ca_records() == []
    assert not tracebacks.records


@DB
def test_a_user_without_a_matching_role_logs_in_but_may_do_nothing(ra_portal, portal_carrier, provider):
    browser = Client(enforce_csrf_checks=True)
    r = browser.get(_back(sign_in(_start(browser, provider), "bob")))
    assert r.status_code == 302 and PORTAL_SESSION in browser.session
    assert browser.get("/ra/endentities/").status_code == 403


@DB
def test_a_state_this_browser_did_not_start_is_refused_at_the_ra(ra_portal, portal_carrier, provider):
    """Login CSRF and replay: the attacker's own callback URL (a code for the attacker's account) sent to a victim,
    and the same callback URL used twice, log nobody in; the RA refuses them without asking the CA."""
    attacker = Client(enforce_csrf_checks=True)
    back = _back(sign_in(_start(attacker, provider), "bob"))
    victim = Client(enforce_csrf_checks=True)
    finishes = PeerWorkItem.objects.filter(requester__contains="finish")
    r = victim.get(back)
    assert r.status_code == 400 and "no login started in this browser" in r.content.decode()
    assert PORTAL_SESSION not in victim.session and not finishes.exists()
    assert attacker.get(back).status_code == 302 and PORTAL_SESSION in attacker.session
    again = Client(enforce_csrf_checks=True)  # replayed in the attacker's browser after a new start
    _start(again, provider)
    again_state = again.session[OIDC_PENDING]["state"]
    assert again.get(back).status_code == 400 and OIDC_PENDING not in again.session
    assert finishes.count() == 1 and again_state != _query(back)["state"]


@pytest.mark.django_db
def test_a_state_works_once_and_only_through_its_connector(portal_connector, provider, actor):
    other = peers.add_connector(actor, name="other-ra", url="https://127.0.0.1:8", binding="ra-link")
    url, state = _started(portal_connector.pk, provider)
    code = _query(sign_in(url, "alice"))["code"]
    for forged, through in [(state, other.pk), ("0" * 32, portal_connector.pk), ("../" + state, portal_connector.pk),
                            ({"s": state}, portal_connector.pk)]:
        answer = _step(through, action="finish", state=forged, code=code)
        assert answer["status"] == 400 and "session" not in answer["body"], forged
    assert _step(None, action="finish", state=state, code=code)["status"] == 400  # no connector at all
    done = _step(portal_connector.pk, action="finish", state=state, code=code)  # none of that burned the real one
    assert done["status"] == 200 and done["actor"] == f"oauth-{provider.pk}:alice"
    assert _step(portal_connector.pk, action="finish", state=state, code=code)["status"] == 400  # replayed
    # The session is bound to the connector too.
    key = _body(done)["session"]
    page = {"method": "GET", "path": "/ra/", "body": "", "identity": {"session": key}}
    assert run_portal(page, other.pk)["status"] == 403
    assert run_portal(page, portal_connector.pk)["status"] == 200
    # A pending record is not a session: its key forwarded as one gets nothing.
    _, pending = _started(portal_connector.pk, provider)
    assert run_portal({**page, "identity": {"session": pending}}, portal_connector.pk)["status"] == 403


@pytest.mark.django_db
def test_a_code_issued_to_another_client_is_refused(portal_connector, provider, op):
    """A code the same provider issued to another client (with the same callback URL), carried back with the
    state of a login the CA started: the provider refuses to redeem it for the CA's client."""
    from urllib.parse import urlencode

    other = op.register(grant_types=["authorization_code"], response_types=["code"], redirect_uris=[CALLBACK],
                        token_endpoint_auth_method="client_secret_basic")
    _, state = _started(portal_connector.pk, provider)
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    other_url = op.url("/auth?" + urlencode({
        "response_type": "code", "client_id": other["client_id"], "redirect_uri": CALLBACK, "scope": "openid",
        "state": "attacker", "nonce": "attacker", "code_challenge": challenge, "code_challenge_method": "S256"}))
    foreign_code = _query(sign_in(other_url, "alice"))["code"]
    answer = _step(portal_connector.pk, action="finish", state=state, code=foreign_code)
    assert answer["status"] == 401 and _ca_records() == []
    assert not User.objects.filter(username__startswith="oauth-").exists()
    event = AuditEvent.objects.get(event_type="OAUTH_LOGIN")
    assert event.outcome == "FAILURE" and "token endpoint" in event.details["reason"]


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["wrong nonce", "wrong audience", "another key", "another issuer"])
def test_an_id_token_that_fails_the_cas_checks_is_refused(portal_connector, provider, op, monkeypatch, case):
    """The token endpoint's answer replaced by a token the real provider's key signed (or another key), wrong in
    one way: the CA's own ID token checks refuse it."""
    import time

    from pki.auth.oidc import ProviderOIDCBackend

    url, state = _started(portal_connector.pk, provider)
    nonce = _query(url)["nonce"]
    now = int(time.time())
    claims = {"iss": op.issuer, "sub": "alice", "aud": provider.client_id, "iat": now, "exp": now + 300,
              "nonce": nonce, "preferred_username": "alice", "groups": ["ra-operators"]}
    key = None
    if case == "wrong nonce":
        claims["nonce"] = "not-the-attempts-nonce"
    elif case == "wrong audience":
        claims["aud"] = "another-client"
    elif case == "another key":
        key, _ = new_rsa_key(op.kid)
    else:
        claims["iss"] = "https://idp.example.invalid"
    token = op.mint(claims, key=key)
    monkeypatch.setattr(ProviderOIDCBackend, "get_token", lambda self, payload: {"id_token": token})
    answer = _step(portal_connector.pk, action="finish", state=state, code="any")
    assert answer["status"] == 401 and "ID token was not accepted" in base64.b64decode(answer["body"]).decode()
    assert _ca_records() == [] and not User.objects.filter(username__startswith="oauth-").exists()
    assert AuditEvent.objects.filter(event_type="OAUTH_LOGIN", outcome="FAILURE").exists()
    # The same token with the right values is accepted: the refusal was for the one wrong thing.
    url, state = _started(portal_connector.pk, provider)
    good = {**claims, "iss": op.issuer, "aud": provider.client_id, "nonce": _query(url)["nonce"]}
    monkeypatch.setattr(ProviderOIDCBackend, "get_token", lambda self, payload: {"id_token": op.mint(good)})
    assert _step(portal_connector.pk, action="finish", state=state, code="any")["status"] == 200


@pytest.mark.django_db
def test_a_provider_the_ca_does_not_trust_is_refused(portal_connector, provider, op):
    from pki.auth.access import Actor

    unknown = provider.pk + 1000
    assert _step(portal_connector.pk, action="start", provider=unknown, redirect_uri=CALLBACK)["status"] == 404
    for callback in ["https://evil.example/steal", "http://testserver/ra/login/?x=1", "javascript:alert(1)", 7]:
        assert _step(portal_connector.pk, action="start", provider=provider.pk, redirect_uri=callback)["status"] == 400
    # Removed between the start and the provider's answer: the code is never redeemed.
    url, state = _started(portal_connector.pk, provider)
    code = _query(sign_in(url, "alice"))["code"]
    oauth_services.delete_provider(Actor.system_actor("test"), provider)
    clear_memos()
    assert _step(portal_connector.pk, action="finish", state=state, code=code)["status"] == 403
    assert _ca_records() == []


@pytest.mark.django_db
def test_a_provider_removed_after_the_login_ends_the_session(portal_connector, provider, op):
    from pki.auth.access import Actor

    url, state = _started(portal_connector.pk, provider)
    done = _step(portal_connector.pk, action="finish", state=state, code=_query(sign_in(url, "alice"))["code"])
    page = {"method": "GET", "path": "/ra/", "body": "", "identity": {"session": _body(done)["session"]}}
    assert run_portal(page, portal_connector.pk)["status"] == 200
    oauth_services.delete_provider(Actor.system_actor("test"), provider)
    clear_memos()
    ended = run_portal(page, portal_connector.pk)
    assert ended["status"] == 403 and ended["session_ended"] and _ca_records() == []


@pytest.mark.django_db
def test_the_password_login_stays_when_the_ca_does_not_list_providers(ra_node):
    """Nobody carries the RA's question: the page comes after a short wait, with the password form."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 0.3
    page = Client().get("/ra/login/")
    text = page.content.decode()
    assert page.status_code == 200 and 'name="password"' in text and "not available right now" in text
    assert 'name="provider"' not in text


@pytest.mark.django_db
def test_two_finishes_of_one_state_at_once_take_it_once(portal_connector, provider, monkeypatch):
    """Two carried finishes of the same state read the pending record before either deleted it (two connector
    processes, say): the database's DELETE decides, and only one goes on to the provider."""
    _, state = _started(portal_connector.pk, provider)
    stale = portal_sessions._pending_store(state)
    assert portal_sessions.PENDING in stale  # read now, as the second finish would have
    assert portal_sessions._take_pending(state, portal_connector.pk)["provider"] == provider.pk
    monkeypatch.setattr(portal_sessions, "_pending_store", lambda key=None: stale)
    with pytest.raises(portal_sessions.OidcRefused) as refused:
        portal_sessions._take_pending(state, portal_connector.pk)
    assert refused.value.code == "state already used"
