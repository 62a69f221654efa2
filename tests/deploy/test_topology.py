"""The scaled-out topology started by hand: two gunicorn processes and one Celery worker on ONE
PostgreSQL database and ONE Redis broker, like docker-compose.yml's web replicas and worker.

Both web processes serve the same CA, work queued through Celery is done by the worker and served by
both, and a change made through one web process is seen through the other. The processes get a
database of their own (created here, dropped at the end), so the pytest-django test database is
untouched and no ``db`` fixture is used. PostgreSQL comes from DATABASE_URL and Redis from
PKI_TEST_REDIS_URL (``make test`` starts both): when either does not answer, the test fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.environ import child_environ

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv running the tests (.venv/bin under make test)
CA = "ManagementCA"
REST = "/ejbca/ejbca-rest-api/v1"
START_SECONDS = 30
TASK_SECONDS = 60

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("topology")]


def _gunicorn_has_control_socket() -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == "control_socket" for setting in KNOWN_SETTINGS)


GUNICORN_HAS_CONTROL_SOCKET = _gunicorn_has_control_socket()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    handle: IO


class Topology:
    """The processes, their shared environment and their own database; ``close`` ends all of them."""

    def __init__(self, tmp: Path):
        import dj_database_url

        self.tmp = tmp
        self.processes: list[Process] = []
        self.redis_url = os.environ.get("PKI_TEST_REDIS_URL", "")
        assert self.redis_url, "PKI_TEST_REDIS_URL is not set: the topology test needs Redis (make test sets it)"
        self._check_redis()
        server_url = os.environ.get("DATABASE_URL", "")
        assert server_url.startswith("postgres"), "DATABASE_URL must name the PostgreSQL server (make test sets it)"
        self.db_name = f"pki_topology_{secrets.token_hex(4)}"
        server = dj_database_url.parse(server_url)
        self._admin_db = {"dbname": "postgres", "user": server["USER"], "password": server["PASSWORD"] or None,
                          "host": server["HOST"] or None, "port": server["PORT"] or None}
        self._sql(f'CREATE DATABASE "{self.db_name}"')
        self.admin_password = secrets.token_urlsafe(16)
        # A queue of this run's own: no stale task of an earlier run reaches this worker, and nothing
        # else in the broker's database is touched.
        self.queue = f"pki-topology-{secrets.token_hex(4)}"
        self.env = {
            **child_environ(),
            "DATABASE_URL": urlsplit(server_url)._replace(path=f"/{self.db_name}").geturl(),
            "REDIS_URL": self.redis_url,
            "PKI_MASTER_KEY": f"topology-{secrets.token_urlsafe(32)}",  # one key for every process
            "PKI_VAR_DIR": str(tmp / "var"),
            "PKI_ADMIN_USER": "admin",
            "PKI_ADMIN_PASSWORD": self.admin_password,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PKI_BEHIND_TLS_PROXY": "1",
            "PKI_TRUSTED_PROXIES": "127.0.0.1",
            "PKI_BASE_URL": "http://127.0.0.1",
            "DB_CONN_MAX_AGE": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.web: list[str] = []

    def _check_redis(self) -> None:
        import redis

        try:
            redis.Redis.from_url(self.redis_url, socket_timeout=5).ping()
        except Exception as exc:
            raise AssertionError(f"Redis at {self.redis_url} does not answer ({exc}): make test starts it") from None

    def _sql(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(**self._admin_db)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    # --- processes ---

    def manage(self, *args: str, timeout: float = 120) -> str:
        """``manage.py`` against the topology's database, as an operator (or the migrate service) runs it."""
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start(self, name: str, *argv: str) -> Process:
        log = self.tmp / f"{name}.log"
        handle = log.open("w")
        popen = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # its own process group: gunicorn's workers end with it
        process = Process(name, popen, log, handle)
        self.processes.append(process)
        return process

    def start_web(self, name: str) -> str:
        port = free_port()
        argv = [str(BIN / "gunicorn"), "pki.wsgi", "-c", "python:pki.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--threads", "2", "--access-logfile", "-"]
        if GUNICORN_HAS_CONTROL_SOCKET:  # one per process: the default path in $HOME would be shared
            argv += ["--control-socket", str(self.tmp / f"{name}.ctl")]
        self.start(name, *argv)
        base = f"http://127.0.0.1:{port}"
        self.web.append(base)
        return base

    def start_worker(self) -> None:
        self.start("worker", str(BIN / "celery"), "-A", "pki", "worker", "--pool", "solo", "--loglevel", "INFO",
                   "-Q", self.queue, "-n", f"{self.queue}@%h", "--without-gossip", "--without-mingle",
                   "--without-heartbeat")

    def check_running(self) -> None:
        for p in self.processes:
            if p.popen.poll() is not None:
                raise AssertionError(f"{p.name} exited with {p.popen.returncode}\n{self.logs()}")

    def wait_until_serving(self, base: str) -> None:
        """Up when it answers HTTP at all; whether the answer is right is for the test to say."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            self.check_running()
            try:
                urllib.request.urlopen(f"{base}/ca/{CA}.crt", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{base} did not answer within {START_SECONDS} s\n{self.logs()}")

    def logs(self, tail: int = 4000) -> str:
        parts = []
        for p in self.processes:
            p.handle.flush()
            text = p.log.read_text(errors="replace") if p.log.exists() else ""
            parts.append(f"----- {p.name} (pid {p.popen.pid}, exit {p.popen.poll()}) -----\n{text[-tail:]}")
        return "\n".join(parts)

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """Any failure inside carries the tails of every process's log."""
        try:
            yield
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}\n\nprocess logs:\n{self.logs()}") from exc

    def close(self) -> None:
        for p in self.processes:
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    # gunicorn: SIGINT is its quick shutdown; the Celery worker finishes no task here.
                    os.killpg(p.popen.pid, signal.SIGINT if p.name.startswith("web") else signal.SIGTERM)
        for p in self.processes:
            try:
                p.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(timeout=15)
            p.handle.close()
        self._sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    # --- HTTP ---

    def http(self, method: str, url: str, auth: bool = False) -> tuple[int, bytes]:
        request = urllib.request.Request(url, method=method)
        if auth:
            token = base64.b64encode(f"admin:{self.admin_password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get_ok(self, url: str, auth: bool = False, method: str = "GET") -> bytes:
        status, body = self.http(method, url, auth=auth)
        assert status == 200, f"{method} {url}: HTTP {status}: {body[:500]!r}"
        return body

    def get_json(self, url: str, method: str = "GET") -> dict:
        return json.loads(self.get_ok(url, auth=True, method=method))


@pytest.fixture(scope="module")
def topology(tmp_path_factory) -> Iterator[Topology]:
    topo = Topology(tmp_path_factory.mktemp("topology"))
    try:
        # What the migrate service does, once, before any other process starts.
        topo.manage("migrate", "--noinput", "-v0")
        topo.manage("init")
        for name in ("web1", "web2"):
            topo.start_web(name)
        topo.start_worker()
        for base in topo.web:
            topo.wait_until_serving(base)
        yield topo
    finally:
        topo.close()


@pytest.fixture(scope="module")
def ca_cert(topology, tmp_path_factory) -> x509.Certificate:
    """The ManagementCA certificate as the command line reads it from the database."""
    path = tmp_path_factory.mktemp("cacert") / "ca.pem"
    topology.manage("ca", "getcacert", "--caname", CA, "-f", str(path))
    return x509.load_pem_x509_certificate(path.read_bytes())


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def fetch_same_crl(topology: Topology, ca_cert: x509.Certificate) -> x509.CertificateRevocationList:
    """GET the CA's CRL from both web processes: the same bytes, a CRL the CA signed."""
    first, second = (topology.get_ok(f"{base}/crl/{CA}.crl") for base in topology.web)
    assert first == second, "the two web processes serve different CRLs"
    crl = x509.load_der_x509_crl(first)
    assert crl.issuer == ca_cert.subject
    assert crl.is_signature_valid(ca_cert.public_key()), "the CRL is not signed by the ManagementCA key"
    return crl


def test_both_web_processes_serve_the_same_ca(topology, ca_cert):
    with topology.explained():
        served = [topology.get_ok(f"{base}/ca/{CA}.crt") for base in topology.web]
        expected = ca_cert.public_bytes(serialization.Encoding.DER)
        assert served[0] == served[1] == expected


def test_work_queued_through_celery_is_done_by_the_worker_and_served_by_both(topology, ca_cert):
    from celery import Celery

    client = Celery("topology-client", broker=topology.redis_url, backend=topology.redis_url, set_as_current=False)
    try:
        with topology.explained():
            # init made the CA's first CRL; make it due (as a day's wait would) so the worker has one to renew.
            topology.manage("shell", "-c", "from django.utils import timezone; from pki.models import CRL; "
                                           "CRL.objects.update(next_update=timezone.now())")
            result = client.send_task("pki.tasks.regenerate_due_crls", queue=topology.queue)
            deadline = time.monotonic() + TASK_SECONDS
            while not result.ready():
                topology.check_running()
                assert time.monotonic() < deadline, f"the worker did not finish the task within {TASK_SECONDS} s"
                time.sleep(0.2)
            done = result.get(timeout=5)
            result.forget()
            renewed = [entry for entry in done if entry.startswith(f"{CA}#")]
            assert renewed, f"the task renewed no CRL of {CA}: {done}"
            crl = fetch_same_crl(topology, ca_cert)
            assert crl_number(crl) == int(renewed[0].split("#")[1].rstrip("Δ"))
    finally:
        client.close()


def test_a_change_through_one_web_process_is_seen_through_the_other(topology, ca_cert, tmp_path):
    web1, web2 = topology.web
    with topology.explained():
        # A certificate issued from the command line (another process on the same database) ...
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name.from_rfc4514_string("CN=topology.example.org")).sign(key, hashes.SHA256())
        (tmp_path / "req.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        topology.manage("ca", "issuecert", "--caname", CA, "--csr", str(tmp_path / "req.csr"), "--certprofile",
                        "SERVER", "-o", str(tmp_path / "leaf.pem"))
        leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
        serial = format(leaf.serial_number, "X")
        issuer = quote(ca_cert.subject.rfc4514_string(), safe="")
        certificate = f"{REST}/certificate/{issuer}/{serial}"
        # ... is known, unrevoked, to web2;
        assert topology.get_json(f"{web2}{certificate}/revocationstatus")["revoked"] is False
        # revoked through web1, web2 reports it revoked;
        topology.get_json(f"{web1}{certificate}/revoke?reason=KEY_COMPROMISE", method="PUT")
        status = topology.get_json(f"{web2}{certificate}/revocationstatus")
        assert status["revoked"] is True and status["revocation_reason"] == "KEY_COMPROMISE"
        # a CRL made through web2 lists it, and both web processes serve that CRL.
        status, body = topology.http("GET", f"{web1}/crl/{CA}.crl")
        before = crl_number(x509.load_der_x509_crl(body)) if status == 200 else 0
        topology.get_json(f"{web2}{REST}/ca/{issuer}/createcrl", method="POST")
        crl = fetch_same_crl(topology, ca_cert)
        assert crl_number(crl) > before
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
        assert entry is not None, "the revoked certificate is not on the new CRL"
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        assert reason == x509.ReasonFlags.key_compromise
