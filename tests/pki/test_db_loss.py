"""Database loss answers 503 + Retry-After, never 500 or a permanent-looking 400 (issue 12 item 5).

In-process: each kind of client (REST, SCEP, UI) gets its own 503 body, a request that failed before sending
anything is run once more, one that may have written is not. Live: gunicorn on PostgreSQL whose sessions are
terminated under load answers only 2xx or 503 and recovers without a restart; pointed at a port where nothing
listens it answers 503 everywhere.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
from django.db import OperationalError, connection

from tests.pki.test_api_auth import make_client

V1 = "/ejbca/ejbca-rest-api/v1"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def keep_test_connection(monkeypatch):
    """The middleware drops the failed connection; inside a test's transaction that would end the test's too."""
    monkeypatch.setattr("pki.dbhealth._drop_connections", lambda: None)


def _failing(statements: list[str], times: int, result=None):
    """A stand-in that sends ``statements`` and then fails as a lost connection does, ``times`` times."""
    calls = []

    def run(*args, **kwargs):
        calls.append(1)
        with connection.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        if len(calls) <= times:
            raise OperationalError("server closed the connection unexpectedly")
        return result if result is not None else []

    run.calls = calls
    return run


class _LostConnection:
    """Fails the first ``times`` statements that contain ``target`` as a dead connection does: before they reach
    the server (installed outside the middleware, so its own watcher never sees them)."""

    def __init__(self, target: str, times: int):
        self.target, self.left, self.seen = target, times, []

    def __call__(self, execute, sql, params, many, context):
        self.seen.append(sql)
        if self.left and self.target in sql:
            self.left -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


@pytest.fixture
def rest(db):
    client = make_client("dbloss", ["/"])
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    ("target", "times", "status", "runs"),
    [
        ("", 1, 200, 2),  # the request's first statement found the connection dead: run again, answered normally
        ("auth_user", 1, 200, 2),  # only reads before it: nothing to do twice
        ("", 2, 503, 2),  # failed again on the new connection: 503
        ("pki_trustedoauthprovider", 1, 503, 1),  # after the credential check's writes: never run twice
    ],
)
def test_rest_retries_only_what_cannot_run_twice(rest, keep_test_connection, monkeypatch, caplog, target, times,
                                                 status, runs):
    from pki.api import oauth

    views_run = []
    original = oauth.oauth_services.list_providers
    monkeypatch.setattr(oauth.oauth_services, "list_providers", lambda actor: views_run.append(1) or original(actor))
    lost = _LostConnection(target, times)
    with connection.execute_wrapper(lost):
        r = rest.get("/api/v1/oauth-providers/")
    assert r.status_code == status, r.content
    assert lost.left == 0
    assert sum("retrying once" in m for m in caplog.messages) == runs - 1
    if status == 200:
        assert views_run == [1] and r.json() == []
    else:
        assert r.json() == {"error_code": 503, "error_message": "The database is unavailable; try again later."}
        assert int(r["Retry-After"]) > 0


def test_scep_alias_cache_read_is_503_plain_text(db, client, keep_test_connection, monkeypatch):
    """The alias read runs before the view's catch-all: it was an HTML 500."""
    client.raise_request_exception = False
    monkeypatch.setattr("protocols.scep.aliascache.get_alias", _failing(["SELECT 1", "SELECT 1"], 9))
    r = client.get("/ejbca/publicweb/apply/scep/pkiclient.exe?operation=GetCACaps")
    assert r.status_code == 503 and r["Content-Type"].startswith("text/plain") and r["Retry-After"]
    assert b"<html" not in r.content.lower() and b"Traceback" not in r.content


def test_scep_failure_inside_the_operation_is_503_not_400(db, client, keep_test_connection, monkeypatch):
    """An OperationalError in the audit append was answered "400 Can not handle request.": devices give up."""
    from types import SimpleNamespace

    from protocols.scep import views

    client.raise_request_exception = False
    monkeypatch.setattr(views, "_alias", lambda name: SimpleNamespace(name="scep", max_body_size=65536))
    monkeypatch.setitem(views.GET_OPERATIONS, "GetCACaps", _failing(["SELECT 1", "SELECT 1"], 9))
    r = client.get("/scep/pkiclient.exe?operation=GetCACaps")
    assert r.status_code == 503 and r.content == b"The database is unavailable; try again later."


