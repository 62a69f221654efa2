"""``make run`` (scripts/serve.py) starts the CA's peer connector process (``manage.py peer run``) beside gunicorn
on a CA node, not on an RA or VA node; with no connector configured it idles at next to no cost, and it stops
with the rest. The compose file and the systemd units are checked in test_compose.py."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from peers.process import connector_argv, wants_connector
from tests.deploy.test_serving import ROOT, _makefile_run_line, serve
from tests.protocols.scep.live import free_port
from tests.support.environ import child_environ
from tests.support.procs import processes
from tests.support.served import stop_serve


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, True),                                                 # the default node role is ca
    ({"PKI_NODE_ROLE": "ca"}, True),
    ({"PKI_NODE_ROLE": " CA "}, True),
    ({"PKI_NODE_ROLE": "ra"}, False),                           # nothing on an RA or VA connects out
    ({"PKI_NODE_ROLE": "va"}, False),
    ({"PKI_NODE_ROLE": "ca", "PKI_PEER_CONNECTOR": "0"}, False),  # another host runs it
    ({"PKI_PEER_CONNECTOR": "off"}, False),
    ({"PKI_PEER_CONNECTOR": "1"}, True),
])
def test_serve_starts_the_connector_on_a_ca_node(environ, expected):
    assert wants_connector(environ) is expected


def test_the_connector_argv_is_manage_py_peer_run():
    from django.core.management import get_commands

    argv = connector_argv()
    assert argv[0] == sys.executable and argv[1:] == [str(ROOT / "manage.py"), "peer", "run"]
    assert get_commands()["peer"] == "peers"


def _children(pid: int) -> dict[int, str]:
    return {child: cmdline for child, fields, cmdline in processes() if int(fields[1]) == pid}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.multiprocess
@pytest.mark.xdist_group("serve")
def test_make_run_starts_an_idle_connector_and_stops_it(tmp_path, transactional_db):
    # transactional_db: make run's processes commit into this worker's test database (its scheduler's job rows), and
    # pytest-django empties the tables after a transactional test; a rolled-back `db` test left those rows to the
    # tests after it (tests/pki/test_scheduler.py's CRL job found its job not due).
    from urllib.parse import urlsplit

    from django.conf import settings

    assert serve.nginx_binary(), "nginx is not installed: scripts/install-test-deps.sh installs it"
    env = child_environ("DJANGO_SETTINGS", "PKI_NODE_ROLE", "PKI_PEER_CONNECTOR")
    # This test run's database, migrated already (make run's own SQLite migration is what test_scheduler's
    # make-run test pays for once).
    test_db = settings.DATABASES["default"]["NAME"]
    env.update({"DATABASE_URL": urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{test_db}").geturl(),
                "PKI_VAR_DIR": str(tmp_path / "var"), "PKI_MASTER_KEY": f"run-{secrets.token_urlsafe(24)}",
                "ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"})
    (tmp_path / "var").mkdir()
    port = free_port()
    run_dir = Path(tempfile.mkdtemp(prefix="pki-serve-"))
    run_dir.chmod(0o755)  # nginx's workers (nobody, when the tests run as root) must traverse it
    values = {"$(PY)": sys.executable, "$(HOST)": "127.0.0.1", "$(PORT)": str(port)}
    argv = [*(values.get(a, a) for a in _makefile_run_line()), "--run-dir", str(run_dir), "--tls-port", "0"]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-4000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.3)
        connectors = [pid for pid, cmd in _children(proc.pid).items() if cmd.endswith("manage.py peer run ")]
        assert len(connectors) == 1, (_children(proc.pid), log.read_text()[-4000:])
        pid = connectors[0]
        while "Peer connectors running." not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.2)
        # Idle without connectors: a look at the table now and then, no busy loop.
        before, start = _cpu_seconds(pid), time.monotonic()
        time.sleep(6)
        assert proc.poll() is None and Path(f"/proc/{pid}").exists(), log.read_text()[-4000:]
        idle = (_cpu_seconds(pid) - before) / (time.monotonic() - start)
        rss_kib = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS:")).split()[1])
        print(f"idle connector: {idle * 100:.2f}% of a CPU, {rss_kib // 1024} MiB resident")
        assert idle < 0.02, f"the idle connector used {idle:.1%} of a CPU"
    finally:
        stop_serve(proc, run_dir)  # and the connector stopped with the rest
    assert "connector: outgoing peer connectors run here" in log.read_text()
