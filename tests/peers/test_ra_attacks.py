"""Attacks on the RA side of the peers protocol: who may reach the connector's endpoints (forged forwarded-certificate
headers), who a carried request runs as, whose waiter an answer reaches, and malformed input from the connector and
from anyone at the RA's REST, portal and login doors (a clean 4xx, nothing stored, no traceback)."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client

from peers import portal_ra, queue
from peers.choices import WorkStatus
from peers.models import IncomingPeer, PeerWorkItem, PushedScepAlias

from .conftest import cert_headers

pytestmark = pytest.mark.django_db


@pytest.fixture
def allowed(peer_ca, make_cert, peer_role):
    """A CA connector's certificate: a role member allowing /peer/incoming."""
    cert = make_cert(peer_ca)
    peer_role(peer_ca, cert, {"/peer/incoming": True})
    return cert


@pytest.fixture
def client():
    """A client that answers a crash with the 500 a caller would get, instead of raising it into the test."""
    return Client(raise_request_exception=False)


@pytest.fixture
def _no_providers():
    """The RA's login page lists the CA's OAuth providers from the shared cache: none, so nothing is queued."""
    cache.set(portal_ra.PROVIDERS_CACHE_KEY, {"providers": [], "answered": True}, 60)
    yield
    cache.delete(portal_ra.PROVIDERS_CACHE_KEY)


def _post(client, path: str, body, cert, **extra):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**cert_headers(cert), **extra}
    return client.post(f"/peers/v1/{path}", data=raw, content_type="application/json", **headers)


# --- 1. the connector's endpoints: nobody but an incoming peer's verified certificate -------------------------------

ENDPOINTS = [
    ("lease", {"wait": 0}),
    ("answer", {"id": 1, "key": "k", "result": {}}),
    ("push/scep", {"aliases": [{"name": "planted"}]}),
    ("push/status", {"cas": [], "certificates": [], "crls": []}),
]


@pytest.mark.parametrize(("path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("case", "status"), [
    ("forged-from-elsewhere", 401),  # the headers from a peer that is not the TLS proxy
    ("not-verified", 401),  # nginx said NONE: the certificate header is not believed
    ("no-proxy-secret", 401),  # from the proxy's address but without the secret the proxy adds
    ("wrong-proxy-secret", 401),
    ("admin-without-rule", 403),  # a certificate of the CA, in a role here, but not allowed /peer/incoming
])
def test_forged_or_unentitled_callers_reach_no_peer_endpoint(client, ra_node, peer_ca, make_cert, peer_role, allowed,
                                                            path, body, case, status, tracebacks):
    item = queue.submit("scep.get", {"alias": "scep"}, "scep:scep", 30)
    cert, extra = allowed, {}
    if case == "forged-from-elsewhere":
        extra = {"REMOTE_ADDR": "10.9.9.9"}
    elif case == "not-verified":
        extra = {"HTTP_X_SSL_CLIENT_VERIFY": "NONE"}
    elif case in ("no-proxy-secret", "wrong-proxy-secret"):
        ra_node.PKI_PROXY_SECRET = "s3cret"
        extra = {"HTTP_X_PKI_PROXY_SECRET": "guess"} if case == "wrong-proxy-secret" else {}
    else:
        cert = make_cert(peer_ca, "ra-admin")
        peer_role(peer_ca, cert, {"/": True, "/peer/incoming": False})
    body = {**body, "id": item.pk, "key": item.idempotency_key} if path == "answer" else body
    response = _post(client, path, body, cert, **extra)
    assert response.status_code == status, response.content
    assert response.json()["error_code"] in ("no-certificate", "no-rule")
    item.refresh_from_db()
    assert (item.status, item.result) == (WorkStatus.WAITING, None)
    assert not PushedScepAlias.objects.exists() and not IncomingPeer.objects.exists()
    assert not tracebacks.records


# --- 2. a carried request runs as the identity the RA verified, never one the caller names -----------------------


