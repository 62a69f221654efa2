"""Forwarded client-certificate headers are believed only from the configured TLS proxy (issue 11, item 6).

Before: with ``PKI_BEHIND_TLS_PROXY=1`` and ``PKI_TRUSTED_PROXIES`` empty (the shipped default) the headers were
believed from any peer, so anyone who reached gunicorn directly could send ``X-SSL-Client-Verify: SUCCESS`` with
an administrator's (public) certificate. Now that configuration refuses to start, the shipped configurations
name the proxy, and the running stack (the real nginx configuration, the real application) ignores the
headers from any other peer.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "PKI_VAR_DIR": str(tmp_path / "var"),
            "PKI_MASTER_KEY": "trusted-proxies-test-key", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
            "PKI_BEHIND_TLS_PROXY": "1", **extra}


@pytest.mark.parametrize(("proxies", "starts"), [
    (None, False),
    ("", False),
    (" , ", False),
    ("nginx.internal", False),  # names are not resolved: an address or a network
    ("127.0.0.1", True),
    ("10.0.0.0/8, ::1", True),
])
def test_behind_a_proxy_the_settings_need_its_address(tmp_path, proxies, starts):
    env = _env(tmp_path, **({} if proxies is None else {"PKI_TRUSTED_PROXIES": proxies}))
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    if starts:
        assert out.returncode == 0, out.stderr[-2000:]
    else:
        assert out.returncode != 0
        assert "ImproperlyConfigured" in out.stderr and "PKI_TRUSTED_PROXIES" in out.stderr, out.stderr[-2000:]


def test_not_behind_a_proxy_nothing_is_needed(tmp_path):
    env = _env(tmp_path)
    env.pop("PKI_BEHIND_TLS_PROXY")
    assert subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          timeout=120).returncode == 0


def test_gunicorn_refuses_to_serve_without_the_proxy_address(tmp_path):
    """The server itself, as the systemd unit and compose run it: it exits with the reason instead of serving."""
    proc = subprocess.Popen([str(VENV_BIN / "gunicorn"), "pki.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"],
                            cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        pytest.fail("gunicorn kept running with PKI_BEHIND_TLS_PROXY=1 and no PKI_TRUSTED_PROXIES")
    assert proc.returncode != 0
    assert "PKI_TRUSTED_PROXIES" in output, output[-3000:]


# --- The shipped configurations name the proxy ----------------------------------------------------------

def test_compose_trusts_exactly_nginx_and_gives_it_that_address():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    nginx_address = services["nginx"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)
    for name in ("migrate", "web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["PKI_BEHIND_TLS_PROXY"] == "1"
        assert env["PKI_TRUSTED_PROXIES"] == nginx_address, name


@pytest.mark.parametrize("unit", ["pki-web", "pki-worker", "pki-beat"])
def test_systemd_units_trust_nginx_on_the_same_host(unit):
    text = (DEPLOY / "systemd" / f"{unit}.service").read_text()
    lines = text.splitlines()
    trusted = [i for i, line in enumerate(lines) if line == "Environment=PKI_TRUSTED_PROXIES=127.0.0.1"]
    env_file = [i for i, line in enumerate(lines) if line.startswith("EnvironmentFile=")]
    # Before the file: a value in /etc/pki/pki.env (nginx elsewhere) overrides it.
    assert trusted and env_file and trusted[0] < env_file[0]
    assert re.search(r"--bind 127\.0\.0\.1:", text) or unit != "pki-web"


def test_env_example_and_docs_name_the_setting():
    assert "PKI_TRUSTED_PROXIES=127.0.0.1" in (DEPLOY / "pki.env.example").read_text()
    assert "PKI_TRUSTED_PROXIES=127.0.0.1" in (DEPLOY / "README.md").read_text()
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| `PKI_TRUSTED_PROXIES`"))
    assert "any peer" not in row and "refuses to start" in row

