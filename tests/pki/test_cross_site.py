"""Cross-site requests through the REST API (issue 11, item 1).

A browser adds some credentials on its own: the session cookie, a client certificate (forwarded by the TLS
proxy) and cached HTTP Basic. A page on another site can make it send a state-changing request with them, so
such a request must come from this site (``Origin``, ``Sec-Fetch-Site``) and carry JSON, which a cross-site
HTML form cannot send. Bearer tokens are never added by a browser, so they are exempt.

Each case is the attack itself against a real endpoint, and asserts that nothing changed.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cryptotokens.models import CryptoTokenKeyPair
from endentities.models import EndEntity
from pki.auth.oauth import clear_memos
from pki.choices import MemberMatch
from pki.models import CRL, AccessRule, AuditEvent, Role, RoleMember, TrustedOAuthProvider
from pki.services import oauth as oauth_services
from tests.pki.test_roles_clientcert import headers as cert_headers
from tests.pki.test_roles_clientcert import issue_client_cert

from ..endentities.entities_support import ee_profile, ee_profile_factory  # noqa: F401 (fixtures)

V1 = "/ejbca/ejbca-rest-api/v1"
SITE = "http://testserver"  # the test client's own scheme and host
CSRF_SECRET = "k" * 32  # an unmasked CSRF secret: Django accepts it as cookie and as header
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def behind_proxy(settings):
    """The TLS proxy settings of deploy/: client certificates believed from the proxy on this host only."""
    settings.PKI_BEHIND_TLS_PROXY = True
    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1/32"]


# --- the callers -------------------------------------------------------------------------------------------

def _superadmin_role() -> Role:
    role, _ = Role.objects.get_or_create(name="xsite-superadmins")
    AccessRule.objects.get_or_create(role=role, resource="/")
    return role


class Caller:
    """A client holding one kind of credential; ``post`` sends a request as a browser or a script would."""

    kind = ""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.extra: dict[str, str] = {}

    def send(self, method: str, path: str, body: bytes, content_type: str | None, **headers: str):
        extra = {**self.extra, **headers}
        if content_type is not None:
            extra["CONTENT_TYPE"] = content_type
        return self.client.generic(method, path, body, **extra)


class BasicCaller(Caller):
    kind = "basic"

    def __init__(self) -> None:
        super().__init__()
        get_user_model().objects.create_user("xsite-basic", password="pw-xsite-basic")
        RoleMember.objects.create(role=_superadmin_role(), match_type=MemberMatch.LOCAL_USER,
                                  match_value="xsite-basic")
        self.extra["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(b"xsite-basic:pw-xsite-basic").decode()


class CertificateCaller(Caller):
    kind = "client_cert"

    def __init__(self, ca, actor, csr_factory) -> None:
        super().__init__()
        issued = issue_client_cert(ca, actor, csr_factory, "xsite-operator")
        RoleMember.objects.create(role=_superadmin_role(), match_type=MemberMatch.CERTIFICATE_SERIAL,
                                  match_value=issued.row.serial, issuer_ca=ca)
        self.extra.update(cert_headers(issued.certificate))


class SessionCaller(Caller):
    """A logged-in browser; it holds the CSRF token too (the worst case: the attacker learnt it)."""

    kind = "session"

    def __init__(self) -> None:
        super().__init__()
        user = get_user_model().objects.create_user("xsite-session", password="pw-xsite-session")
        RoleMember.objects.create(role=_superadmin_role(), match_type=MemberMatch.LOCAL_USER,
                                  match_value="xsite-session")
        self.client.force_login(user)
        self.client.cookies["csrftoken"] = CSRF_SECRET
        self.extra["HTTP_X_CSRFTOKEN"] = CSRF_SECRET


@pytest.fixture
def caller_factory(root_ca, actor, csr_factory) -> Callable[[str], Caller]:
    def make(kind: str) -> Caller:
        if kind == "basic":
            return BasicCaller()
        if kind == "client_cert":
            return CertificateCaller(root_ca, actor, csr_factory)
        return SessionCaller()
    return make


# --- the state-changing endpoints --------------------------------------------------------------------------

@dataclass
class Endpoint:
    name: str
    path: Callable[[object], str]
    body: dict | None  # the JSON body (None: the operation takes none)
    changed: Callable[[object], int]  # what a successful call adds (a row count)
    ok: int


def _ee_body() -> dict:
    return {"username": "pki-superadmin", "password": "attacker-code", "subject_dn": "CN=pki-superadmin,O=Test",
            "ca_name": "TestRoot", "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "token": "USERGENERATED"}


ENDPOINTS = [
    Endpoint("endentity", lambda w: f"{V1}/endentity", _ee_body(),
             lambda w: EndEntity.objects.filter(username="pki-superadmin").count(), 200),
    Endpoint("createcrl", lambda w: f"{V1}/ca/{quote(w.root_ca.subject_dn, safe='')}/createcrl", None,
             lambda w: CRL.objects.filter(ca=w.root_ca).count(), 200),
    Endpoint("generatekeys", lambda w: f"{V1}/cryptotoken/XsiteToken/generatekeys",
             {"key_pair_alias": "attacker", "key_alg": "ECDSA", "key_spec": "P-256"},
             lambda w: CryptoTokenKeyPair.objects.filter(token=w.token, alias="attacker").count(), 200),
    Endpoint("oauth-providers", lambda w: "/api/v1/oauth-providers/",
             {"label": "Attacker IdP", "issuer": "https://idp.attacker.example",
              "jwks_uri": "https://idp.attacker.example/jwks", "audience": "urn:pki"},
             lambda w: TrustedOAuthProvider.objects.filter(label="Attacker IdP").count(), 201),
]


@dataclass
class World:
    root_ca: object
    token: object


@pytest.fixture
def world(root_ca, soft_token_factory, ee_profile):  # noqa: F811
    return World(root_ca=root_ca, token=soft_token_factory("XsiteToken"))


def _json(body: dict | None) -> bytes:
    import json

    return json.dumps(body).encode() if body is not None else b""


def _form(body: dict | None) -> bytes:
    # What an HTML form sends; an operation without a body still gets a field, so the request has a body.
    return urlencode(body if body is not None else {"deltacrl": "false"}).encode()


# (case, body encoder, content type, request headers, expected status): the attacks, on every endpoint
ATTACKS = [
    ("foreign Origin", _json, JSON, {"HTTP_ORIGIN": "https://attacker.example"}, 403),
    ("Sec-Fetch-Site cross-site", _json, JSON, {"HTTP_SEC_FETCH_SITE": "cross-site"}, 403),
    ("the cross-site HTML form", _form, FORM,
     {"HTTP_ORIGIN": "https://attacker.example", "HTTP_SEC_FETCH_SITE": "cross-site"}, 403),
    ("form body from this site", _form, FORM, {"HTTP_ORIGIN": SITE, "HTTP_SEC_FETCH_SITE": "same-origin"}, 415),
]
# More ways to say "another site" or "not JSON", on the end entity endpoint
MORE_ATTACKS = [
    ("Origin null (sandboxed frame)", _json, JSON, {"HTTP_ORIGIN": "null"}, 403),
    ("same-site, another origin", _json, JSON,
     {"HTTP_SEC_FETCH_SITE": "same-site", "HTTP_ORIGIN": "http://ra.testserver"}, 403),
    ("same-site, no Origin", _json, JSON, {"HTTP_SEC_FETCH_SITE": "same-site"}, 403),
    ("foreign Referer, no Origin", _json, JSON, {"HTTP_REFERER": "https://attacker.example/page.html"}, 403),
    ("multipart body", lambda b: b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x", {}, 415),
    ("text/plain body (a no-cors fetch)", _json, "text/plain", {}, 415),
    ("JSON look-alike type", _json, "application/jsonp", {}, 415),
    ("body without a content type", _json, None, {}, 415),
]

CREDENTIALS = ["basic", "client_cert", "session"]


def _attack(world, caller, endpoint: Endpoint, encode, content_type, extra, status):
    before, audit_before = endpoint.changed(world), AuditEvent.objects.count()
    r = caller.send("POST", endpoint.path(world), encode(endpoint.body), content_type, **extra)
    assert r.status_code == status, r.content
    assert set(r.json()) == {"error_code", "error_message"} and r.json()["error_code"] == status
    assert endpoint.changed(world) == before
    assert AuditEvent.objects.count() == audit_before  # refused at the door: no audit row per request


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
@pytest.mark.parametrize("kind", CREDENTIALS)
@pytest.mark.parametrize(("case", "encode", "content_type", "extra", "status"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_refused_and_changes_nothing(world, caller_factory, kind, endpoint, case, encode, content_type,
                                               extra, status):
    _attack(world, caller_factory(kind), endpoint, encode, content_type, extra, status)


@pytest.mark.parametrize("kind", CREDENTIALS)
@pytest.mark.parametrize(("case", "encode", "content_type", "extra", "status"), MORE_ATTACKS,
                         ids=[a[0] for a in MORE_ATTACKS])
def test_more_attacks_on_endentity(world, caller_factory, kind, case, encode, content_type, extra, status):
    _attack(world, caller_factory(kind), ENDPOINTS[0], encode, content_type, extra, status)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
@pytest.mark.parametrize("kind", CREDENTIALS)
def test_same_origin_json_still_works(world, caller_factory, kind, endpoint):
    before = endpoint.changed(world)
    r = caller_factory(kind).send("POST", endpoint.path(world), _json(endpoint.body), JSON, HTTP_ORIGIN=SITE,
                                  HTTP_SEC_FETCH_SITE="same-origin")
    assert r.status_code == endpoint.ok, r.content
    assert endpoint.changed(world) == before + 1


@pytest.mark.parametrize("kind", CREDENTIALS)
def test_a_script_without_browser_headers_still_works(world, caller_factory, kind):
    """curl or an EJBCA client: no Origin, no Sec-Fetch-*; JSON with a charset parameter."""
    r = caller_factory(kind).send("POST", f"{V1}/endentity", _json(_ee_body()), "application/json; charset=utf-8")
    assert r.status_code == 200, r.content
    assert EndEntity.objects.filter(username="pki-superadmin").exists()


@pytest.mark.parametrize("kind", CREDENTIALS)
def test_empty_cross_site_form_is_refused(world, caller_factory, kind):
    """A form with no fields has no body, so only the Origin check stands between it and createcrl."""
    caller = caller_factory(kind)
    before = CRL.objects.filter(ca=world.root_ca).count()
    r = caller.send("POST", ENDPOINTS[1].path(world), b"", FORM, HTTP_ORIGIN="https://attacker.example",
                    HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == 403, r.content
    assert CRL.objects.filter(ca=world.root_ca).count() == before


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", f"{V1}/cryptotoken/XsiteToken/deactivate"),
    ("POST", f"{V1}/cryptotoken/XsiteToken/xsite-key/removekeys"),
    ("DELETE", f"{V1}/endentity/victim"),
])
@pytest.mark.parametrize("kind", CREDENTIALS)
def test_other_methods_and_bodiless_operations_are_checked_too(world, caller_factory, entity_factory, kind, method,
                                                               path):
    from cryptotokens import services

    caller = caller_factory(kind)
    entity_factory("victim")
    services.generate_key_pair(actor_of_system(), world.token, "xsite-key", "P-256")
    r = caller.send(method, path, b"", None, HTTP_ORIGIN="https://attacker.example")
    assert r.status_code == 403, r.content
    world.token.refresh_from_db()
    assert world.token.is_active
    assert CryptoTokenKeyPair.objects.filter(token=world.token, alias="xsite-key").exists()
    assert EndEntity.objects.filter(username="victim").exists()


def actor_of_system():
    from pki.auth.access import Actor

    return Actor.system_actor("test")


@pytest.fixture
def entity_factory(actor, ee_profile):  # noqa: F811
    from endentities.services import add_end_entity
    from endentities.validation import EndEntityInput

    def make(username: str):
        return add_end_entity(actor, EndEntityInput(username=username, password="foo123",
                                                    subject_dn=f"CN={username},O=Test"), profile=ee_profile)
    return make


@pytest.mark.parametrize("kind", CREDENTIALS)
def test_reads_from_another_site_are_not_refused(world, caller_factory, kind):
    """GET changes nothing; the browser's same-origin policy keeps the answer from the other site."""
    caller = caller_factory(kind)
    r = caller.send("GET", f"{V1}/ca", b"", None, HTTP_ORIGIN="https://attacker.example",
                    HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == 200, r.content


def test_session_requests_keep_the_csrf_token_check(world):
    caller = SessionCaller()
    del caller.extra["HTTP_X_CSRFTOKEN"]
    r = caller.send("POST", f"{V1}/endentity", _json(_ee_body()), JSON, HTTP_ORIGIN=SITE,
                    HTTP_SEC_FETCH_SITE="same-origin")
    assert r.status_code == 403 and "CSRF" in r.json()["error_message"]
    assert not EndEntity.objects.filter(username="pki-superadmin").exists()


# --- what "this site" is -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("forwarded_proto", "origin", "trusted", "status"), [
    ("https", "https://testserver", [], 200),  # the proxy terminates TLS: the site is https://
    ("https", "http://testserver", [], 403),  # same host, other scheme: another origin
    (None, "https://testserver", [], 403),
    ("https", "https://ra.example.org", ["https://ra.example.org"], 200),  # CSRF_TRUSTED_ORIGINS
    ("https", "https://x.example.org", ["https://*.example.org"], 200),
    ("https", "https://example.org.attacker.example", ["https://*.example.org"], 403),
    ("https", "http://x.example.org", ["https://*.example.org"], 403),
])
def test_this_site_follows_the_proxy_and_trusted_origins(world, settings, caller_factory, forwarded_proto, origin,
                                                         trusted, status):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = trusted
    caller = caller_factory("client_cert")
    extra = {"HTTP_ORIGIN": origin, "HTTP_HOST": "testserver"}  # as nginx passes the browser's Host on
    if forwarded_proto:
        extra["HTTP_X_FORWARDED_PROTO"] = forwarded_proto
    r = caller.send("POST", ENDPOINTS[1].path(world), b"", None, **extra)
    assert r.status_code == status, r.content


