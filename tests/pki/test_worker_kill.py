"""A gunicorn worker killed (SIGKILL) in the middle of a SCEP enrollment load on PostgreSQL leaves no partial
rows: every certificate has its end entity and its CERT_CREATION event, every RA-created end entity has its
certificate, the audit chain verifies, and the server goes on answering (gunicorn starts a new worker)."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocols.scep.messages import PkiStatus
from protocols.scep.messages import client as scep_client
from tests.protocols.scep.live import RA_SECRET, LiveScepServer
from tests.protocols.scep.server_fixtures import client_key, make_csr, self_signed

pytestmark = pytest.mark.multiprocess

REQUESTS = 40


def _workers(master: int) -> list[int]:
    """PIDs of the gunicorn workers of ``master`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            out.append(int(stat.parent.name))
    return out


def test_killed_worker_leaves_no_partial_rows(tmp_path):
    with LiveScepServer(tmp_path, workers=2, threads=4) as srv:
        url = srv.url("ra-devices")
        der = urllib.request.urlopen(url + "?operation=GetCACert", timeout=10).read()  # noqa: S310
        from cryptography import x509

        ca = x509.load_der_x509_certificate(der)
        messages = []
        for i in range(REQUESTS):
            key = client_key(100 + i)
            csr = make_csr(key, f"CN=kill-{i:03d},O=Test", RA_SECRET)
            signer = self_signed(key, f"kill-{i}")
            messages.append((scep_client.build_pkcs_req(csr, signer, key, ca), key, signer))

        killed = threading.Event()
        outcomes: list[str] = []

        def enroll(item) -> str:
            request, key, signer = item
            try:
                req = urllib.request.Request(url + "?operation=PKIOperation", data=request.data,
                                             headers={"Content-Type": "application/x-pki-message"})
                body = urllib.request.urlopen(req, timeout=60).read()  # noqa: S310
            except Exception as exc:  # noqa: BLE001 - a connection cut by the kill is an expected outcome
                return f"error {type(exc).__name__}"
            return scep_client.parse_cert_rep(body, key, signer, ca_certs=[ca]).status.name

        def killer() -> None:
            while len(outcomes) < REQUESTS // 4:
                time.sleep(0.05)
            victims = _workers(srv.process.pid)
            assert victims, "no gunicorn worker found"
            os.kill(victims[0], signal.SIGKILL)
            killed.set()

        thread = threading.Thread(target=killer)
        thread.start()
        with ThreadPoolExecutor(8) as pool:
            for outcome in pool.map(enroll, messages):
                outcomes.append(outcome)
        thread.join(30)
        assert killed.is_set()
        assert outcomes.count(PkiStatus.SUCCESS.name) >= REQUESTS // 4, outcomes

        # The server answers again (a new worker took the killed one's place).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                assert urllib.request.urlopen(url + "?operation=GetCACaps", timeout=5).status == 200  # noqa: S310
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the server did not recover")

        certs = {u for (u,) in srv.query("SELECT username FROM pki_certificate WHERE username LIKE 'kill-%%'")}
        entities = dict(srv.query("SELECT username, status FROM endentities_endentity WHERE username LIKE 'kill-%%'"))
        assert len(certs) >= outcomes.count(PkiStatus.SUCCESS.name)
        assert certs == set(entities), "an end entity without its certificate, or the reverse"
        assert set(entities.values()) == {40}  # GENERATED
        out = srv.manage("audit", "verify")
        assert "OK" in out, out
