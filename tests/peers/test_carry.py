"""The CA side of carried work: the connector's own rule per kind (its binding certificate matched to a role
member on the CA), the requester's identity, once per idempotency key, and both identities in the audit log. The
last test sends a SCEP enrollment to the RA's endpoint and carries it through the queue with the real pipeline."""

from __future__ import annotations

import base64
import threading

import pytest
from django.db import connection, connections
from django.utils import timezone

from endentities.models import EndEntity
from peers import carry, queue
from peers import services as peers
from peers.connector import scep_push_payload
from peers.models import CarriedRequest
from pki import audit
from pki.models import AuditEvent, Certificate
from protocols.scep.messages import client as scep_client
from tests.protocols.scep.server_fixtures import *  # noqa: F403
from tests.protocols.scep.server_fixtures import ScepTestClient, client_key, make_csr, self_signed

from .conftest import cert_headers


@pytest.fixture
def connector(actor, connector_binding):
    return peers.add_connector(actor, name="dmz-ra", url="https://127.0.0.1:9", binding="ra-link")


@pytest.fixture
def may_carry(peer_role, peer_ca, connector_binding):
    """The connector's certificate is a member (by serial) of a role that may carry SCEP requests."""
    return peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/scep": True})


def _pkcs_req(scep_ca, cn="router1", challenge="s3cret"):
    key = client_key(7)
    signer = self_signed(key, "scep-client")
    request = scep_client.build_pkcs_req(make_csr(key, f"CN={cn},O=Test", challenge=challenge), signer, key,
                                         scep_ca.certificate)
    return request, key, signer


def _item(kind, payload, key="k1", item_id=1):
    return {"id": item_id, "key": key, "kind": kind, "payload": payload, "requester": "scep:scep"}


@pytest.mark.django_db
@pytest.mark.parametrize("rules", [None, {"/ca": True}, {"/peer/carry": True, "/peer/carry/scep": False}])
def test_a_connector_without_the_carry_rule_is_refused(peer_role, peer_ca, connector, ra, rules):
    if rules is not None:
        peer_role(peer_ca, connector.binding.certificate.certificate, rules)
    result = carry.carry(connector, _item("scep.get", {"alias": "scep", "operation": "GetCACaps", "message": ""}))
    assert result["status"] == 403
    assert not CarriedRequest.objects.exists()
    event = AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED")
    assert (event.outcome, event.actor, event.details["requester"]) == ("FAILURE", "peer:dmz-ra", "scep:scep")


@pytest.mark.django_db
@pytest.mark.parametrize(("item", "status"), [
    (_item("shell.exec", {}), 400),
    (_item("scep.get", {"alias": "nope", "operation": "GetCACaps"}), 404),
    (_item("scep.get", {"alias": "scep", "operation": "PKIOperation"}), 400),
    (_item("scep.pkioperation", {"alias": "scep", "message": "!!"}), 400),
    (_item("scep.pkioperation", {"alias": "scep", "message": base64.b64encode(b"junk").decode()}), 400),
])
def test_bad_carried_work_gets_the_protocols_own_answer(connector, may_carry, ra, item, status, tracebacks):
    assert carry.carry(connector, item)["status"] == status
    assert not tracebacks.records


@pytest.mark.django_db
def test_pkioperation_is_run_once_per_idempotency_key(connector, may_carry, ra, scep_ca):
    request, key, signer = _pkcs_req(scep_ca)
    item = _item("scep.pkioperation", {"alias": "scep", "message": base64.b64encode(request.data).decode(),
                                       "client_address": "192.0.2.7"})
    first = carry.carry(connector, item)
    again = carry.carry(connector, item)  # the lease ran out before the RA got the answer: delivered again
    assert first == again and first["status"] == 200
    reply = scep_client.parse_cert_rep(base64.b64decode(first["body"]), key, signer, ca_certs=[scep_ca.certificate])
    assert reply.status.name == "SUCCESS"
    assert Certificate.objects.filter(username="router1").count() == 1
    event = AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED")
    assert (event.actor, event.details["requester"], event.details["client_address"], event.details["status"]) == (
        "peer:dmz-ra", "scep:scep", "192.0.2.7", 200)
    # The issuance itself is the requester's, as if it had come in locally.
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", actor="scep:scep").count() == 1


@pytest.mark.django_db
def test_a_scep_answer_goes_before_its_record_and_the_issuance_names_both_identities(connector, may_carry, ra,
                                                                                    scep_ca):
    """The device does not wait for the answer's record: the connector gets the CertRep when the operation ends.
    What the operation changed is on record by then, in its own transaction, with the connector and the RA's item."""
    request, key, signer = _pkcs_req(scep_ca, cn="router3")
    item = _item("scep.pkioperation", {"alias": "scep", "message": base64.b64encode(request.data).decode()},
                 key="k3", item_id=41)
    seen: dict = {}

    def answer_ready(result):
        seen["answer"] = result
        seen["recorded"] = CarriedRequest.objects.get(idempotency_key="k3").result
        seen["carried_events"] = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED").count()
        seen["issuance"] = AuditEvent.objects.get(event_type="CERT_CREATION", actor="scep:scep")

    result = carry.carry(connector, item, answer_ready=answer_ready)
    assert seen["answer"] == result and result["status"] == 200
    assert (seen["recorded"], seen["carried_events"]) == (None, 0)  # the record is written after the hand-over
    issuance = seen["issuance"]
    assert (issuance.actor, issuance.details["carried_by"], issuance.details["ra_work_item"],
            issuance.details["ra_requester"]) == ("scep:scep", "peer:dmz-ra", 41, "scep:scep")
    assert issuance.object_id and Certificate.objects.filter(username="router3").count() == 1
    # ... and then the record and the carried event (the audit chain verifies with both).
    assert CarriedRequest.objects.get(idempotency_key="k3").result == result
    assert AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED").details["work_item"] == 41
    assert audit.verify_chain().ok


