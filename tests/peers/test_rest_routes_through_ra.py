"""The rest of the REST API at an RA node: v1 CAs and certificates, v2, approvals and OAuth bearer tokens. Each
carried route answers at the RA exactly as at the CA (the CA's view runs as the caller); a REST route the RA does
not carry is refused at the RA before anything is queued; the RA's own administration is answered at the RA.
One database plays both nodes, the node role switched per request (see test_rest_through_ra)."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.urls import get_resolver, resolve
from rest_framework.test import APIClient

from peers import services as peers
from peers.carried_http import RA_LOCAL_REST_ROUTES, REST_PREFIXES, REST_ROUTES, rest_route_at_ra, run_rest
from peers.models import PeerWorkItem
from pki.models import CRL, AuditEvent, Certificate
from tests.endentities.entities_support import *  # noqa: F403
from tests.pki.test_api_auth import V1, fast_password_hashing, make_client  # noqa: F401

from .conftest import carrying

V2 = V1.replace("/v1", "/v2")
DB = pytest.mark.django_db(transaction=True)  # a carrier thread needs committed data


@pytest.fixture
def carrier(actor, connector_binding, peer_role, peer_ca):
    peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/rest": True})
    connector = peers.add_connector(actor, name="dmz-ra", url="https://127.0.0.1:9", binding="ra-link")
    with carrying(connector, forget=True):
        yield connector


def _send(client, method: str, path: str, body):
    call = getattr(client, method)
    return call(path, body, format="json") if body is not None else call(path)


def _same_at_both(settings, client, method: str, path: str, body=None):
    """The call at the RA (carried), then straight at the CA; both answers."""
    at_ra = _send(client, method, path, body)
    settings.PKI_NODE_ROLE = "ca"
    try:
        at_ca = _send(client, method, path, body)
    finally:
        settings.PKI_NODE_ROLE = "ra"
    return at_ra, at_ca


def _content(response):
    if response["Content-Type"].startswith("application/json"):
        return response.json()
    return response.content


def _route(path: str) -> str:
    return resolve(path.partition("?")[0]).url_name


def _routes(resolver=None, prefix: str = "/"):
    """(path pattern, URL name, HTTP methods) of every route of the URL conf."""
    for p in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(p.pattern).lstrip("^")
        if hasattr(p, "url_patterns"):
            yield from _routes(p, pattern)
            continue
        view = getattr(p.callback, "view_class", None)
        yield pattern, p.name, {m for m in ("get", "post", "put", "delete") if view and hasattr(view, m)}


# (method, path, body): each answered at the RA as at the CA. {dn}: TestRoot's DN, {serial}: bob's certificate.
READS = [
    ("get", f"{V1}/ca", None, 200),
    ("get", f"{V1}/ca?includeExternal=true", None, 200),
    ("get", f"{V1}/ca/status", None, 200),
    ("get", f"{V1}/ca/{{dn}}/certificate/download", None, 200),  # a PEM file, not JSON
    ("get", f"{V1}/ca/{{dn}}/getLatestCrl", None, 200),
    ("get", f"{V1}/ca/{quote('CN=No Such CA', safe='')}/getLatestCrl", None, 404),  # the CA's own refusal
    ("get", f"{V1}/certificate/status", None, 200),
    ("get", f"{V1}/certificate/{{dn}}/{{serial}}/revocationstatus", None, 200),
    ("get", f"{V1}/certificate/expire?days=36500", None, 200),
    ("get", f"{V1}/certificate/expire", None, 400),  # days missing: the CA's 400
    ("get", f"{V1}/endentity/status", None, 200),
    ("get", f"{V2}/certificate/status", None, 200),
    ("get", f"{V2}/certificate/count", None, 200),
    ("get", f"{V2}/certificate/count?isActive=true", None, 200),
    ("post", f"{V2}/certificate/search", {"pagination": {"page_size": 10, "current_page": 1},
                                         "sort": {"property": "USERNAME", "operation": "ASC"},
                                         "criteria": [{"property": "QUERY", "value": "bob", "operation": "LIKE"}]},
     200),
    ("get", f"{V2}/certificate/profile/ENDUSER", None, 200),
    ("get", f"{V2}/certificate/profile/NoSuchProfile", None, 400),
    ("put", f"{V2}/certificate/{{dn}}/ffff/keyrecover", None, 400),  # an unknown certificate: the CA's answer
    ("get", f"{V2}/endentity/status", None, 200),
    ("get", f"{V2}/endentity/profiles/authorized", None, 200),
    ("get", f"{V2}/endentity/profile/TestEEP", None, 200),
    ("post", f"{V2}/endentity/search", {"max_number_of_results": 10, "current_page": 1,
                                       "sort_operation": {"property": "USERNAME", "operation": "ASC"},
                                       "criteria": [{"property": "QUERY", "value": "bob", "operation": "EQUAL"}]}, 200),
    ("post", f"{V1}/certificate/999999/finalize", {}, 404),  # no such approval request
    ("get", "/api/v1/certificates/{fingerprint}/", None, 200),
    ("get", "/api/v1/cas/TestRoot/certificates/{serial}/", None, 200),
    ("get", "/api/v1/cas/TestRoot/certificates/ffff/", None, 404),
    ("get", "/api/v1/approvals/", None, 200),
    ("get", "/api/v1/approvals/999999/", None, 404),
]


@DB
def test_each_carried_read_answers_at_the_ra_as_at_the_ca(ra_node, settings, carrier, entity_factory, root_ca,
                                                          csr_factory, actor, tracebacks):
    """One set-up for the whole table (each transactional test pays a flush)."""
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    entity_factory("bob")
    csr, _ = csr_factory("CN=bob,O=Test,C=SE")
    bob = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                csr=csr, username="bob")).row
    create_crl(actor, root_ca)
    client = make_client("apiadmin", ["/"])
    dn = quote(root_ca.subject_dn, safe="")
    fill = {"dn": dn, "serial": bob.serial, "fingerprint": bob.fingerprint_sha256}
    for method, path, body, status in READS:
        url = path.format(**fill)
        at_ra, at_ca = _same_at_both(settings, client, method, url, body)
        assert (at_ra.status_code, at_ra["Content-Type"], _content(at_ra)) == (
            at_ca.status_code, at_ca["Content-Type"], _content(at_ca)), (method, path)
        assert at_ca.status_code == status, (method, path, at_ca.content[:300])
    carried = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED")
    assert list(carried.order_by("sequence").values_list("details__requester", flat=True)) == ["apiadmin"] * len(READS)
    # Every read-only route the RA carries is in the table (a route added to REST_ROUTES gets a row here).
    gets = {name for _, name, methods in _routes() if name in REST_ROUTES and methods == {"get"}}
    assert gets - {_route(path.format(**fill)) for _, path, _, _ in READS} == set()
    assert not tracebacks.records


@DB
def test_ca_operations_and_end_entity_writes_through_the_ra(ra_node, settings, carrier, entity_factory, root_ca,
                                                            csr_factory, actor):
    """createcrl (the CA signs it), certificaterequest for a registered end entity, edit, and revoke of an end
    entity's certificates, each made at the RA and done on the CA as the caller."""
    from pki.crl import latest_crl

    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    client = make_client("apiadmin", ["/"])
    dn = quote(root_ca.subject_dn, safe="")
    before = CRL.objects.filter(ca=root_ca).count()
    r = client.post(f"{V1}/ca/{dn}/createcrl?deltacrl=true")
    assert r.status_code == 200, r.content
    full = latest_crl(root_ca, delta=False)
    assert r.json()["all_success"] is True and r.json()["latest_crl_version"] == full.crl_number
    assert CRL.objects.filter(ca=root_ca).count() == before + 2
    entity_factory("erin", subject_dn="CN=erin,O=Test,C=SE")
    csr, _ = csr_factory("CN=whatever")
    r = client.post(f"{V1}/certificate/certificaterequest", {
        "certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": "erin", "password": "foo123",
        "include_chain": True}, format="json")
    assert r.status_code == 201, r.content
    assert Certificate.objects.filter(username="erin").count() == 1
    r = client.post(f"{V1}/endentity/edit", {"username": "erin", "subject_dn": "CN=erin,O=Edited,C=SE",
                                             "ca_name": "TestRoot", "certificate_profile_name": "ENDUSER",
                                             "end_entity_profile_name": "TestEEP", "token": "USERGENERATED"},
                    format="json")
    assert r.status_code == 200, r.content
    r = client.put(f"{V1}/endentity/erin/revoke", {"reason_code": 1, "delete": False}, format="json")
    assert r.status_code == 200, r.content
    assert Certificate.objects.get(username="erin").revocation_reason == 1
    statuses = sorted(AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__requester="apiadmin")
                      .values_list("details__status", flat=True))
    assert statuses == [200, 200, 200, 201]
    assert AuditEvent.objects.filter(event_type="CRL_CREATION", actor="apiadmin").exists()