def test_refusal_is_logged_with_what_was_refused(world, caller_factory, caplog):
    caller = caller_factory("basic")
    with caplog.at_level(logging.WARNING):
        r = caller.send("POST", f"{V1}/endentity", _json(_ee_body()), JSON, HTTP_ORIGIN="https://attacker.example")
    assert r.status_code == 403
    text = " ".join(rec.getMessage() for rec in caplog.records)
    assert "https://attacker.example" in text and "/v1/endentity" in text and "basic" in text.lower()


# --- Bearer tokens are exempt ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def op():
    from tests.support.oidc_op.op import start_op

    return start_op("xsite-op")


@pytest.fixture
def bearer(db, op, settings):
    from django.core.cache import cache

    cache.clear()
    clear_memos()
    provider = oauth_services.save_provider(actor_of_system(), {"label": "Xsite OP", "issuer": op.issuer,
                                                                "audience": "https://pki.example/api"})
    clear_memos()
    RoleMember.objects.create(role=_superadmin_role(), match_type=MemberMatch.OAUTH_CLAIM, provider=provider,
                              claim="groups", match_value="pki-admins")
    now = int(time.time())
    token = op.mint({"iss": op.issuer, "sub": "script", "aud": "https://pki.example/api", "iat": now,
                     "exp": now + 300, "groups": ["pki-admins"]})
    yield "Bearer " + token
    clear_memos()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_bearer_is_exempt_from_the_origin_check(world, bearer, endpoint):
    """A browser never adds a bearer token by itself, so an Origin header proves nothing against it."""
    before = endpoint.changed(world)
    r = Client().generic("POST", endpoint.path(world), _json(endpoint.body), CONTENT_TYPE=JSON,
                         HTTP_AUTHORIZATION=bearer, HTTP_ORIGIN="https://tooling.example",
                         HTTP_SEC_FETCH_SITE="cross-site")
    assert r.status_code == endpoint.ok, r.content
    assert endpoint.changed(world) == before + 1


def test_bearer_still_needs_json(world, bearer):
    r = Client().generic("POST", f"{V1}/endentity", _form(_ee_body()), CONTENT_TYPE=FORM, HTTP_AUTHORIZATION=bearer)
    assert r.status_code == 415 and r.json()["error_code"] == 415
    assert not EndEntity.objects.filter(username="pki-superadmin").exists()
