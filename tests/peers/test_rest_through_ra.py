"""EJBCA's REST API at an RA node: each carried call is queued at the RA, leased by a connector (a thread here,
the real loop in the two-node test), run on the CA by the CA's own view as the caller the RA authenticated, and
answered with the CA's own JSON. One database plays both nodes; the node role is switched per request."""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from django.db import connection
from rest_framework.test import APIClient

from endentities.models import EndEntity
from peers import carry, queue
from peers import services as peers
from peers.carried_http import run_rest
from peers.models import CarriedRequest, PeerWorkItem
from pki.models import AuditEvent, Certificate
from tests.endentities.entities_support import *  # noqa: F403
from tests.pki.test_api_auth import V1, fast_password_hashing, make_client  # noqa: F401

from .conftest import carrying, cert_headers

# Held requests wait on another connection for the carrier thread's answer: committed data, not a test transaction.
DB = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connector(actor, connector_binding, peer_role, peer_ca):
    """The CA's connector, whose certificate may carry REST calls (and nothing else)."""
    peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/rest": True})
    return peers.add_connector(actor, name="dmz-ra", url="https://127.0.0.1:9", binding="ra-link")


def _carry_leased(connector, item):
    return carry.carry(connector, {"id": item.pk, "key": item.idempotency_key, "kind": item.kind,
                                   "payload": item.payload, "requester": item.requester})


@pytest.fixture
def carrier(connector):
    """A connector's loop in a thread: lease, carry on the CA, answer."""
    with carrying(connector, forget=True):
        yield connector


@pytest.fixture
def operator_cert(actor, peer_ca, csr_factory):
    """A client certificate the CA issued (and holds) to an RA operator."""
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    csr, _ = csr_factory("CN=ra-operator,O=Test")
    return issue(IssuanceRequest(ca=peer_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr, username="ra-operator")).row.certificate


def _csr_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.PEM).decode()


def _enroll_body(username: str, cn: str) -> dict:
    return {"certificate_request": _csr_pem(cn), "username": username, "password": "foo123",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "certificate_authority_name": "TestRoot", "include_chain": True}


@DB
def test_pkcs10enroll_by_client_certificate_runs_on_the_ca_as_the_operator(
        ra_node, carrier, entity_factory, peer_role, peer_ca, operator_cert, tracebacks):
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    peer_role(peer_ca, operator_cert, {"/": True})
    entity_factory("alice", subject_dn="CN=alice,O=Test,C=SE")
    # Behind the RA's TLS proxy: the caller's address is the one the proxy forwarded, not the proxy's.
    client = APIClient(HTTP_X_FORWARDED_FOR="192.0.2.44", **cert_headers(operator_cert))
    r = client.post(f"{V1}/certificate/pkcs10enroll", _enroll_body("alice", "alice"), format="json")
    assert r.status_code == 201, r.content
    cert = x509.load_der_x509_certificate(base64.b64decode(r.json()["certificate"]))
    row = Certificate.objects.get(serial=format(cert.serial_number, "x"))
    assert row.username == "alice"
    serial = format(operator_cert.serial_number, "x")
    # Both identities in the CA's audit log: the connector carried it, the operator (as the CA knows them) did it.
    event = AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED")
    assert event.actor == "peer:dmz-ra" and event.outcome == "SUCCESS" and event.details["status"] == 201
    assert event.details["requester"].startswith(f"ra-operator (certificate {serial}")
    assert event.details["presented"].startswith(f"client certificate {serial}")
    assert event.details["client_address"] == "192.0.2.44"
    creation = AuditEvent.objects.get(event_type="CERT_CREATION", object_id=row.serial)
    assert creation.actor == event.details["requester"]
    # The RA keeps no copy of the caller's credential.
    assert "identity" not in PeerWorkItem.objects.get().payload
    assert not tracebacks.records


def _both(settings, client, method: str, path: str, body: dict | None = None) -> tuple:
    """The same call at the RA (carried) and straight at the CA."""
    call = getattr(client, method)
    kw = {"format": "json"} if body is not None else {}
    args = (path, body) if body is not None else (path,)
    at_ra = call(*args, **kw)
    settings.PKI_NODE_ROLE = "ca"
    try:
        at_ca = call(*args, **kw)
    finally:
        settings.PKI_NODE_ROLE = "ra"
    return at_ra, at_ca