@DB
def test_an_approval_through_the_ra(ra_node, settings, carrier, actor, root_ca, ee_profile, csr_factory):
    """The enrollment that needs approval gets the CA's 202 at the RA; an approver approves at the RA; the
    requester finalizes at the RA and gets the certificate, once."""
    from pki.models.approvals import ApprovalAction, ApprovalRequest
    from pki.services import approvals

    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    profile = approvals.save_profile(actor, name="One", approvals_required=1, request_expiration=3600)
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=root_ca)
    requester = make_client("operator", ["/ra_functionality/create_end_entity", "/ra_functionality/edit_end_entity",
                                         "/ra_functionality/view_end_entity", "/ca_functionality/create_certificate",
                                         "/endentityprofilesrules", f"/ca/{root_ca.pk}"])
    approver = make_client("approver", ["/ra_functionality/approve_end_entity", f"/ca/{root_ca.pk}"])
    csr, _ = csr_factory("CN=Waiting Device,O=Test")
    body = {"certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": "device1",
            "password": "foo123", "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot"}
    r = requester.post(f"{V1}/certificate/pkcs10enroll", body, format="json")
    assert r.status_code == 202 and r.json()["error_code"] == 202, r.content
    request_id = r.json()["request_id"]
    assert ApprovalRequest.objects.get(pk=request_id).requested_by == "operator"
    assert not Certificate.objects.filter(username="device1").exists()
    assert requester.post(f"{V1}/certificate/{request_id}/finalize", {}, format="json").status_code == 202
    listed = approver.get("/api/v1/approvals/")
    assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [request_id]
    assert requester.post(f"/api/v1/approvals/{request_id}/approve", {}, format="json").status_code in (403, 404)
    r = approver.post(f"/api/v1/approvals/{request_id}/approve", {"comment": "known device"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.content
    assert r.json()["approvals"][0]["admin"] == "approver"
    r = requester.post(f"{V1}/certificate/{request_id}/finalize", {"response_format": "DER"}, format="json")
    assert r.status_code == 201, r.content
    assert Certificate.objects.filter(username="device1").count() == 1
    carried = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED")
    assert set(carried.values_list("details__requester", flat=True)) == {"operator", "approver"}


# REST routes of the CA an RA does not carry: refused at the RA (404), nothing queued.
NOT_CARRIED = [
    ("get", f"{V1}/ca_management/status"),
    ("put", f"{V1}/ca_management/TestRoot/activate"),
    ("put", f"{V1}/ca_management/TestRoot/deactivate"),
    ("post", f"{V1}/ca/CN%3DTestRoot/importcrl"),
]


@pytest.mark.parametrize(("method", "path"), NOT_CARRIED)
@pytest.mark.django_db
def test_a_route_not_carried_is_refused_at_the_ra_before_anything_is_queued(ra_node, method, path, tracebacks):
    client = make_client("apiadmin", ["/"])
    r = getattr(client, method)(path)
    assert r.status_code == 404, r.content
    assert r.json() == {"error_code": 404, "error_message": f"{path.replace('%3D', '=')} is not available at an RA "
                                                            "node: call the CA for it."}
    assert not PeerWorkItem.objects.exists()
    # ... and the CA would not run it for an RA either.
    assert run_rest({"method": method.upper(), "path": path.replace("%3D", "="), "body": ""})["status"] == 404
    assert not tracebacks.records


@pytest.mark.django_db
def test_the_ras_own_administration_is_answered_at_the_ra(ra_node):
    """Its roles (those admit the CA's connector) and its crypto tokens are the RA's own: answered here."""
    client = make_client("raadmin", ["/"])
    r = client.get(f"{V1}/roles")
    assert r.status_code == 200 and "role-raadmin" in json.dumps(r.json())
    assert client.get(f"{V1}/cryptotoken/status").status_code == 200
    assert not PeerWorkItem.objects.exists()


def test_every_route_named_exists_and_every_rest_route_is_decided():
    """No stale or misspelt name in the tables; every REST route of the URL conf is carried, local or refused,
    and only the two tables' routes are not refused."""
    routes = list(_routes())
    names = {name for _, name, _ in routes}
    assert REST_ROUTES <= names and RA_LOCAL_REST_ROUTES <= names and not REST_ROUTES & RA_LOCAL_REST_ROUTES
    for path, name, _ in routes:
        if not path.startswith(REST_PREFIXES):
            continue
        expected = "carry" if name in REST_ROUTES else "local" if name in RA_LOCAL_REST_ROUTES else "refuse"
        assert rest_route_at_ra(path, name) == expected, path
    assert {"refuse"} == {rest_route_at_ra(p, n) for p, n, _ in routes if n in {"api-ca-import-crl",
                                                                                 "api-ca-management-activate"}}
    assert rest_route_at_ra("/ra/", "ra-home") == "local"  # not REST: the portal decides (peers.portal_ra)


# ---- OAuth bearer tokens through the RA, checked by the CA against its trusted providers -------------------------

@pytest.fixture
def oauth(db, settings):
    """The test OP's provider trusted by the CA, its admin group a role with every rule; a second OP the CA does
    not trust (as if only the RA knew it: the RA checks no token)."""
    from django.core.cache import cache

    from pki.auth.oauth import clear_memos
    from tests.pki.test_oauth_bearer import API_AUDIENCE, admin_role, make_provider
    from tests.support.oidc_op.op import start_op

    op, untrusted = start_op("bearer-op1"), start_op("bearer-op2")
    settings.PKI_OAUTH_JWKS_REFRESH_INTERVAL = 30
    cache.clear()
    clear_memos()
    provider = make_provider(op, "Test OP")
    admin_role(provider, "pki-admins")
    clients = {"admin": op.register(x_groups=["pki-admins"]), "norole": op.register(x_groups=["mail-users"]),
               "untrusted": untrusted.register(x_groups=["pki-admins"])}
    yield {"op": op, "untrusted": untrusted, "clients": clients, "audience": API_AUDIENCE}
    clear_memos()


@DB
def test_an_oauth_bearer_token_through_the_ra(ra_node, settings, carrier, oauth, entity_factory, root_ca,
                                              csr_factory, tracebacks):
    from cryptography import x509

    from tests.pki.test_oauth_bearer import UNIFORM_BODY, UNIFORM_CHALLENGE, claims

    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    ra_node.PKI_AUTH_FAILURE_LIMIT = 100  # the refusals below are counted at the RA and at the CA
    op, audience = oauth["op"], oauth["audience"]
    entity_factory("alice", subject_dn="CN=alice,O=Test,C=SE")
    csr, _ = csr_factory("CN=alice")
    enroll = {"certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": "alice",
              "password": "foo123", "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
              "certificate_authority_name": "TestRoot"}
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {op.client_token(oauth['clients']['admin'], resource=audience)}")
    r = client.post(f"{V1}/certificate/pkcs10enroll", enroll, format="json")
    assert r.status_code == 201, r.content
    cert = x509.load_der_x509_certificate(base64.b64decode(r.json()["certificate"]))
    row = Certificate.objects.get(serial=format(cert.serial_number, "x"))
    search = {"max_number_of_results": 10, "criteria": [{"property": "QUERY", "value": "alice", "operation": "LIKE"}]}
    at_ra, at_ca = _same_at_both(settings, client, "post", f"{V1}/certificate/search", search)
    assert at_ra.status_code == 200 and at_ra.json() == at_ca.json() and len(at_ra.json()["certificates"]) == 1
    # The CA authorized the OAuth user by its role member; the audit log names the user and the peer.
    events = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED").order_by("sequence")
    enrolled = events.first()
    oauth_user = enrolled.details["requester"]
    assert enrolled.actor == "peer:dmz-ra" and enrolled.details["status"] == 201
    # <provider label>:<the token's user claim>: the client_credentials token names the OP's client.
    assert enrolled.details["presented"] == "Bearer authorization"
    assert oauth_user == f"Test OP:{oauth['clients']['admin']['client_id']}"
    assert AuditEvent.objects.get(event_type="CERT_CREATION", object_id=row.serial).actor == oauth_user
    assert set(events.values_list("details__requester", flat=True)) == {oauth_user}
    # A good token whose claims match no role member: authenticated by the CA, not authorized (its 403).
    norole = APIClient(HTTP_AUTHORIZATION=f"Bearer {op.client_token(oauth['clients']['norole'], resource=audience)}")
    at_ra, at_ca = _same_at_both(settings, norole, "post", f"{V1}/certificate/pkcs10enroll", enroll)
    assert at_ra.status_code == 403 and at_ra.json() == at_ca.json()
    assert events.filter(details__status=403).get().details["requester"] == (
        f"Test OP:{oauth['clients']['norole']['client_id']}")
    # Refused tokens: the same uniform 401 at the RA as at the CA, nothing done.
    refused = {
        "expired": op.mint(claims(op, iat=int(time.time()) - 900, exp=int(time.time()) - 120)),
        "wrong audience": op.client_token(oauth["clients"]["admin"], resource="https://mail.example/"),
        "a provider the CA does not trust": oauth["untrusted"].client_token(oauth["clients"]["untrusted"],
                                                                           resource=audience),
    }
    for case, token in refused.items():
        bad = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
        at_ra, at_ca = _same_at_both(settings, bad, "post", f"{V1}/certificate/search", search)
        assert (at_ra.status_code, at_ra["WWW-Authenticate"], at_ra.json()) == (
            401, UNIFORM_CHALLENGE, UNIFORM_BODY), case
        assert (at_ca.status_code, at_ca["WWW-Authenticate"], at_ca.json()) == (
            401, UNIFORM_CHALLENGE, UNIFORM_BODY), case
    assert AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__status=401).count() == len(refused)
    assert Certificate.objects.filter(username="alice").count() == 1
    assert not tracebacks.records


@pytest.mark.django_db
def test_an_answer_too_large_to_carry_is_a_clear_502(monkeypatch, settings, root_ca, actor, tracebacks):
    """The RA takes the connector's answers as JSON bodies within Django's upload limit; an answer over it would
    be refused there (413) with every other answer posted beside it. The CA refuses such an answer itself, with
    the caller still named for the audit log; one answer under the cap always fits the RA's limit."""
    from peers import carried_http
    from pki.crl import create_crl

    assert carried_http.MAX_ANSWER_BODY * 4 // 3 + 64 * 1024 < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    create_crl(actor, root_ca)
    make_client("apiadmin", ["/"])
    payload = {"method": "GET", "path": f"{V1}/ca/{root_ca.subject_dn}/getLatestCrl", "body": "",
               "identity": {"authorization": "Basic " + base64.b64encode(b"apiadmin:pw-apiadmin").decode()}}
    full = run_rest(payload)
    assert full["status"] == 200 and full["actor"] == "apiadmin"
    monkeypatch.setattr(carried_http, "MAX_ANSWER_BODY", len(base64.b64decode(full["body"])) - 1)
    refused = run_rest(payload)
    assert (refused["status"], refused["actor"]) == (502, "apiadmin")
    body = json.loads(base64.b64decode(refused["body"]))
    assert body["error_code"] == 502 and "larger than an RA carries" in body["error_message"]
    assert not tracebacks.records


class _RaAnswerEndpoint:
    """The RA's POST answer as the connector's answer poster meets it: a JSON body over Django's upload limit is
    refused (413, as peers.ra_views answers RequestDataTooBig), else every answer is accepted."""

    def __init__(self, limit: int):
        self.limit, self.posted, self.refused = limit, [], 0

    def call(self, method: str, path: str, body: dict) -> dict:
        from peers.transport import PeerError

        if len(json.dumps(body)) > self.limit:
            self.refused += 1
            raise PeerError("The request body is too large.", status=413)
        self.posted += [a["id"] for a in body["answers"]]
        return {"outcomes": ["accepted"] * len(body["answers"])}

    def close(self) -> None:
        pass


@DB
def test_large_answers_are_posted_in_posts_the_ra_takes(settings, actor, connector_binding, peer_role, peer_ca):
    """The attack: two callers with valid credentials ask for answers just under the carried cap at once (a big
    CRL, a full search page); the connector put every answer ready at that moment into one post, the RA refused
    it (413) and the small answers beside them were lost with it."""
    import threading

    from peers import carried_http, connector

    peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/rest": True})
    row = peers.add_connector(actor, name="dmz-ra", url="https://127.0.0.1:9", binding="ra-link")
    big = base64.b64encode(b"x" * carried_http.MAX_ANSWER_BODY).decode()
    ra = _RaAnswerEndpoint(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    runner = type("Runner", (), {"stop": threading.Event()})()
    poster = connector._Answers.__new__(connector._Answers)  # the poster, its thread started once all are queued
    poster.runner, poster.connector, poster.client = runner, row, ra
    poster.pending = connector.SimpleQueue()
    poster._carried, poster._counting = 0, threading.Lock()
    for n in range(6):
        body = big if n in (1, 3) else base64.b64encode(b"{}").decode()
        poster.put({"id": n, "key": f"k{n}", "kind": "rest.call"}, {"status": 200, "body": body})
    poster.thread = threading.Thread(target=poster._run, daemon=True)
    poster.thread.start()
    poster.close()
    assert sorted(ra.posted) == list(range(6)) and ra.refused == 0