def test_forged_certificate_headers_at_the_ras_rest_and_portal_doors_carry_nothing(client, ra_node, peer_ca,
                                                                                   make_cert):
    forged = {**cert_headers(make_cert(peer_ca, "ra-admin")), "REMOTE_ADDR": "10.9.9.9"}
    rest = client.get("/ejbca/ejbca-rest-api/v1/ca", **forged)
    assert rest.status_code == 401
    page = client.post("/ra/endentities/revoke/", {"reason": "1"}, **forged)
    assert page.status_code == 403
    assert not PeerWorkItem.objects.exists()


def test_a_portal_post_of_a_password_session_without_the_ras_csrf_token_carries_nothing(ra_node):
    browser = Client(enforce_csrf_checks=True)
    session = browser.session
    session[portal_ra.PORTAL_SESSION] = {"key": "a" * 32, "username": "rita"}
    session.save()
    browser.cookies["sessionid"] = session.session_key
    response = browser.post("/ra/endentities/revoke/", {"reason": "1"})
    assert response.status_code == 403
    assert not PeerWorkItem.objects.exists()


# --- 3. an answer reaches its own waiter only ---------------------------------------------------------------------


def test_an_answer_needs_its_items_own_key_and_reaches_that_items_waiter_only(client, ra_node, peer_ca, make_cert,
                                                                             peer_role, allowed):
    a = queue.submit("scep.get", {"alias": "a"}, "scep:a", 30)
    b = queue.submit("scep.get", {"alias": "b"}, "scep:b", 30)
    assert len(_post(client, "lease", {"wait": 0}, allowed).json()["items"]) == 2
    result = {"status": 200, "content_type": "text/plain", "body": "QQ=="}
    # Another incoming peer, which never leased them, cannot answer by id alone, nor with a key of its own choice.
    other = make_cert(peer_ca, "other-connector")
    peer_role(peer_ca, other, {"/peer/incoming": True})
    assert _post(client, "answer", {"id": a.pk, "key": "0" * 32, "result": result}, other).status_code == 404
    # One item's id with the other's key answers neither (also within one post).
    assert _post(client, "answer", {"id": a.pk, "key": b.idempotency_key, "result": result}, allowed
                 ).status_code == 404
    crossed = _post(client, "answer", {"answers": [{"id": b.pk, "key": a.idempotency_key, "result": result},
                                                   {"id": a.pk, "key": b.idempotency_key, "result": result}]}, allowed)
    assert crossed.json() == {"outcomes": ["unknown", "unknown"]}
    assert set(PeerWorkItem.objects.values_list("status", flat=True)) == {WorkStatus.LEASED}
    # The right pair answers its own item; its waiter gets it, the other item's waiter does not.
    answered = _post(client, "answer", {"id": b.pk, "key": b.idempotency_key, "result": {**result, "body": "Qg=="}},
                     allowed)
    assert answered.json() == {"outcome": "accepted"}
    assert queue.wait_for_answer(a, timeout=0.2) is None
    assert queue.wait_for_answer(b, timeout=1).result["body"] == "Qg=="


# --- 4. malformed input: a clean 4xx, nothing stored, no traceback --------------------------------------------------

BAD_ANSWERS = [
    b'{"id": 100000000000000000000, "key": "k", "result": {}}',  # beyond PostgreSQL's bigint
    b'{"answers": [{"id": -100000000000000000000, "key": "k", "result": {}}]}',
    b'{"id": 1, "key": "k\\u0000", "result": {}}',  # PostgreSQL's text and jsonb hold no NUL
    b'{"id": 1, "key": "k", "result": {"body": "\\u0000"}}',
    b'{"id": 1, "key": "k", "result": {"\\u0000": 1}}',
    b'{"id": 1, "key": "\\ud800", "result": {}}',  # a lone surrogate is no text PostgreSQL takes
    b'{"id": 1, "key": "k", "result": {"body": "\\udfff"}}',
    b'{"id": 1, "key": "k", "result": {"status": NaN}}',  # not JSON; jsonb refuses it too
    b'{"id": 1, "key": "k", "result": {"status": 1e400}}',
    b"[" * 100000,  # deeper than the JSON parser goes
]


