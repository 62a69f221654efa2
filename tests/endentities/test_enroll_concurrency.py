"""One enrollment code, concurrent requests: exactly one certificate (PostgreSQL, real threads and commits)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from endentities.services import EnrollmentDenied, enroll
from endentities.services import enrollment as enrollment_module
from pki.errors import ConflictError
from pki.models import Certificate
from tests.support.environ import child_environ

from .entities_support import *  # noqa: F403  (the shared fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def _race(n: int, target) -> list[object]:
    """Run ``target(i)`` in ``n`` threads released together; each result is a return value or an exception."""
    start = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = target(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connections.close_all()  # this thread's connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_postgresql():
    assert connection.vendor == "postgresql"


def test_both_authenticated_before_either_stores(entity_factory, csr_factory, monkeypatch):
    """Both requests pass the code check before either commits: the row lock in the issuing transaction
    lets one store its certificate, the other's certificate rolls back with a ConflictError."""
    entity_factory("alice", password="foo123")
    csrs = [csr_factory("CN=alice")[0] for _ in range(2)]
    both_checked = threading.Barrier(2)
    real = enrollment_module.authenticate

    def authenticate_then_wait(*args, **kwargs):
        result = real(*args, **kwargs)
        both_checked.wait(timeout=30)  # neither goes on to issue until both hold a valid authentication
        return result

    monkeypatch.setattr(enrollment_module, "authenticate", authenticate_then_wait)
    results = _race(2, lambda i: enroll("alice", "foo123", csr=csrs[i], interface="rest"))
    issued = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(issued) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], ConflictError) and refused[0].http_status == 409
    assert Certificate.objects.filter(username="alice").count() == 1
    ee = EndEntity.objects.get(username="alice")
    assert (ee.status, ee.request_counter) == (EndEntityStatus.GENERATED, 0)


@pytest.mark.parametrize("threads", [2, 4])
def test_concurrent_same_code_one_certificate(entity_factory, csr_factory, threads):
    entity_factory("bob", password="foo123")
    csrs = [csr_factory("CN=bob")[0] for _ in range(threads)]
    results = _race(threads, lambda i: enroll("bob", "foo123", csr=csrs[i], interface="rest"))
    issued = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(issued) == 1, results
    assert all(isinstance(r, (ConflictError, EnrollmentDenied)) for r in refused), results
    assert Certificate.objects.filter(username="bob").count() == 1
    assert EndEntity.objects.get(username="bob").status == EndEntityStatus.GENERATED


def test_concurrent_wrong_codes_all_counted(ee_profile_factory, root_ca, entity_factory, csr_factory):
    """Failed-login increments are not lost under concurrency (row lock, no read-then-write)."""
    strict = ee_profile_factory("Strict", ca=root_ca, max_failed_logins_use=True, max_failed_logins=10)
    entity_factory("carol", password="foo123", profile=strict)
    csr, _ = csr_factory("CN=carol")
    results = _race(4, lambda i: enroll("carol", f"wrong{i}", csr=csr, interface="rest"))
    assert all(isinstance(r, EnrollmentDenied) for r in results)
    assert EndEntity.objects.get(username="carol").failed_login_count == 4


@pytest.mark.multiprocess
def test_same_code_through_two_gunicorn_workers(entity_factory, csr_factory, tmp_path):
    """End to end across processes: two REST pkcs10enroll calls with one code reach two gunicorn workers at
    once; the database lets exactly one certificate through."""
    import base64
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    from cryptography.hazmat.primitives.serialization import Encoding
    from django.contrib.auth import get_user_model

    from pki.choices import MemberMatch
    from pki.models import AccessRule, Role, RoleMember

    entity_factory("dora", password="foo123")
    get_user_model().objects.create_user("restadmin", password="pw-restadmin")
    # An enrolling client, not an RA editor: an editor re-enrolls the end entity every time (as EJBCA), which
    # is not what this test is about; the one-time code is.
    role = Role.objects.create(name="rest-enroller")
    AccessRule.objects.create(role=role, resource="/ca_functionality/create_certificate")
    AccessRule.objects.create(role=role, resource="/ca")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="restadmin")
    connections.close_all()  # committed (transaction=True): the gunicorn processes see the same rows

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = connection.settings_dict
    env = {**child_environ(), "LOG_LEVEL": "WARNING",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    from cryptotokens.secrets import master_key

    env["PKI_MASTER_KEY"] = master_key().decode()  # the key this process really uses (it may come from the file)
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "pki.wsgi",
                             "-c", "python:pki.gunicorn_conf", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                            cwd=Path(__file__).resolve().parents[2], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/ejbca/ejbca-rest-api/v1"
    auth = "Basic " + base64.b64encode(b"restadmin:pw-restadmin").decode()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/endentity/status", timeout=5)
                break
            except urllib.error.HTTPError:
                break  # answering (401 without credentials)
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)

        csrs = [csr_factory("CN=dora")[0].public_bytes(Encoding.PEM).decode() for _ in range(2)]

        def post(i: int):
            body = json.dumps({"certificate_request": csrs[i], "username": "dora", "password": "foo123"}).encode()
            req = urllib.request.Request(f"{base}/certificate/pkcs10enroll", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": auth})
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        statuses = sorted(_race(2, post))
        assert statuses[0] == 201 and statuses[1] in (403, 409), statuses
        assert Certificate.objects.filter(username="dora").count() == 1
        assert EndEntity.objects.get(username="dora").status == EndEntityStatus.GENERATED
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
