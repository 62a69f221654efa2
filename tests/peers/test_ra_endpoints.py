"""The RA side of the peers protocol through Django's test client: who may connect in (client certificate
forwarded by the TLS proxy, matched to a role allowing /peer/incoming), lease and answer, pushes, bad input."""

from __future__ import annotations

import json

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from peers import queue, scep_ra
from peers.choices import WorkStatus
from peers.models import IncomingPeer, PeerWorkItem
from pki.models import AuditEvent

from .conftest import cert_headers, foreign_cert

pytestmark = pytest.mark.django_db


def _post(client, path, body, cert, **extra):
    return client.post(f"/peers/v1/{path}", data=json.dumps(body) if not isinstance(body, bytes) else body,
                       content_type=extra.pop("content_type", "application/json"), **cert_headers(cert), **extra)


@pytest.fixture
def allowed(peer_ca, make_cert, peer_role):
    cert = make_cert(peer_ca)
    peer_role(peer_ca, cert, {"/peer/incoming": True})
    return cert


# (what the caller presents, HTTP status, error code)
REFUSALS = [
    ("none", 401, "no-certificate"),
    ("not-verified", 401, "no-certificate"),
    ("untrusted-proxy", 401, "no-certificate"),
    ("foreign-ca", 403, "unknown-ca"),
    ("no-client-auth", 403, "no-client-auth"),
    ("expired", 403, "expired"),
    ("no-role", 403, "no-role"),
    ("role-without-rule", 403, "no-rule"),
    ("role-denying-rule", 403, "no-rule"),
]


