"""Outgoing peer connectors on the CA: services (rules, audit, validation), the binding they use cannot be deleted,
the CLI, REST under /api/v1/peers/ and the "Peer Systems" page."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from keybindings import services as kb
from peers import services
from peers.models import PeerConnector
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, ConflictError, ValidationError
from pki.models import AuditEvent
from tests.pki.test_api_auth import fast_password_hashing, make_client, superadmin_client  # noqa: F401
from tests.pki.test_views_auth import ui_client

pytestmark = pytest.mark.django_db
URL = "https://ra.example.org:8443"


def test_add_edit_remove_is_audited_with_old_and_new(actor, connector_binding):
    c = services.add_connector(actor, name="dmz-ra", url=URL + "/", binding="ra-link")
    assert (c.url, c.binding, c.enabled, c.state) == (URL, connector_binding, True, "disconnected")
    services.edit_connector(actor, c, url="https://ra2.example.org", enabled=False)
    edit = AuditEvent.objects.get(event_type="PEER_CONNECTOR_EDIT")
    assert edit.details["changes"] == {"url": [URL, "https://ra2.example.org"], "enabled": [True, False]}
    services.remove_connector(actor, c)
    assert not PeerConnector.objects.exists()
    assert list(AuditEvent.objects.filter(event_type__startswith="PEER_CONNECTOR").values_list(
        "event_type", flat=True).order_by("sequence")) == [
        "PEER_CONNECTOR_ADD", "PEER_CONNECTOR_EDIT", "PEER_CONNECTOR_REMOVE"]


@pytest.mark.parametrize(("field", "value"), [
    ("url", "http://ra.example.org"),           # mTLS only
    ("url", "https://user:pw@ra.example.org"),  # no credentials in the URL
    ("url", "https://ra.example.org/?x=1"),
    ("url", "https://ra.example.org:99999"),
    ("url", "ftp://ra"),
    ("url", "https://ra.example.org/a b"),
    ("name", ""),
    ("name", "x" * 256),
    ("name", "bad\nname"),
    ("binding", "no-such-binding"),
    ("binding", "bad\x00"),
])
def test_bad_fields_are_refused_and_change_nothing(actor, connector_binding, field, value):
    fields = {"name": "dmz-ra", "url": URL, "binding": "ra-link", field: value}
    with pytest.raises(ValidationError) as err:
        services.add_connector(actor, **fields)
    assert err.value.field == field
    assert not PeerConnector.objects.exists()


def test_an_ocsp_binding_cannot_connect(actor, connector_binding, soft_token_factory):
    ocsp = kb.create_binding(actor, name="ocsp", binding_type="OcspKeyBinding", crypto_token=soft_token_factory("O"),
                             key_spec="P-256")
    with pytest.raises(ValidationError, match="not an authentication key binding"):
        services.add_connector(actor, name="x", url=URL, binding=ocsp.name)


def test_names_are_unique(actor, connector_binding):
    services.add_connector(actor, name="dmz-ra", url=URL, binding="ra-link")
    with pytest.raises(ConflictError):
        services.add_connector(actor, name="dmz-ra", url=URL, binding="ra-link")


def test_rules(connector_binding):
    nobody = Actor(name="nobody", role_rules={"r": [("/peer/view", True)]})
    assert list(services.list_connectors(nobody)) == []
    with pytest.raises(AuthorizationDenied):
        services.add_connector(nobody, name="x", url=URL, binding="ra-link")
    assert not PeerConnector.objects.exists()


def test_a_binding_a_connector_uses_cannot_be_deleted(actor, connector_binding):
    services.add_connector(actor, name="dmz-ra", url=URL, binding="ra-link")
    with pytest.raises(ConflictError, match="peer connector 'dmz-ra'"):
        kb.delete_binding(actor, connector_binding)
    assert kb.get_binding(actor, "ra-link")


def test_cli(connector_binding, capsys):
    call_command("peer", "add", "--name", "dmz-ra", "--url", URL, "--binding", "ra-link")
    call_command("peer", "edit", "--name", "dmz-ra", "--enabled", "false")
    call_command("peer", "list")
    assert '"dmz-ra"' in capsys.readouterr().out
    call_command("peer", "status", "--name", "dmz-ra")
    status = json.loads(capsys.readouterr().out)
    assert (status["enabled"], status["state"], status["binding"]) == (False, "disconnected", "ra-link")
    with pytest.raises(CommandError, match="could not connect"):  # nothing listens there
        call_command("peer", "edit", "--name", "dmz-ra", "--url", "https://127.0.0.1:9")
        call_command("peer", "test", "--name", "dmz-ra")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("peer", "remove", "--name", "nope")
    with pytest.raises(CommandError, match="true or false"):
        call_command("peer", "edit", "--name", "dmz-ra", "--enabled", "maybe")
    call_command("peer", "remove", "--name", "dmz-ra")
    assert not PeerConnector.objects.exists()


def test_run_refuses_on_an_ra_node(settings):
    settings.PKI_NODE_ROLE = "ra"
    with pytest.raises(CommandError, match="Only a CA node"):
        call_command("peer", "run")


def test_rest(connector_binding):
    api = superadmin_client()
    r = api.post("/api/v1/peers/", {"name": "dmz-ra", "url": URL, "binding": "ra-link"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["state"] == "disconnected" and r.json()["binding"] == "ra-link"
    assert api.post("/api/v1/peers/", {"name": "dmz-ra", "url": URL, "binding": "ra-link"},
                    format="json").status_code == 409
    bad = api.post("/api/v1/peers/", {"name": "x", "url": "http://x", "binding": "ra-link"}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"error_code", "error_message"}
    assert api.patch("/api/v1/peers/dmz-ra/", {"enabled": False}, format="json").json()["enabled"] is False
    assert [c["name"] for c in api.get("/api/v1/peers/").json()] == ["dmz-ra"]
    api.patch("/api/v1/peers/dmz-ra/", {"url": "https://127.0.0.1:9"}, format="json")
    test = api.post("/api/v1/peers/dmz-ra/test")  # nobody listens there
    assert test.status_code == 502 and "Connection" in test.json()["error_message"]
    assert api.get("/api/v1/peers/incoming/").json() == []
    assert api.delete("/api/v1/peers/dmz-ra/").status_code == 204
    assert api.get("/api/v1/peers/dmz-ra/").status_code == 404


def test_rest_rules(connector_binding):
    viewer = make_client("viewer", ["/peer/view"])
    assert viewer.get("/api/v1/peers/").status_code == 200
    r = viewer.post("/api/v1/peers/", {"name": "x", "url": URL, "binding": "ra-link"}, format="json")
    assert r.status_code == 403
    assert make_client("stranger", ["/ca"]).get("/api/v1/peers/").status_code == 403
    assert not PeerConnector.objects.exists()


def test_peer_systems_page(actor, connector_binding):
    admin = ui_client("uiadmin", ["/"])
    page = admin.get("/system/peers/")
    assert page.status_code == 200 and b"Peer Systems" in page.content
    assert b"No outgoing peer connectors" in page.content
    r = admin.post("/system/peers/new/", {"name": "dmz-ra", "url": URL, "binding": "ra-link", "enabled": "on"})
    assert r.status_code == 302
    c = PeerConnector.objects.get()
    PeerConnector.objects.filter(pk=c.pk).update(last_tls_error="TLS: certificate verify failed", failures=3)
    page = admin.get("/system/peers/")
    assert b"dmz-ra" in page.content and b"certificate verify failed" in page.content
    bad = admin.post("/system/peers/new/", {"name": "x", "url": "http://x", "binding": "ra-link"})
    assert bad.status_code == 400
    assert admin.post(f"/system/peers/{c.pk}/edit/", {"name": "dmz-ra", "url": "https://ra3.example.org",
                                                      "binding": "ra-link"}).status_code == 302
    assert PeerConnector.objects.get().url == "https://ra3.example.org"
    assert admin.post(f"/system/peers/{c.pk}/delete/").status_code == 302
    assert not PeerConnector.objects.exists()
    assert ui_client("nobody", ["/ca"]).get("/system/peers/").status_code == 403


@pytest.mark.parametrize("change", ["none", "connector disabled", "binding disabled", "certificate revoked",
                                    "certificate renewed", "another binding"])
def test_a_connected_session_goes_on_only_with_the_credentials_it_connected_with(actor, connector_binding, change,
                                                                                 soft_token_factory):
    """The connector's session checks this once a second while connected (peers.connector): a binding disabled or
    revoked at the CA ends the session at once instead of at the next reconnect."""
    from peers.connector import still_usable
    from pki.revocation import revoke

    connected = services.add_connector(actor, name="dmz-ra", url=URL, binding="ra-link")
    connected = PeerConnector.objects.select_related("binding__certificate").get(pk=connected.pk)
    if change == "connector disabled":
        services.edit_connector(actor, connected, enabled=False)
    elif change == "binding disabled":
        kb.set_status(actor, connector_binding, "DISABLED")
    elif change == "certificate revoked":
        revoke(actor, connector_binding.certificate, 1)
    elif change == "certificate renewed":
        kb.renew(actor, connector_binding)
    elif change == "another binding":
        other = kb.create_binding(actor, name="other-link", binding_type="AuthenticationKeyBinding",
                                  crypto_token=soft_token_factory("Other"), key_spec="P-256")
        PeerConnector.objects.filter(pk=connected.pk).update(binding=other)
    assert still_usable(connected) is (change == "none")


@pytest.mark.parametrize("early", [True, False])
def test_a_worker_frees_its_place_when_the_answer_is_on_its_way(monkeypatch, early):
    """A SCEP answer goes to the poster before its record is written (peers.carry): the connector then leases the
    next item while that record is still being written, and the place is given back once, not twice."""
    import threading

    from peers import carry, connector

    recording, recorded = threading.Event(), threading.Event()

    def fake_carry(conn, item, who, answer_ready):
        result = {"status": 200, "content_type": "application/x-pki-message", "body": ""}
        if early:
            answer_ready(result)
        recording.set()
        assert recorded.wait(5)  # the answer's record, still being written
        return result

    class Poster:
        def __init__(self):
            self.put_items = []

        def put(self, item, result):
            self.put_items.append(item["id"])

    monkeypatch.setattr(carry, "carry", fake_carry)
    runner = connector.ConnectorRunner(1, threading.Event())
    busy, freed, poster = threading.Semaphore(0), threading.Event(), Poster()
    worker = threading.Thread(target=runner._carry_one,
                              args=(PeerConnector(pk=1, name="x"), poster, {"id": 5}, None, busy, freed))
    worker.start()
    assert recording.wait(5)
    assert freed.is_set() is early and poster.put_items == ([5] if early else [])
    recorded.set()
    worker.join(5)
    assert poster.put_items == [5] and freed.is_set()
    assert busy.acquire(blocking=False) and not busy.acquire(blocking=False)  # given back exactly once