READS = [  # (method, path, body): each answered at the RA exactly as at the CA
    ("post", "/endentity/search", {"max_number_of_results": 10,
                                   "criteria": [{"property": "STATUS", "value": "NEW", "operation": "EQUAL"}]}),
    ("post", "/certificate/search", {"max_number_of_results": 10,
                                     "criteria": [{"property": "QUERY", "value": "bob", "operation": "LIKE"}]}),
    ("post", "/endentity/search", {"criteria": []}),  # the CA's own 400
    ("get", "/certificate/{dn}/{serial}/revocationstatus", None),
    ("get", "/certificate/{dn}/ffff/revocationstatus", None),  # the CA's own 404
]


@DB
def test_reads_answer_the_same_json_as_the_ca(ra_node, settings, carrier, entity_factory, root_ca, csr_factory,
                                              actor):
    """One set-up for the table (a carrier thread needs committed data, and each such test pays a flush)."""
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    entity_factory("alice")
    entity_factory("bob")
    csr, _ = csr_factory("CN=bob,O=Test,C=SE")
    row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                csr=csr, username="bob")).row
    client = make_client("apiadmin", ["/"])
    for method, path, body in READS:
        url = V1 + path.format(dn=quote(root_ca.subject_dn, safe=""), serial=row.serial)
        at_ra, at_ca = _both(settings, client, method, url, body)
        assert (at_ra.status_code, at_ra["Content-Type"], at_ra.json()) == (
            at_ca.status_code, at_ca["Content-Type"], at_ca.json()), (method, path, body)
    assert AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__requester="apiadmin").count() == len(
        READS)