def test_ui_page_is_a_plain_503_page(db, keep_test_connection, monkeypatch):
    from tests.pki.test_views_auth import ui_client

    ui = ui_client("dblossui", ["/"])
    ui.raise_request_exception = False
    monkeypatch.setattr("pki.views.audit.audit.verify_chain", _failing(["SELECT 1", "SELECT 1"], 9))
    r = ui.get("/audit/?verify=1")
    assert r.status_code == 503 and r["Content-Type"].startswith("text/html") and r["Retry-After"]
    assert b"Service unavailable" in r.content and b"Traceback" not in r.content


# --- live: gunicorn on PostgreSQL --------------------------------------------------------------------------------

ENDPOINTS = {
    "scep caps": "/ejbca/publicweb/apply/scep/pkiclient.exe?operation=GetCACaps",
    "scep cacert": "/scep/scep/pkiclient.exe?operation=GetCACert",
    "ca download": "/ca/ScepCA.crt",
    "ui login": "/login/",
}


def _get(base: str, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(base + path, headers={"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345",
                                                           **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture
def live_server_pg(tmp_path):
    from tests.protocols.scep.live import LiveScepServer

    with LiveScepServer(tmp_path, workers=2, threads=4) as server:
        yield server


def _terminate_sessions(server) -> int:
    import psycopg2

    conn = psycopg2.connect(**server._admin)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (server.db_name,))
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.mark.multiprocess
def test_sessions_terminated_under_load_give_only_2xx_or_503_then_recover(live_server_pg):
    server = live_server_pg
    statuses: Counter = Counter()
    bad: list = []
    stop = threading.Event()

    def load(name: str, path: str) -> None:
        while not stop.is_set():
            status, body, headers = _get(server.base, path)
            statuses[(name, status)] += 1
            if not (200 <= status < 300 or status == 503):
                bad.append((name, status, body[:200]))
            elif status == 503 and not headers.get("Retry-After"):
                bad.append((name, "503 without Retry-After"))

    workers = [threading.Thread(target=load, args=item) for item in ENDPOINTS.items()]
    for t in workers:
        t.start()
    terminated = 0
    try:
        for _ in range(6):
            time.sleep(0.7)
            terminated += _terminate_sessions(server)
    finally:
        time.sleep(0.5)
        stop.set()
        for t in workers:
            t.join(timeout=60)
    assert terminated > 0, "no server session was terminated: the test proved nothing"
    assert not bad, (bad[:10], server.logs())
    assert sum(n for (_, s), n in statuses.items() if 200 <= s < 300) > 20
    # Recovered without a restart: every endpoint answers normally again.
    for name, path in ENDPOINTS.items():
        assert _get(server.base, path)[0] == 200, name
    assert "Traceback" not in server.logs() or "answered 503" in server.logs() or "retrying once" in server.logs()


@pytest.mark.multiprocess
def test_database_refusing_connections_is_503_for_every_kind_of_client(tmp_path):
    """Pointed at a port where nothing listens: 503 with each client's body type, never 500."""
    import os
    import signal
    import subprocess

    from tests.protocols.scep.live import ROOT, LiveScepServer, free_port

    server = LiveScepServer(tmp_path)
    dead = free_port()
    server.env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{dead}/nothing"
    port = free_port()
    log = (tmp_path / "g.log").open("w")
    process = subprocess.Popen(server.command(port), cwd=ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base, "/login/")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp_path / "g.log").read_text()) from None
                time.sleep(0.2)
        cases = [
            (ENDPOINTS["scep caps"], {}, "text/plain"),
            (ENDPOINTS["scep cacert"], {}, "text/plain"),
            (f"{V1}/ca", {"Authorization": "Basic YWRtaW46eA=="}, "application/json"),
            ("/api/v1/oauth-providers/", {"Authorization": "Basic YWRtaW46eA=="}, "application/json"),
            ("/audit/", {}, "text/html"),
            (ENDPOINTS["ca download"], {}, None),
        ]
        for path, headers, content_type in cases:
            status, body, got = _get(base, path, headers)
            assert status == 503, (path, status, body[:300])
            assert got.get("Retry-After") and b"Traceback" not in body
            if content_type:
                assert got["Content-Type"].startswith(content_type), (path, got["Content-Type"])
    finally:
        os.killpg(process.pid, signal.SIGINT)
        # gunicorn stops in seconds; under the whole suite's load once took longer than 15 s (as stop_serve: 40).
        process.wait(timeout=40)
        log.close()