@pytest.mark.parametrize(("case", "status", "code"), REFUSALS)
def test_who_may_not_connect_in(client, ra_node, peer_ca, make_cert, peer_role, case, status, code):
    cert, extra = make_cert(peer_ca), {}
    if case == "none":
        cert = None
    elif case == "not-verified":
        extra = {"HTTP_X_SSL_CLIENT_VERIFY": "FAILED:unable to verify"}
    elif case == "untrusted-proxy":
        extra = {"REMOTE_ADDR": "10.9.9.9"}  # headers from anyone but the TLS proxy are not believed
    elif case == "foreign-ca":
        cert = foreign_cert()
    elif case == "no-client-auth":
        cert = make_cert(peer_ca, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    elif case == "expired":
        cert = make_cert(peer_ca, days=1, start_days=-5)
    elif case == "role-without-rule":
        peer_role(peer_ca, cert, {"/ca": True})
    elif case == "role-denying-rule":
        peer_role(peer_ca, cert, {"/peer": True, "/peer/incoming": False})
    queue.submit("scep.get", {"alias": "scep"}, "scep:scep", 30)
    headers = {**cert_headers(cert), **extra}
    response = client.post("/peers/v1/lease", data=json.dumps({"wait": 0}), content_type="application/json",
                           **headers)
    assert response.status_code == status
    assert response.json()["error_code"] == code
    # Nothing was handed out, and nobody became an incoming peer.
    assert PeerWorkItem.objects.get().status == WorkStatus.WAITING
    assert not IncomingPeer.objects.exists()


@pytest.mark.parametrize("by", ["serial", "cn"])
def test_member_by_serial_or_cn_leases_and_answers(client, ra_node, peer_ca, make_cert, peer_role, by):
    cert = make_cert(peer_ca)
    peer_role(peer_ca, cert, {"/peer/incoming": True}, by=by)
    item = queue.submit("scep.get", {"alias": "scep", "operation": "GetCACaps"}, "scep:scep", 30)
    leased = _post(client, "lease", {"wait": 0, "max": 4}, cert)
    assert leased.status_code == 200, leased.content
    (got,) = leased.json()["items"]
    assert (got["id"], got["key"], got["kind"], got["requester"]) == (
        item.pk, item.idempotency_key, "scep.get", "scep:scep")
    # Leased: nobody else gets it while the lease lasts.
    assert _post(client, "lease", {"wait": 0}, cert).json()["items"] == []
    result = {"status": 200, "content_type": "text/plain", "body": "QQ=="}
    first = _post(client, "answer", {"id": item.pk, "key": item.idempotency_key, "result": result}, cert)
    assert first.json() == {"outcome": "accepted"}
    again = _post(client, "answer", {"id": item.pk, "key": item.idempotency_key,
                                     "result": {**result, "body": "Qg=="}}, cert)
    assert again.json() == {"outcome": "duplicate"}
    item.refresh_from_db()
    assert (item.status, item.result["body"]) == (WorkStatus.DONE, "QQ==")  # the first answer stays
    wrong_key = _post(client, "answer", {"id": item.pk, "key": "0" * 32, "result": result}, cert)
    assert wrong_key.status_code == 404
    peer = IncomingPeer.objects.get()
    assert (peer.requests_leased, peer.answers, peer.serial) == (1, 2, format(cert.serial_number, "x"))


BAD_BODIES = [
    ("lease", b"not json", 400),
    ("lease", b"[1, 2]", 400),
    ("lease", {"wait": 3600}, 400),
    ("lease", {"wait": -1}, 400),
    ("lease", {"wait": True}, 400),
    ("lease", {"max": 0}, 400),
    ("lease", {"kinds": ["shell.exec"]}, 400),
    ("answer", {"id": "1", "key": "k", "result": {}}, 400),
    ("answer", {"id": 1, "key": "k" * 65, "result": {}}, 400),
    ("answer", {"id": 1, "key": "k", "result": "x"}, 400),
    ("answer", {"id": 99999, "key": "k", "result": {}}, 404),
    ("push/scep", {"aliases": "x"}, 400),
    ("push/scep", {"aliases": [{"name": ""}]}, 400),
    ("push/scep", {"aliases": [{"name": "a", "responses": {"PKIOperation|": {}}}]}, 400),
    ("push/scep", {"aliases": [{"name": "a", "responses": {"GetCACaps|": {"status": 200, "content_type": "t",
                                                                           "body": "!!"}}}]}, 400),
    ("push/scep", {"aliases": [{"name": "a", "max_body_size": -1}]}, 400),
]


@pytest.mark.parametrize(("path", "body", "status"), BAD_BODIES)
def test_bad_input_is_a_precise_4xx_and_changes_nothing(client, ra_node, allowed, path, body, status, tracebacks):
    response = _post(client, path, body, allowed)
    assert response.status_code == status, response.content
    assert "error_message" in response.json()
    from peers.models import PushedScepAlias

    assert not PushedScepAlias.objects.exists()


def test_wrong_content_type_and_method(client, ra_node, allowed):
    assert _post(client, "lease", b"wait=0", allowed, content_type="application/x-www-form-urlencoded"
                 ).status_code == 400
    assert client.get("/peers/v1/lease", **cert_headers(allowed)).status_code == 405
    assert client.get("/peers/v1/hello", **cert_headers(allowed)).json()["node"] == "ra"


def test_a_ca_node_takes_no_incoming_connections(client, settings, allowed):
    settings.PKI_NODE_ROLE = "ca"
    settings.PKI_BEHIND_TLS_PROXY = True
    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1"]
    assert client.get("/peers/v1/hello", **cert_headers(allowed)).status_code == 404


def test_refusals_are_audited(client, ra_node, peer_ca, make_cert):
    _post(client, "lease", {}, make_cert(peer_ca))
    assert AuditEvent.objects.filter(event_type="PEER_INCOMING_REFUSED", outcome="FAILURE").exists()


PUSH = {"aliases": [{"name": "scep", "enabled": True, "max_body_size": 4096, "responses": {
    "GetCACaps|": {"status": 200, "content_type": "text/plain", "body": "UE9TVFBLSU9wZXJhdGlvbgpBRVM="},
    "GetCACert|": {"status": 200, "content_type": "application/x-x509-ca-cert", "body": "MIIB"}}},
    {"name": "off", "enabled": False, "max_body_size": 4096, "responses": {}}]}


def test_pushed_scep_data_answers_while_the_ca_is_away(client, ra_node, allowed):
    assert _post(client, "push/scep", PUSH, allowed).json() == {"aliases": 2}
    caps = client.get("/ejbca/publicweb/apply/scep/pkiclient.exe?operation=GetCACaps")
    assert (caps.status_code, caps.content) == (200, b"POSTPKIOperation\nAES")
    cert = client.get("/scep/scep/pkiclient.exe?operation=GetCACert")
    assert (cert.status_code, cert["Content-Type"], cert.content) == (200, "application/x-x509-ca-cert",
                                                                      b"\x30\x82\x01")
    assert client.get("/scep/off/pkiclient.exe?operation=GetCACaps").status_code == 404
    assert client.get("/scep/nope/pkiclient.exe?operation=GetCACaps").status_code == 404
    # Pushed again unchanged: one audit event for the first push only.
    _post(client, "push/scep", PUSH, allowed)
    assert AuditEvent.objects.filter(event_type="PEER_SCEP_PUSH").count() == 1


def test_carried_scep_request_without_a_ca_gets_503_retry_after(client, ra_node, allowed):
    _post(client, "push/scep", PUSH, allowed)
    response = client.post("/scep/scep/pkiclient.exe?operation=PKIOperation", data=b"\x30\x03\x02\x01\x00",
                           content_type="application/x-pki-message")
    assert response.status_code == 503
    assert response["Retry-After"]
    # The CA never leased it: given up, never handed out later.
    item = PeerWorkItem.objects.get()
    assert (item.kind, item.status, item.requester) == ("scep.pkioperation", WorkStatus.EXPIRED, "scep:scep")
    assert _post(client, "lease", {"wait": 0}, allowed).json()["items"] == []


@pytest.mark.parametrize(("alias", "status"), [("off", 404), ("nope", 404), ("scep%00x", 400)])
def test_a_carried_request_to_a_disabled_or_unknown_alias_is_refused_and_queues_nothing(client, ra_node, allowed,
                                                                                       alias, status):
    """A NUL in the alias is refused before any view (pki.http.nul), as nginx refuses it in front of make run."""
    _post(client, "push/scep", PUSH, allowed)
    response = client.post(f"/scep/{alias}/pkiclient.exe?operation=PKIOperation", data=b"\x30\x03\x02\x01\x00",
                           content_type="application/x-pki-message")
    assert response.status_code == status
    assert not PeerWorkItem.objects.exists()


def test_a_carried_request_reads_its_alias_in_one_statement_without_the_pushed_answers(client, ra_node, allowed,
                                                                                       settings):
    from django.db import connection

    from pki.db import statement_name

    _post(client, "push/scep", PUSH, allowed)
    settings.PKI_PEER_REQUEST_TIMEOUT = 0.1
    statements: list[str] = []
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        response = client.post("/scep/scep/pkiclient.exe?operation=PKIOperation", data=b"\x30\x03\x02\x01\x00",
                               content_type="application/x-pki-message")
    assert response.status_code == 503  # no CA here
    # (Once a session, the statement's PREPARE goes first.)
    alias_reads = [s for s in statements if ("pushedscepalias" in s or "scep_alias" in s)
                   and not s.startswith("PREPARE")]
    assert [s.split("(")[0] for s in alias_reads] == [
        f"EXECUTE {statement_name('peers_scep_alias', scep_ra._CARRIED_ALIAS_SQL)}"], alias_reads
    assert "responses" not in scep_ra._CARRIED_ALIAS_SQL  # the CA's certificates are not read for a carried request


@pytest.mark.parametrize(("method", "query", "body", "status"), [
    ("post", "?operation=GetCACaps", b"x", 400),           # only PKIOperation is POSTed
    ("post", "", b"x" * 5000, 413),                         # over the pushed alias's limit
    ("get", "?operation=PKIOperation", None, 400),          # no message
    ("get", "?operation=PKIOperation&message=" + "A" * 8000, None, 413),
    ("get", "", None, 400),                                 # no operation
    ("get", "?operation=Nope", None, 400),
])
def test_scep_at_the_ra_refuses_bad_requests_before_carrying(client, ra_node, allowed, method, query, body, status):
    _post(client, "push/scep", PUSH, allowed)
    url = "/scep/scep/pkiclient.exe" + query
    response = client.post(url, data=body, content_type="application/x-pki-message") if method == "post" \
        else client.get(url)
    assert response.status_code == status
    assert not PeerWorkItem.objects.exists()


def _push_revocation(ca, cert, role) -> None:
    from django.utils import timezone

    from peers.models import PushedRevocation

    PushedRevocation.objects.create(ca=ca, serial=format(cert.serial_number, "x"), status="REVOKED",
                                    changed_at=timezone.now())


def _remove_member(ca, cert, role) -> None:
    role.members.all().delete()


def _deny_rule(ca, cert, role) -> None:
    from pki.models import AccessRule

    AccessRule.objects.filter(role=role, resource="/peer/incoming").update(allowed=False)


def _replace_ca_certificate(ca, cert, role) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from pki.models import CertificateAuthority

    # The issuing CA's row changed (here: a new certificate that did not sign the peer's): the whole check again.
    CertificateAuthority.objects.filter(pk=ca.pk).update(certificate_der=foreign_cert().public_bytes(Encoding.DER))


# A connector that was let in before (its certificate is known to the process and re-checked by one statement per
# call) is refused on its very next call once any of these changes.
@pytest.mark.parametrize(("change", "code"), [
    (_push_revocation, "revoked"),
    (_remove_member, "no-role"),
    (_deny_rule, "no-rule"),
    (_replace_ca_certificate, "unknown-ca"),
])
def test_a_known_peer_is_refused_on_its_next_call_after_a_change(client, ra_node, peer_ca, make_cert, peer_role,
                                                                 change, code):
    cert = make_cert(peer_ca)
    role = peer_role(peer_ca, cert, {"/peer/incoming": True})
    for _ in range(2):  # the first call checks it all; the second goes the known certificate's way
        assert _post(client, "lease", {"wait": 0}, cert).status_code == 200
    change(peer_ca, cert, role)
    queue.submit("scep.get", {"alias": "scep"}, "scep:scep", 30)
    refused = _post(client, "lease", {"wait": 0}, cert)
    assert (refused.status_code, refused.json()["error_code"]) == (403, code)
    assert PeerWorkItem.objects.get().status == WorkStatus.WAITING
    assert AuditEvent.objects.filter(event_type="PEER_INCOMING_REFUSED").exists()
    # ... and still refused after (nothing of the earlier verdict is kept).
    assert _post(client, "lease", {"wait": 0}, cert).status_code == 403


def test_a_known_peer_takes_one_statement_per_call(client, ra_node, peer_ca, make_cert, peer_role):
    from django.db import connection

    cert = make_cert(peer_ca)
    peer_role(peer_ca, cert, {"/peer/incoming": True})
    item = queue.submit("scep.get", {"alias": "scep"}, "scep:scep", 30)
    assert _post(client, "lease", {"wait": 0}, cert).status_code == 200
    statements: list[str] = []
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        answered = _post(client, "answer", {"answers": [{"id": item.pk, "key": item.idempotency_key,
                                                         "result": {"status": 200}}]}, cert)
    assert answered.json() == {"outcomes": ["accepted"]}
    # Known now: its re-check (with the contact recorded), and the answer with its counter, one statement each
    # (besides, once a session, the prepared-statement registry's look-up and each statement's PREPARE).
    statements = [s for s in statements if not s.startswith(("PREPARE", "SELECT name FROM pg_prepared_statements"))]
    assert len(statements) == 2, statements
    peer = IncomingPeer.objects.get()
    assert (peer.requests_leased, peer.answers) == (1, 1)