@DB
def test_writes_through_the_ra(ra_node, carrier, entity_factory, root_ca):
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    client = make_client("apiadmin", ["/"])
    add = {"username": "carol", "password": "foo123", "subject_dn": "CN=carol,O=Test,C=SE", "ca_name": "TestRoot",
           "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP", "token": "P12"}
    assert client.post(f"{V1}/endentity", add, format="json").status_code == 200
    r = client.post(f"{V1}/certificate/enrollkeystore", {"username": "carol", "password": "foo123",
                                                          "key_alg": "EC", "key_spec": "P-256"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["response_format"] == "PKCS12"
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(r.json()["certificate"]), b"foo123")
    assert cert.public_key() == key.public_key()
    serial = Certificate.objects.get(username="carol").serial
    revoke = client.put(f"{V1}/certificate/{quote(root_ca.subject_dn, safe='')}/{serial}/revoke?reason=KEY_COMPROMISE")
    assert revoke.status_code == 200, revoke.content
    assert revoke.json()["revocation_reason"] == "KEY_COMPROMISE"
    entity_factory("dave")
    r = client.post(f"{V1}/endentity/dave/setstatus", {"password": "bar456", "token": "USERGENERATED",
                                                       "status": "NEW"}, format="json")
    assert r.status_code == 200, r.content
    assert client.delete(f"{V1}/endentity/dave").status_code == 200
    assert not EndEntity.objects.filter(username="dave").exists()
    kinds = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED").values_list("details__status", flat=True)
    assert sorted(kinds) == [200, 200, 200, 200, 201]
    # Neither node keeps the keystore, the enrollment codes or the credentials once the caller has its answer.
    deadline = time.monotonic() + 10
    while CarriedRequest.objects.filter(result__has_key="body").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert CarriedRequest.objects.count() == 5 and not CarriedRequest.objects.filter(result__has_key="body").exists()
    for item in PeerWorkItem.objects.all():
        assert not {"body", "identity"} & set(item.payload) and "body" not in item.result, item.kind


@DB
def test_a_requester_without_the_right_is_refused_on_the_ca(ra_node, carrier, entity_factory, root_ca):
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    entity_factory("alice")
    weak = make_client("viewer", ["/ra_functionality/view_end_entity"])
    r = weak.post(f"{V1}/certificate/pkcs10enroll", _enroll_body("alice", "alice"), format="json")
    assert r.status_code == 403 and set(r.json()) == {"error_code", "error_message"}
    assert not Certificate.objects.filter(username="alice").exists()
    event = AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED")
    assert (event.details["requester"], event.details["status"]) == ("viewer", 403)


def _carried_enroll_by_apiadmin(username: str) -> dict:
    """A carried REST call's payload as the RA queues it: pkcs10enroll by ``apiadmin`` with HTTP Basic."""
    body = json.dumps(_enroll_body(username, username)).encode()
    return {"method": "POST", "path": f"{V1}/certificate/pkcs10enroll", "query": "",
            "content_type": "application/json", "body": base64.b64encode(body).decode(),
            "identity": {"authorization": "Basic " + base64.b64encode(b"apiadmin:pw-apiadmin").decode()}}


@pytest.mark.django_db
def test_a_connector_without_the_rest_rule_may_not_carry(ra_node, actor, connector_binding, peer_role, peer_ca,
                                                         entity_factory):
    peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/scep": True})
    connector = peers.add_connector(actor, name="scep-only", url="https://127.0.0.1:9", binding="ra-link")
    entity_factory("alice")
    payload = _carried_enroll_by_apiadmin("alice")
    make_client("apiadmin", ["/"])
    result = carry.carry(connector, {"id": 1, "key": "k1", "kind": "rest.call", "payload": payload})
    assert result["status"] == 403
    assert json.loads(base64.b64decode(result["body"]))["error_message"] == "The CA refused to carry this request."
    assert not Certificate.objects.filter(username="alice").exists() and not CarriedRequest.objects.exists()
    assert AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED").outcome == "FAILURE"


@pytest.mark.django_db
def test_a_carried_rest_answer_goes_only_after_its_record(ra_node, connector, entity_factory):
    """Unlike a SCEP answer, a REST answer (it may hold a keystore, dropped from the record once the RA has it) is
    handed over only when recorded; what the call changed names the connector and the RA's item."""
    entity_factory("alice")
    make_client("apiadmin", ["/"])
    payload = _carried_enroll_by_apiadmin("alice")
    handed: list = []
    result = carry.carry(connector, {"id": 7, "key": "k7", "kind": "rest.call", "payload": payload},
                         answer_ready=handed.append)
    assert result["status"] == 201 and handed == []
    assert CarriedRequest.objects.get(idempotency_key="k7").result == result
    assert Certificate.objects.filter(username="alice").count() == 1
    (event,) = AuditEvent.objects.filter(event_type="CERT_CREATION", details__carried_by="peer:dmz-ra")
    assert (event.actor, event.details["ra_work_item"]) == ("apiadmin", 7)


@DB
def test_a_lease_handed_out_again_is_answered_from_the_record(ra_node, connector, entity_factory):
    """The connector died after the run, before the RA got the answer: the item comes back with the same key and
    the CA answers it from its record; one certificate."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    entity_factory("alice")
    client = make_client("apiadmin", ["/"])
    out: dict = {}

    def caller():
        try:
            out["r"] = client.post(f"{V1}/certificate/pkcs10enroll", _enroll_body("alice", "alice"), format="json")
        finally:
            connection.close()

    thread = threading.Thread(target=caller)
    thread.start()
    (item,) = queue.lease("connector-1", wait_seconds=10)
    first = _carry_leased(connector, item)  # ... and connector-1 dies here
    PeerWorkItem.objects.filter(pk=item.pk).update(lease_until=item.lease_until.replace(year=2000))
    (again,) = queue.lease("connector-2", wait_seconds=1)
    assert (again.pk, again.idempotency_key, again.attempts) == (item.pk, item.idempotency_key, 2)
    second = _carry_leased(connector, again)
    assert second == first
    assert queue.answer("connector-2", again.pk, again.idempotency_key, second) == "accepted"
    thread.join(20)
    assert out["r"].status_code == 201
    assert Certificate.objects.filter(username="alice").count() == 1
    assert AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED").count() == 1


@pytest.mark.django_db
def test_no_answer_in_time_is_503_with_retry_after(ra_node, entity_factory):
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 0.3
    client = make_client("apiadmin", ["/"])
    r = client.post(f"{V1}/endentity/search", {"max_number_of_results": 1, "criteria": [
        {"property": "STATUS", "value": "NEW", "operation": "EQUAL"}]}, format="json")
    assert r.status_code == 503 and r["Retry-After"] and r.json()["error_code"] == 503
    item = PeerWorkItem.objects.get()
    assert item.status == "expired" and "identity" not in item.payload


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),  # nobody to forward
    ({"HTTP_ORIGIN": "https://evil.example", "HTTP_SEC_FETCH_SITE": "cross-site"}, 403),  # REST boundary first
])
@pytest.mark.django_db
def test_refused_at_the_ra_before_anything_is_queued(ra_node, peer_ca, make_cert, headers, status):
    client = APIClient(**headers, **(cert_headers(make_cert(peer_ca, "op")) if headers else {}))
    r = client.post(f"{V1}/endentity/search", {"criteria": []}, format="json")
    assert r.status_code == status and r.json()["error_code"] == status
    assert not PeerWorkItem.objects.exists()


@pytest.mark.parametrize(("payload", "status"), [
    ({"method": "POST", "path": "/admin/"}, 400),
    ({"method": "PATCH", "path": f"{V1}/endentity/search"}, 400),
    ({"method": "GET", "path": f"{V1}/ca_management/status"}, 404),  # a real route, not carried
    ({"method": "GET", "path": f"{V1}/nothing/here"}, 404),
    ({"method": "POST", "path": f"{V1}/endentity/search", "body": "!!"}, 400),
    ({"method": "POST", "path": f"{V1}/endentity/search", "identity": {"certificate": "junk"}}, 400),
    ({"method": "POST", "path": f"{V1}/endentity/search", "body": ""}, 401),  # no identity: the CA's own 401
])
@pytest.mark.django_db
def test_bad_carried_calls_get_a_json_refusal(payload, status, tracebacks):
    result = run_rest(payload)
    assert result["status"] == status
    assert json.loads(base64.b64decode(result["body"]))["error_code"] == status
    assert not tracebacks.records


OPERATOR_SETUP = """
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateAuthority, CertificateProfile, Role
from pki.services import roles
from pki.x509.dn import parse_dn

a = Actor.system_actor("setup")
out = Path(%(out)r)
ca = CertificateAuthority.objects.get(name="ScepCA")
roles.set_rules(a, Role.objects.get(name="RA connectors"), {"/peer/carry/scep": True, "/peer/carry/rest": True})
key = ec.generate_private_key(ec.SECP256R1())
csr = (x509.CertificateSigningRequestBuilder().subject_name(parse_dn("CN=rest-operator,O=Test"))
       .sign(key, hashes.SHA256()))
row = issue(IssuanceRequest(ca=ca, actor=a, profile=CertificateProfile.objects.get(name="ENDUSER"), csr=csr,
                            username="rest-operator")).row
(out / "operator.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
(out / "operator.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
role = roles.create_role(a, "REST operators")
roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, row.serial, issuer_ca=ca))
roles.set_rules(a, role, {"/": True})
"""


OAUTH_SETUP = """
from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.models import AccessRule, Role, RoleMember
from pki.services import oauth

provider = oauth.save_provider(Actor.system_actor("setup"), {"label": %(label)r, "issuer": %(issuer)r,
                                                             "audience": %(audience)r})
role = Role.objects.create(name=%(label)r + " admins")
AccessRule.objects.create(role=role, resource="/")
RoleMember.objects.create(role=role, match_type=MemberMatch.OAUTH_CLAIM, provider=provider, claim="groups",
                          match_value="pki-admins")
"""


@pytest.fixture(scope="module")
def live_pair(tmp_path_factory):
    """The pair, the REST operator's certificate, and two OAuth providers: the CA trusts one ("CA OP"), the RA
    only the other ("RA OP"); each gives the group pki-admins every rule on its node (one shell per node)."""
    from tests.pki.test_oauth_bearer import API_AUDIENCE
    from tests.support.oidc_op.op import start_op

    from .live import PeerPair

    with PeerPair(tmp_path_factory.mktemp("rest-ra"), request_timeout=15, lease=4) as pair:
        pair.oauth = {"ca": start_op("bearer-op1"), "ra": start_op("bearer-op2")}
        pair.ca.manage("shell", "-c", OPERATOR_SETUP % {"out": str(pair.out)} + OAUTH_SETUP % {
            "label": "CA OP", "issuer": pair.oauth["ca"].issuer, "audience": API_AUDIENCE})
        pair.ra.manage("shell", "-c", OAUTH_SETUP % {"label": "RA OP", "issuer": pair.oauth["ra"].issuer,
                                                     "audience": API_AUDIENCE})
        pair.start_connector()
        pair.wait_connected()
        yield pair


@pytest.mark.multiprocess
@pytest.mark.xdist_group("peers-live")
def test_pkcs10enroll_at_a_real_ra_with_a_client_certificate(live_pair):
    """Two processes, two databases: a REST client with its certificate at the RA's TLS listener; the CA's connector
    carries the call; the certificate is issued and stored on the CA only."""
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(live_pair.out / "ca.pem"))
    ctx.load_cert_chain(live_pair.out / "operator.pem", live_pair.out / "operator.key")
    body = {"certificate_request": _csr_pem("rest-device"), "username": "rest-device", "password": "foo123",
            "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "EMPTY",
            "certificate_authority_name": "ScepCA", "response_format": "PEM"}
    request = urllib.request.Request(f"{live_pair.proxy_url}{V1}/certificate/pkcs10enroll",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=60) as r:
            status, answer = r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{e.code} {e.read()!r}\n{live_pair.logs('ra')}\n{live_pair.logs('connector')}") from None
    assert status == 201, answer
    cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
    serial = format(cert.serial_number, "x")
    assert live_pair.ca.query("SELECT username FROM pki_certificate WHERE serial = %s", (serial,)) == [("rest-device",)]
    assert live_pair.ra.query("SELECT count(*) FROM pki_certificate") == [(0,)]
    carried = live_pair.ca.query("SELECT actor, details->>'requester', details->>'status' FROM pki_auditevent "
                                 "WHERE event_type = 'PEER_REQUEST_CARRIED' AND details->>'kind' = 'rest.call'")
    assert len(carried) == 1 and carried[0][0] == "peer:dmz-ra" and carried[0][2] == "201"
    assert carried[0][1].startswith("rest-operator (certificate ")
    assert live_pair.ca.query("SELECT actor FROM pki_auditevent WHERE event_type = 'CERT_CREATION' AND object_id = %s",
                              (serial,)) == [(carried[0][1],)]




@pytest.mark.multiprocess
@pytest.mark.xdist_group("peers-live")
def test_an_oauth_bearer_token_at_a_real_ra_is_checked_by_the_ca_alone(live_pair):
    """Two processes, two databases, two OAuth providers: the CA trusts one, the RA only knows the other (with an
    all-powerful role there). A token of the CA's provider enrolls through the RA; a token only the RA's provider
    vouches for is refused by the CA with its uniform 401, as is an expired one: the RA checks no token."""
    import urllib.error
    import urllib.request

    from tests.pki.test_oauth_bearer import API_AUDIENCE, UNIFORM_BODY, UNIFORM_CHALLENGE, claims

    ca_op, ra_op = live_pair.oauth["ca"], live_pair.oauth["ra"]
    ca_client = ca_op.register(x_groups=["pki-admins"])

    def enroll(token: str, username: str) -> tuple[int, dict, str]:
        body = {"certificate_request": _csr_pem(username), "username": username, "password": "foo123",
                "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "EMPTY",
                "certificate_authority_name": "ScepCA", "response_format": "PEM"}
        # The RA's web server itself (behind its TLS proxy's address): a bearer caller has no client certificate.
        request = urllib.request.Request(f"{live_pair.ra_base}{V1}/certificate/pkcs10enroll",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Accept": "application/json",
                                                  "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, json.loads(r.read()), ""
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), e.headers.get("WWW-Authenticate", "")

    status, answer, _ = enroll(ca_op.client_token(ca_client, resource=API_AUDIENCE), "oauth-device")
    assert status == 201, f"{answer}\n{live_pair.logs('ra')}\n{live_pair.logs('connector')}"
    serial = format(x509.load_pem_x509_certificate(answer["certificate"].encode()).serial_number, "x")
    oauth_user = f"CA OP:{ca_client['client_id']}"
    assert live_pair.ca.query("SELECT actor FROM pki_auditevent WHERE event_type = 'CERT_CREATION' AND object_id = %s",
                              (serial,)) == [(oauth_user,)]
    refused = {
        "a provider only the RA knows": ra_op.client_token(ra_op.register(x_groups=["pki-admins"]),
                                                           resource=API_AUDIENCE),
        "expired": ca_op.mint(claims(ca_op, iat=int(time.time()) - 900, exp=int(time.time()) - 120)),
    }
    for case, token in refused.items():
        assert enroll(token, f"refused-{len(case)}") == (401, UNIFORM_BODY, UNIFORM_CHALLENGE), case
    carried = live_pair.ca.query("SELECT actor, details->>'requester', details->>'status' FROM pki_auditevent WHERE "
                                 "event_type = 'PEER_REQUEST_CARRIED' AND details->>'ra_requester' = "
                                 "'Bearer authorization' ORDER BY sequence")
    assert carried == [("peer:dmz-ra", oauth_user, "201")] + [("peer:dmz-ra", "Bearer authorization", "401")] * 2
    assert live_pair.ca.query("SELECT count(*) FROM pki_certificate WHERE username LIKE 'refused-%%'") == [(0,)]


def _identity_payload(cert: x509.Certificate) -> dict:
    body = json.dumps({"max_number_of_results": 1, "criteria": [
        {"property": "STATUS", "value": "NEW", "operation": "EQUAL"}]}).encode()
    return {"method": "POST", "path": f"{V1}/endentity/search", "content_type": "application/json",
            "body": base64.b64encode(body).decode(),
            "identity": {"certificate": cert.public_bytes(Encoding.PEM).decode()}}


@pytest.mark.django_db
def test_the_ca_refuses_a_revoked_or_foreign_certificate_the_ra_forwarded(actor, peer_role, peer_ca, operator_cert,
                                                                          tracebacks):
    """An RA vouches for the TLS handshake only: the CA still checks the certificate itself."""
    from pki.revocation import revoke

    from .conftest import foreign_cert

    peer_role(peer_ca, operator_cert, {"/": True})
    assert run_rest(_identity_payload(operator_cert))["status"] == 200
    assert run_rest(_identity_payload(foreign_cert("ra-operator")))["status"] == 401  # not one of the CA's
    revoke(actor, Certificate.objects.get(serial=format(operator_cert.serial_number, "x")), 1)
    refused = run_rest(_identity_payload(operator_cert))
    assert refused["status"] == 401 and "revoked" in json.loads(base64.b64decode(refused["body"]))["error_message"]
    assert not tracebacks.records


@pytest.mark.django_db
def test_no_http_request_can_claim_a_carried_certificate(peer_role, peer_ca, operator_cert):
    """The carried-certificate key is an environ key, not a header; what a server could put there is a string,
    and a string is never believed."""
    peer_role(peer_ca, operator_cert, {"/": True})
    pem = operator_cert.public_bytes(Encoding.PEM).decode()
    client = APIClient(**{"pki.carried_client_certificate": pem, "HTTP_PKI.CARRIED_CLIENT_CERTIFICATE": pem,
                          "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS", "HTTP_X_SSL_CLIENT_CERT": quote(pem)})
    r = client.post(f"{V1}/endentity/search", {"criteria": []}, format="json")
    assert r.status_code == 401


@pytest.mark.django_db
def test_an_answer_after_the_requester_gave_up_is_kept_without_its_body(ra_node, entity_factory):
    """The RA answered 503 (its timeout) while the CA was still running the call: the keystore that comes later is
    not stored at the RA."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 0.2
    client = make_client("apiadmin", ["/"])
    r = client.post(f"{V1}/certificate/enrollkeystore", {"username": "x", "password": "foo123"}, format="json")
    assert r.status_code == 503
    item = PeerWorkItem.objects.get()
    PeerWorkItem.objects.filter(pk=item.pk).update(status="leased")  # a connector held it all along
    late = {"status": 201, "content_type": "application/json", "body": base64.b64encode(b'{"certificate": "P12"}')
            .decode(), "headers": {}, "actor": "apiadmin"}
    assert queue.answer("c", item.pk, item.idempotency_key, late) == "accepted"
    item.refresh_from_db()
    assert item.result["status"] == 201 and "body" not in item.result


@DB
def test_an_anonymous_caller_cannot_keep_the_ca_busy_with_bad_credentials(ra_node, carrier, tracebacks):
    """The attack: from the internet, an RA in the DMZ queues whatever carries an Authorization header, and the
    CA checks it. Each 401 the CA answers counts against the caller's address at the RA too, so past the budget
    the RA refuses (429 + Retry-After) before anything is queued for the CA."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    ra_node.PKI_AUTH_FAILURE_LIMIT = 3
    bogus = "Basic " + base64.b64encode(b"nobody:guess").decode()
    client = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.9", HTTP_AUTHORIZATION=bogus)
    statuses = [client.post(f"{V1}/endentity/search", {"criteria": []}, format="json").status_code
                for _ in range(5)]
    # (One database plays both nodes here, so the CA's count of the forwarded address and the RA's add up.)
    assert statuses[:2] == [401, 401] and statuses[-2:] == [429, 429]
    assert PeerWorkItem.objects.count() == statuses.count(401)  # the refused ones never reached the queue
    refused = client.post(f"{V1}/endentity/search", {"criteria": []}, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # Another address behind the same RA is not locked out by this one.
    other = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.10", HTTP_AUTHORIZATION=bogus)
    assert other.post(f"{V1}/endentity/search", {"criteria": []}, format="json").status_code == 401
    assert not tracebacks.records