@pytest.mark.django_db
def test_a_refused_carried_enrollment_names_both_identities_too(connector, may_carry, ra, scep_ca):
    request, _, _ = _pkcs_req(scep_ca, cn="router4", challenge="wrong")
    handed: list = []
    item = _item("scep.pkioperation", {"alias": "scep", "message": base64.b64encode(request.data).decode()},
                 key="k4", item_id=42)
    assert carry.carry(connector, item, answer_ready=handed.append)["status"] == 200  # a FAILURE CertRep
    (refusal,) = AuditEvent.objects.filter(outcome="FAILURE")
    assert (refusal.actor, refusal.details["carried_by"], refusal.details["ra_work_item"]) == (
        "scep:scep", "peer:dmz-ra", 42)
    assert len(handed) == 1 and not Certificate.objects.filter(username="router4").exists()
    # Events outside a carried run are not marked.
    audit.record("TEST_EVENT", "someone")
    assert "carried_by" not in AuditEvent.objects.get(event_type="TEST_EVENT").details


@pytest.mark.django_db(transaction=True)
def test_a_run_in_progress_is_waited_for_and_a_dead_one_run_again(connector, may_carry, ra, monkeypatch):
    item = _item("scep.get", {"alias": "scep", "operation": "GetCACaps", "message": ""})
    # Another process holds the key (its run is going on): this one waits, then gives up.
    other = connections.create_connection("default")
    with other.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"peers:{connector.pk}:k1"])
    monkeypatch.setattr(carry, "HOLD_WAIT", 0.3)
    with pytest.raises(carry.Busy):
        carry.carry(connector, item)
    # That process dies: its lock goes with its connection; a claim it left without answer is run again.
    other.close()
    CarriedRequest.objects.create(connector=connector, idempotency_key="k1", kind="scep.get", claimed_at=timezone.now())
    assert carry.carry(connector, item)["status"] == 200
    assert CarriedRequest.objects.get().result["status"] == 200
    assert AuditEvent.objects.get(event_type="PEER_REQUEST_CARRIED").details["rerun"] is True


@pytest.mark.django_db
def test_push_payload_has_each_alias_and_its_read_only_answers(connector, ra, alias_factory):
    alias_factory("off", enabled=False)
    pushed = {a["name"]: a for a in scep_push_payload()["aliases"]}
    assert pushed["off"] == {"name": "off", "enabled": False, "max_body_size": 65536, "responses": {}}
    caps = pushed["scep"]["responses"]["GetCACaps|"]
    assert caps["status"] == 200 and b"POSTPKIOperation" in base64.b64decode(caps["body"])
    assert set(pushed["scep"]["responses"]) == {"GetCACaps|", "GetCACert|", "GetCACertChain|", "GetNextCACert|"}


@pytest.mark.django_db(transaction=True)
def test_scep_enrollment_at_the_ra_carried_through_the_queue(client, ra_node, connector, may_carry, ra, scep_ca,
                                                             peer_role, peer_ca, make_cert):
    """RA endpoint -> work item -> lease -> carry on the CA -> answer -> the client's CertRep (one database here;
    the two-process test does the same over mTLS)."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    incoming = make_cert(peer_ca, "ca-connector-2")
    peer_role(peer_ca, incoming, {"/peer/incoming": True})
    pushed = client.post("/peers/v1/push/scep", data=__import__("json").dumps(scep_push_payload()),
                         content_type="application/json", **cert_headers(incoming))
    assert pushed.status_code == 200
    scep = ScepTestClient(client)
    assert scep.ca_certs() == [scep_ca.certificate]  # from the pushed data
    request, key, signer = _pkcs_req(scep_ca, cn="router2")
    out: dict = {}

    def device():
        try:
            out["reply"] = scep.exchange(request, key, signer, scep_ca.certificate)
        except BaseException as exc:  # noqa: BLE001
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=device)
    thread.start()
    leased = queue.lease("test-connector", wait_seconds=10)
    assert [i.kind for i in leased] == ["scep.pkioperation"]
    item = leased[0]
    result = carry.carry(connector, {"id": item.pk, "key": item.idempotency_key, "kind": item.kind,
                                     "payload": item.payload, "requester": item.requester})
    assert queue.answer("test-connector", item.pk, item.idempotency_key, result) == "accepted"
    thread.join(20)
    assert "error" not in out, out.get("error")
    assert out["reply"].status.name == "SUCCESS"
    assert EndEntity.objects.filter(username="router2").exists()
