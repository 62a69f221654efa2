"""A CA node and an RA node as real processes on loopback, each with its own PostgreSQL database, mTLS between
them (the CA's connector with its key binding; the RA's listener verifying and forwarding the client certificate):
micromdm's ``scepclient`` enrolls at the RA, read-only SCEP answers while the CA is away, each refusal of the
issue's list, and a connector killed in the middle of enrollments (no lost or duplicate certificate)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from .live import PeerPair, ids, scepclient

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("peers-live")]
USERS = ("router1",)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    for tool in ("scepclient", "openssl"):
        assert shutil.which(tool), f"{tool} is missing: scripts/install-test-deps.sh installs it (Debian 'scep')"
    with PeerPair(tmp_path_factory.mktemp("peers-live"), users=USERS, request_timeout=15, lease=4) as p:
        p.start_connector()
        p.wait_connected()
        yield p


def _cert(workdir: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((workdir / "client.pem").read_bytes())


@pytest.mark.parametrize(("alias", "cn", "challenge"), [
    ("scep", "router1", "foo123"),        # CA mode: the end entity and its enrollment code live on the CA
    ("ra-devices", "device1", "s3cret"),  # RA mode: the CA creates the end entity
])
def test_scepclient_enrolls_at_the_ra(pair, tmp_path, alias, cn, challenge):
    out = scepclient(tmp_path / cn, pair.scep_url(alias), cn, challenge)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{pair.logs('ra')}\n{pair.logs('connector')}"
    serial = format(_cert(tmp_path / cn).serial_number, "x")
    # Issued and stored by the CA; the RA holds no certificate and no key of the CA.
    assert pair.ca.query("SELECT username FROM pki_certificate WHERE serial = %s", (serial,)) == [(cn,)]
    assert pair.ra.query("SELECT count(*) FROM pki_certificate") == [(0,)]
    assert pair.ra.query("SELECT count(*) FROM cryptotokens_cryptotoken") == [(0,)]
    # Both identities in the CA's audit log: the connector carried it for the alias.
    carried = pair.ca.query("SELECT actor, details->>'requester', outcome FROM pki_auditevent WHERE event_type = "
                            "'PEER_REQUEST_CARRIED' AND details->>'kind' = 'scep.pkioperation' AND "
                            "details->>'requester' = %s", (f"scep:{alias}",))
    assert carried and set(carried) == {("peer:dmz-ra", f"scep:{alias}", "SUCCESS")}
    assert pair.ca.query("SELECT count(*) FROM pki_auditevent WHERE event_type = 'CERT_CREATION' AND object_id = %s "
                         "AND actor = %s", (serial, f"scep:{alias}")) == [(1,)]
    # Visible on both sides (the connector counts a request once the RA has its answer, so a moment after the
    # device may have it).
    deadline = time.monotonic() + 10
    while True:
        (carried_count, state), = pair.ca.query("SELECT requests_carried, state FROM peers_peerconnector "
                                                "WHERE name = 'dmz-ra'")
        if carried_count >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert carried_count >= 1 and state == "connected"
    ((leased, identity),) = pair.ra.query("SELECT requests_leased, identity FROM peers_incomingpeer")
    assert leased >= 1 and identity.startswith("peer ca-connector")


def _get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_read_only_operations_answer_while_the_ca_is_away(pair):
    pair.stop_connector()
    try:
        status, caps, _ = _get(pair.scep_url("ra-devices") + "?operation=GetCACaps")
        assert status == 200 and b"POSTPKIOperation" in caps
        status, der, headers = _get(pair.scep_url("ra-devices") + "?operation=GetCACert")
        assert status == 200 and headers["Content-Type"] == "application/x-x509-ca-cert"
        ca_pem = (pair.out / "ca.pem").read_bytes()
        assert x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificate(ca_pem)
        assert _get(pair.scep_url("nope") + "?operation=GetCACaps")[0] == 404
        # An enrollment needs the CA: held for the RA's timeout, then 503 with Retry-After.
        request = urllib.request.Request(pair.scep_url("ra-devices") + "?operation=PKIOperation", data=b"0\x00",
                                         headers={"Content-Type": "application/x-pki-message"})
        start = time.monotonic()
        try:
            urllib.request.urlopen(request, timeout=60)
            raise AssertionError("answered without a CA")
        except urllib.error.HTTPError as e:
            assert e.code == 503 and e.headers["Retry-After"]
        assert 14 < time.monotonic() - start < 40
    finally:
        pair.start_connector()
        pair.wait_connected()


def _peer_test(pair, name: str = "dmz-ra") -> subprocess.CompletedProcess:
    return pair.ca.manage("peer", "test", "--name", name, check=False)


PEER_TEST = ("peer", "test", "--name", "dmz-ra")


def _trust(add: str, remove: str) -> tuple[str, ...]:
    return ("keybind", "modify", "--name", "ra-link", "--addtrust", add, "--removetrust", remove)


def test_refused_server_certificate_from_an_untrusted_ca_and_a_pin_that_does_not_match(pair):
    pin = f"ScepCA;{ids(pair)['ra_server_serial']}"
    # One manage.py process for the lot; each `peer test` connects anew with the binding as it is then.
    steps = pair.ca.manage_many(
        PEER_TEST,
        _trust("OtherCA", "ScepCA"), PEER_TEST,                # the RA's server certificate is from a CA not trusted
        _trust("ScepCA;1234abcd", "OtherCA"), PEER_TEST,       # the right CA, a pinned serial that is not the RA's
        _trust(pin, "ScepCA;1234abcd"), PEER_TEST,             # the right pin
        _trust("ScepCA", pin))                                 # as it was
    trusted, untrusted, wrong_pin, right_pin = (steps[i] for i in (0, 2, 4, 6))
    assert all(step.returncode == 0 for step in steps[1::2]), [step.stderr for step in steps[1::2]]
    assert trusted.returncode == 0, trusted.stderr
    assert untrusted.returncode != 0 and "TLS" in untrusted.stderr, untrusted.stderr
    assert wrong_pin.returncode != 0 and "TLS" in wrong_pin.stderr, wrong_pin.stderr
    assert "not one the key binding trusts" in wrong_pin.stderr
    assert right_pin.returncode == 0, right_pin.stderr


def test_refused_client_certificate_without_client_auth(pair):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(pair.out / "ca.pem"))
    ctx.load_cert_chain(pair.out / "no-client-auth.pem", pair.out / "no-client-auth.key")
    before = len(pair.proxy.handshake_failures)
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", pair.proxy.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /peers/v1/hello HTTP/1.1\r\nHost: x\r\n\r\n")
                if not tls.recv(100):
                    raise OSError("closed")
    deadline = time.monotonic() + 5
    while len(pair.proxy.handshake_failures) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "unsuitable certificate purpose" in " ".join(pair.proxy.handshake_failures[before:])


def test_refused_peer_matching_no_role_on_the_ra(pair):
    out = _peer_test(pair, "stranger-ra")
    assert out.returncode != 0 and "HTTP 403" in out.stderr and "matches no role" in out.stderr
    assert pair.ra.query("SELECT count(*) FROM pki_auditevent WHERE event_type = 'PEER_INCOMING_REFUSED'")[0][0] >= 1


def test_refused_disabled_binding_the_connector_shows_it_and_reconnects_once_active(pair):
    pair.stop_connector()
    try:
        _, out = pair.ca.manage_many(("keybind", "setstatus", "--name", "ra-link", "--status", "DISABLED"), PEER_TEST)
        assert out.returncode != 0 and "disabled" in out.stderr
        pair.start_connector()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ((state, tls_error),) = pair.ca.query("SELECT state, last_tls_error FROM peers_peerconnector "
                                                  "WHERE name = 'dmz-ra'")
            if "disabled" in tls_error:
                break
            time.sleep(0.1)
        assert state == "failing" and "disabled" in tls_error
    finally:
        pair.ca.manage("keybind", "setstatus", "--name", "ra-link", "--status", "ACTIVE")
        if pair.connector is None:
            pair.start_connector()
    # The failing connector keeps trying (with back-off) and connects once the binding is active again.
    pair.wait_connected()


def test_connector_killed_mid_request_loses_and_duplicates_nothing(pair, tmp_path):
    names = [f"kill{n}" for n in range(6)]
    results: dict[str, subprocess.CompletedProcess] = {}

    def enroll(cn):
        results[cn] = scepclient(tmp_path / cn, pair.scep_url("ra-devices"), cn, "s3cret")

    threads = [threading.Thread(target=enroll, args=(cn,)) for cn in names]
    for t in threads:
        t.start()
    # Kill the connector once it is carrying these requests (or right away if it is quicker than us).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not pair.ra.query(
            "SELECT 1 FROM peers_peerworkitem WHERE status = 'leased' AND requester = 'scep:ra-devices'"):
        time.sleep(0.01)
    import signal

    pair.stop_connector(signal.SIGKILL)
    pair.start_connector()
    for t in threads:
        t.join(200)
    failed = {cn: r.stdout + r.stderr for cn, r in results.items() if r.returncode != 0}
    assert not failed, f"{failed}\n{pair.logs('connector')}"
    for cn in names:
        serial = format(_cert(tmp_path / cn).serial_number, "x")
        # One certificate per device, and it is the one the device holds.
        assert pair.ca.query("SELECT serial FROM pki_certificate WHERE username = %s", (cn,)) == [(serial,)]
    reruns = pair.ca.query("SELECT count(*) FROM pki_auditevent WHERE event_type = 'PEER_REQUEST_CARRIED' "
                           "AND details->>'rerun' = 'true'")[0][0]
    attempts = pair.ra.query("SELECT max(attempts) FROM peers_peerworkitem WHERE requester = 'scep:ra-devices'")
    print(f"re-leased attempts max {attempts}, reruns on the CA {reruns}")


def test_refused_revoked_binding(pair):
    # Last: the binding's certificate stays revoked.
    pair.stop_connector()
    revoked, out = pair.ca.manage_many(("ca", "revokecert", "--caname", "ScepCA", "--serial", ids(pair)["link_serial"]),
                                       PEER_TEST)
    assert revoked.returncode == 0, revoked.stderr
    status = pair.ca.query("SELECT status FROM pki_certificate WHERE serial = %s", (ids(pair)["link_serial"],))
    assert status != [("ACTIVE",)], status
    assert out.returncode != 0 and "no valid certificate" in out.stderr, out.stderr
