"""/healthz, /readyz and /metrics: JSON for load balancers, no login, nothing secret, cheap; /metrics only for
PKI_METRICS_ALLOWED clients (as the trusted proxy forwards them), 404 for everyone else."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from cryptotokens import services as tokens
from pki.http.probes import ready_memo
from pki.models import CRL

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_readiness(settings):
    settings.PKI_READYZ_CACHE_SECONDS = 0
    ready_memo.clear()
    yield
    ready_memo.clear()


@pytest.fixture
def anonymous():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def offline_ca(ca_factory, soft_token_factory, actor):
    token = soft_token_factory("SecretHsmSlotName", auto_activate=False)
    tokens.activate(actor, token, "foo123")
    ca = ca_factory("IssuingCA", token=token, key_alias="very-private-alias")
    tokens.deactivate(actor, token)
    return ca


def test_healthz_is_liveness_without_the_database(anonymous, django_assert_num_queries):
    with django_assert_num_queries(0):
        r = anonymous.get("/healthz")
    assert (r.status_code, r["Content-Type"], r.json()) == (200, "application/json", {"status": "ok"})
    assert "Set-Cookie" not in r.headers and r["Cache-Control"] == "no-store"
    assert r["X-Content-Type-Options"] == "nosniff"


def test_readyz_reports_each_ca_by_name_and_code_only(anonymous, offline_ca, root_ca):
    CRL.objects.filter(ca=root_ca).delete()
    r = anonymous.get("/readyz")
    assert r.status_code == 200  # shared CA state does not take the replica out of the load balancer
    body = r.json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert {c["name"]: c["problems"] for c in body["cas"]} == {
        "IssuingCA": ["token_offline"], "TestRoot": ["crl_missing"]}
    text = r.content.decode()
    for secret in ("SecretHsmSlotName", "very-private-alias", str(offline_ca.crypto_token.token_id), "Activate"):
        assert secret not in text
    assert "Set-Cookie" not in r.headers


def test_readyz_ready(anonymous, root_ca):
    body = anonymous.get("/readyz").json()
    assert body == {"status": "ready", "database": "ok", "cas": [{"name": "TestRoot", "state": "ok", "problems": []}]}


def test_readyz_is_503_when_the_database_is_lost(anonymous, root_ca, monkeypatch, caplog):
    monkeypatch.setattr("pki.http.probes.connection.close", lambda: None)  # keep the test's own connection

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly\nsecret detail")

    monkeypatch.setattr("pki.services.health.local_cas", lost)
    r = anonymous.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "database": "unavailable"}
    assert "secret detail" not in r.content.decode() and "Traceback" not in r.content.decode()
    assert "Readiness: the database is unavailable" in caplog.text


def test_readyz_is_remembered_for_its_cache_seconds(anonymous, root_ca, settings):
    settings.PKI_READYZ_CACHE_SECONDS = 60
    anonymous.get("/readyz")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert anonymous.get("/readyz").status_code == 200
    assert len(queries) == 0  # twenty anonymous probes cost the database nothing


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_probes_take_get_only(anonymous, path, method):
    r = getattr(anonymous, method)(path)
    assert r.status_code == 405 and r["Allow"] == "GET, HEAD"


def test_probe_answers_any_host_name(root_ca):
    # A kubelet probes by the pod's address, which is in no ALLOWED_HOSTS.
    assert Client(HTTP_HOST="10.1.2.3:8000").get("/healthz").status_code == 200
    assert Client(HTTP_HOST="10.1.2.3:8000").get("/readyz").status_code == 200


# --- who may read /metrics -------------------------------------------------------------------------------

@pytest.mark.parametrize("remote, forwarded, trusted, allowed, expected", [
    ("127.0.0.1", None, [], ["127.0.0.1/32"], 200),                       # loopback, the default
    ("10.0.0.5", None, [], ["127.0.0.1/32"], 404),                        # anyone else
    ("10.0.0.5", None, [], ["10.0.0.0/24"], 200),                         # a monitoring network
    ("10.0.0.5", "127.0.0.1", [], ["127.0.0.1/32"], 404),                 # a forged header from an untrusted peer
    ("127.0.0.1", "203.0.113.9", ["127.0.0.1"], ["127.0.0.1/32"], 404),   # via the proxy: the real client counts
    ("127.0.0.1", "10.0.0.7", ["127.0.0.1"], ["10.0.0.0/24"], 200),
    ("127.0.0.1", None, [], [], 404),                                     # empty list: nobody
])
def test_metrics_access(settings, remote, forwarded, trusted, allowed, expected):
    settings.PKI_TRUSTED_PROXIES = trusted
    settings.PKI_METRICS_ALLOWED = allowed
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    r = Client(REMOTE_ADDR=remote).get("/metrics", **headers)
    assert r.status_code == expected
    if expected == 404:
        assert b"pki_" not in r.content
    else:
        assert r["Content-Type"].startswith("text/plain; version=0.0.4")
