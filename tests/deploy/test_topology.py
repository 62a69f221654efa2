"""The scaled-out topology started by hand: two gunicorn processes and one Celery worker on one
PostgreSQL database and one Redis broker. Both web processes serve the same CA, see each other's
changes, and work queued through Celery is done by the worker.

Needs PostgreSQL and Redis (``make test`` starts them); it fails, never skips, when they are missing.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("topology")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Topology:
    def __init__(self, tmp: Path):
        import psycopg2

        self.tmp = tmp
        self.db = f"pki_topology_{secrets.token_hex(4)}"
        self.admin_password = secrets.token_urlsafe(12)
        redis_url = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        self._check_redis(redis_url)
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.db}"')
        conn.close()
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.db}",
            "REDIS_URL": redis_url,
            "PKI_MASTER_KEY": "topology-" + secrets.token_hex(16),
            "PKI_VAR_DIR": str(tmp / "var"),
            "PKI_ADMIN_PASSWORD": self.admin_password,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DB_CONN_MAX_AGE": "0",
        }
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    @staticmethod
    def _check_redis(url: str) -> None:
        import redis

        client = redis.Redis.from_url(url)
        try:
            client.ping()
        except Exception as exc:
            raise AssertionError(f"Redis at {url} does not answer ({exc}); make test starts it") from None
        client.flushdb()  # stale tasks of an earlier run must not reach this worker

    def manage(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    def start(self, name: str, *cmd: str) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        fh = log.open("w")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{log.read_text()[-3000:]}" for name, _, log in self.procs)

    def stop(self) -> None:
        import psycopg2

        for _, proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        conn.close()


def _get(url: str, auth: str | None = None, method: str = "GET") -> bytes:
    req = urllib.request.Request(url, method=method)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback test servers)
        return resp.read()


def _wait_http(url: str, topo: Topology, seconds: float = 40) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _get(url)
            return
        except Exception:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds}s\n{topo.logs()}")


@pytest.fixture
def topology(tmp_path):
    topo = Topology(tmp_path)
    try:
        topo.manage("migrate", "--noinput", "-v0")
        topo.manage("init")
        topo.ports = [_free_port(), _free_port()]
        for i, port in enumerate(topo.ports):
            topo.start(f"web{i + 1}", str(VENV_BIN / "gunicorn"), "pki.wsgi", "--bind", f"127.0.0.1:{port}",
                       "--workers", "1", "--threads", "2")
        topo.start("worker", str(VENV_BIN / "celery"), "-A", "pki", "worker", "--pool", "solo", "--loglevel", "INFO",
                   "--without-gossip", "--without-mingle")
        for port in topo.ports:
            _wait_http(f"http://127.0.0.1:{port}/ca/ManagementCA.crt", topo)
        yield topo
    finally:
        topo.stop()


def test_two_web_processes_and_a_worker_share_one_ca(topology, tmp_path):
    web1, web2 = (f"http://127.0.0.1:{p}" for p in topology.ports)
    # a) both web processes serve the same CA certificate, the one the CLI reads from the database
    expected_pem = tmp_path / "ca.pem"
    topology.manage("ca", "getcacert", "--caname", "ManagementCA", "-f", str(expected_pem))
    expected = x509.load_pem_x509_certificate(expected_pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert _get(f"{web1}/ca/ManagementCA.crt") == _get(f"{web2}/ca/ManagementCA.crt") == expected

    # b) work queued through the broker is done by the worker, and both web processes serve its result
    from celery import Celery

    client = Celery(broker=topology.env["REDIS_URL"], backend=topology.env["REDIS_URL"])
    result = client.send_task("pki.tasks.regenerate_due_crls")
    try:
        done = result.get(timeout=60)
    except Exception as exc:
        raise AssertionError(f"the worker did not run the task: {exc}\n{topology.logs()}") from None
    assert "ManagementCA#1" in done
    crl1, crl2 = _get(f"{web1}/crl/ManagementCA.crl"), _get(f"{web2}/crl/ManagementCA.crl")
    assert crl1 == crl2
    ca_cert = x509.load_der_x509_certificate(expected)
    assert x509.load_der_x509_crl(crl1).is_signature_valid(ca_cert.public_key())

    # c) a change made through one web process is seen by the other
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string("CN=topology.example.com")).sign(key, __import__(
            "cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256())
    (tmp_path / "req.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    topology.manage("ca", "issuecert", "--caname", "ManagementCA", "--csr", str(tmp_path / "req.csr"),
                    "--certprofile", "SERVER", "-o", str(tmp_path / "leaf.pem"))
    serial = format(x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes()).serial_number, "X")
    auth = f"admin:{topology.admin_password}"
    issuer = quote(ca_cert.subject.rfc4514_string(), safe="")
    base = "/ejbca/ejbca-rest-api/v1/certificate"
    _get(f"{web1}{base}/{issuer}/{serial}/revoke?reason=KEY_COMPROMISE", auth=auth, method="PUT")
    import json

    status = json.loads(_get(f"{web2}{base}/{issuer}/{serial}/revocationstatus", auth=auth))
    assert status["revoked"] is True and status["revocation_reason"] == "KEY_COMPROMISE"
    created = json.loads(_get(f"{web2}/ejbca/ejbca-rest-api/v1/ca/ManagementCA/createcrl", auth=auth,
                              method="POST"))
    assert created["latest_crl_version"] == 2
    latest = x509.load_der_x509_crl(_get(f"{web1}/crl/ManagementCA.crl"))
    assert latest.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
