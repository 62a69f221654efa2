"""docker-compose.yml and deploy/: everything the files point at exists in the project.

Docker does not run on this machine (no engine, no compose plugin), so the compose file is checked as
data: a YAML walk that checks commands, settings and mounted files against the project.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PKI_SERVICES = ["migrate", "web", "worker", "beat"]


def _settings_env_names() -> set[str]:
    """Environment variables pki reads: settings, the master key, the bootstrap."""
    text = "".join((ROOT / p).read_text() for p in ("pki/settings.py", "cryptotokens/secrets.py", "pki/bootstrap.py"))
    names = set(re.findall(r'environ(?:\.get)?\(\s*"([A-Z0-9_]+)"', text))
    names |= set(re.findall(r'environ\["([A-Z0-9_]+)"\]', text))
    names |= set(re.findall(r'_flag\("([A-Z0-9_]+)"', text))
    return names


def test_topology_services():
    assert {"postgres", "redis", "web", "worker", "beat", "nginx", "migrate"} <= set(SERVICES)
    assert SERVICES["web"]["deploy"]["replicas"] == 2
    for name, service in SERVICES.items():
        for dep in service.get("depends_on", {}):
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
    assert SERVICES["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", PKI_SERVICES)
def test_pki_services_run_real_commands(name):
    from django.core.management import get_commands

    service = SERVICES[name]
    assert service["build"] == "." and (ROOT / "Dockerfile").exists()
    command = service["command"]
    joined = " ".join(command)
    if command[0] == "gunicorn":
        import importlib

        module, _, attr = command[1].partition(":")
        assert hasattr(importlib.import_module(module), attr or "application")
    elif command[0] == "celery":
        from pki.celery import app

        assert command[1:3] == ["-A", "pki"] and app.main == "pki"
        assert command[3] in {"worker", "beat"}
        if command[3] == "beat":
            from django.conf import settings

            assert "regenerate-crls" in settings.CELERY_BEAT_SCHEDULE
    else:
        for cmd in re.findall(r"manage\.py (\w+)", joined):
            assert cmd in get_commands(), f"{name}: manage.py {cmd} does not exist"


@pytest.mark.parametrize("name", PKI_SERVICES)
def test_environment_names_are_read_by_settings(name):
    known = _settings_env_names()
    env = SERVICES[name]["environment"]
    unknown = set(env) - known
    assert not unknown, f"{name} sets variables pki does not read: {unknown}"
    assert "PKI_MASTER_KEY" not in env, "the master key must come from the env file, not the compose file"
    assert SERVICES[name]["env_file"] == "./deploy/pki.env"
    example = (ROOT / "deploy" / "pki.env.example").read_text()
    for line in example.splitlines():
        if line and not line.startswith("#"):
            assert line.split("=", 1)[0] in known


def test_mounted_files_exist():
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                path = ROOT / source
                # deploy/tls holds the operator's own certificates and keys: not in the repository
                assert path.exists() or source == "./deploy/tls", f"{name} mounts missing {source}"


def test_nginx_config():
    conf = (ROOT / "deploy" / "nginx" / "pki.conf").read_text()
    assert re.search(r"server web:8000;", conf)
    assert "proxy_pass http://pki_web;" in conf
    protocols = re.search(r"ssl_protocols ([^;]+);", conf).group(1).split()
    assert protocols == ["TLSv1.2", "TLSv1.3"]
    assert "Strict-Transport-Security" in conf
    # plain HTTP serves only what devices fetch over HTTP; everything else is redirected
    assert re.search(r"location ~ \^/\(crl/\|ca/\|ejbca/publicweb/\)", conf)
    assert "return 301 https://$host$request_uri;" in conf
    assert conf.count("{") == conf.count("}")


@pytest.mark.parametrize("unit", ["pki-web.service", "pki-worker.service", "pki-beat.service"])
def test_systemd_units(unit):
    text = (ROOT / "deploy" / "systemd" / unit).read_text()
    assert "EnvironmentFile=/etc/pki/pki.env" in text
    exec_start = re.search(r"ExecStart=(\S+)", text).group(1)
    assert exec_start.startswith("/opt/pki/.venv/bin/")
    assert Path(exec_start).name in {"gunicorn", "celery"}