@pytest.mark.parametrize("raw", BAD_ANSWERS)
def test_a_malformed_answer_is_a_400_and_answers_nothing(client, ra_node, allowed, raw, tracebacks):
    item = queue.submit("scep.get", {"alias": "scep"}, "scep:scep", 30)
    _post(client, "lease", {"wait": 0}, allowed)
    raw = raw.replace(b'"id": 1,', f'"id": {item.pk},'.encode()).replace(b'"key": "k"',
                                                                           f'"key": "{item.idempotency_key}"'.encode())
    response = _post(client, "answer", raw, allowed)
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == "bad-request"
    item.refresh_from_db()
    assert (item.status, item.result) == (WorkStatus.LEASED, None)
    assert not tracebacks.records


@pytest.mark.parametrize(("path", "raw"), [
    ("push/scep", b'{"aliases": [{"name": "a", "responses": {"GetCACaps|": {"status": 200, "content_type": '
                  b'"text/\\u0000", "body": ""}}}]}'),
    ("push/scep", b'{"aliases": [{"name": "a", "responses": {"GetCACaps|\\u0000": {"status": 200, "content_type": '
                  b'"t", "body": ""}}}]}'),
    ("push/scep", b'{"aliases": [{"name": "a\\ud800"}]}'),
    ("push/status", b'{"certificates": [{"ca": "FINGERPRINT", "serial": "1a", "status": "REVOKED", '
                    b'"changed_at": "2024-02-30T00:00:00+00:00"}]}'),  # well formed, but no such day
    ("push/status", b'{"certificates": [{"ca": "FINGERPRINT", "serial": "1a", "status": "REVOKED", '
                    b'"changed_at": "2024-01-01T00:00:00+00:00", "revoked_at": "2024-01-01T25:00:00+00:00"}]}'),
    ("lease", b'{"wait": 0, "kinds": ' + b"[" * 100000 + b"}"),
])
def test_a_malformed_push_is_a_400_and_stores_nothing(client, ra_node, allowed, peer_ca, path, raw, tracebacks):
    from cryptography.hazmat.primitives import hashes

    from peers.models import PushedRevocation
    from pki.choices import CertificateStatus

    raw = raw.replace(b"FINGERPRINT", peer_ca.certificate.fingerprint(hashes.SHA256()).hex().encode()).replace(
        b'"REVOKED"', json.dumps(CertificateStatus.REVOKED.value).encode())
    response = _post(client, path, raw, allowed)
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == "bad-request"
    assert not PushedScepAlias.objects.exists() and not PushedRevocation.objects.exists()
    assert not tracebacks.records


@pytest.mark.parametrize("path", [
    "/ejbca/ejbca-rest-api/v1/certificate/CN%3Dx%00/1234/revocationstatus",
    "/ejbca/ejbca-rest-api/v1/endentity/a%00b/revoke",
    "/api/v1/approvals/a%00b/",
])
def test_a_nul_in_a_rest_path_at_the_ra_is_a_400_and_queues_nothing(client, ra_node, path, tracebacks):
    # Anyone may send a header that looks like a credential: the CA checks it only once the call is carried.
    response = client.get(path, HTTP_AUTHORIZATION="Bearer not-checked-at-the-ra")
    assert response.status_code == 400, response.content
    assert "error_message" in response.json()
    assert not PeerWorkItem.objects.exists()
    assert not tracebacks.records


def test_a_nul_in_a_portal_path_at_the_ra_is_a_400_and_queues_nothing(client, ra_node, peer_ca, make_cert,
                                                                      tracebacks):
    operator = make_cert(peer_ca, "ra-op")
    response = client.get("/ra/certificates/1/download/a%00b/", **cert_headers(operator))
    assert response.status_code == 400, response.content
    assert not PeerWorkItem.objects.exists()
    assert not tracebacks.records


@pytest.mark.usefixtures("_no_providers")
@pytest.mark.parametrize("query", ["code=x%00y", "code=x&error=a%00b"])
def test_a_nul_in_the_oidc_reply_at_the_ra_is_a_400_and_queues_nothing(client, ra_node, query, tracebacks):
    # The state is this browser's own (an attacker can start a login of their own to get one).
    session = client.session
    session[portal_ra.OIDC_PENDING] = {"state": "s" * 32, "next": "/ra/"}
    session.save()
    response = client.get(f"/ra/login/?state={'s' * 32}&{query}")
    assert response.status_code == 400, response.content
    assert not PeerWorkItem.objects.exists()
    assert not tracebacks.records
