"""docker-compose.yml, the Dockerfile and deploy/: everything they name exists in the project.

The compose file is checked as data (PyYAML): every service's image or build, every command against
the project's real entry points (pki.wsgi, the Celery app, manage.py commands), every environment
variable against what pki reads, every mounted file. Where a Compose v2 command line is installed,
``docker compose config`` checks it as well; without a Docker engine that is the only part of Docker
these tests use.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
PKI_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
UNITS = sorted(p.name for p in (DEPLOY / "systemd").glob("*.service"))
# Files the modules that pki's settings delegate to read their variables from: the settings, the
# master key (cryptotokens.secrets) and the first-start bootstrap (manage.py init).
ENV_SOURCES = ["pki/settings.py", "cryptotokens/secrets.py", "pki/bootstrap.py"]
# Supplied by the operator on the host (certificates and keys): not in the repository.
OPERATOR_FILES = {"./deploy/tls"}


def environment_names_read_by_pki() -> set[str]:
    """Every name read through os.environ.get/[]/getenv or the settings' ``_flag`` in ENV_SOURCES."""
    names: set[str] = set()
    for source in ENV_SOURCES:
        for node in ast.walk(ast.parse((ROOT / source).read_text())):
            key = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
                if (called == "get" and owner == "os.environ") or called in {"getenv", "_flag"}:
                    key = node.args[0].value
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                key = getattr(node.slice, "value", None)
            if isinstance(key, str):
                names.add(key)
    return names


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def env_file_entries(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def check_pki_command(argv: list[str]) -> None:
    """Fail unless ``argv`` runs one of the project's own entry points with its real names."""
    program = Path(argv[0]).name
    if program == "sh":
        assert argv[1] == "-c", argv
        for part in argv[2].split("&&"):
            check_pki_command(shlex.split(part))
    elif program.startswith("python"):
        assert argv[1] == "manage.py" and (ROOT / "manage.py").exists(), argv
        from django.core.management import get_commands

        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif program == "gunicorn":
        target = next(a for a in argv[1:] if not a.startswith("-"))
        module, _, attribute = target.partition(":")
        application = getattr(importlib.import_module(module), attribute or "application", None)
        assert callable(application), f"gunicorn {target}: no WSGI application there"
        bind = argv[argv.index("--bind") + 1]
        assert re.fullmatch(r"[\w.]+:\d+", bind), bind
    elif program == "celery":
        assert argv[1:3] == ["-A", "pki"], argv
        from celery import Celery

        app = importlib.import_module("pki.celery").app  # where `celery -A pki` finds the application
        assert isinstance(app, Celery) and app.main == "pki"
        assert argv[3] in {"worker", "beat"}, argv
        if argv[3] == "beat":
            app.loader.import_default_modules()
            for name, entry in app.conf.beat_schedule.items():
                assert entry["task"] in app.tasks, f"beat schedule {name}: no task {entry['task']}"
    else:
        raise AssertionError(f"unknown program {argv[0]!r}")


# --- docker-compose.yml ------------------------------------------------------------------------------


def test_every_process_of_the_topology_is_there():
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "worker", "beat", "connector", "nginx"}
    assert PKI_SERVICES == ["beat", "connector", "migrate", "web", "worker"]
    assert SERVICES["web"]["deploy"]["replicas"] == 2
    # One beat: a second one would queue every scheduled CRL renewal twice.
    assert SERVICES["beat"].get("deploy", {}).get("replicas", 1) == 1
    assert SERVICES["migrate"]["restart"] == "no"
    assert set(COMPOSE.get("volumes", {})) == {"pgdata"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_or_build_exists(name):
    service = SERVICES[name]
    if "build" in service:
        context = ROOT / service["build"]
        assert context.is_dir() and (context / "Dockerfile").is_file()
    else:
        # Official images pinned to a major version, never "latest".
        assert re.fullmatch(r"(postgres|redis|nginx):\d+(\.\d+)*", service["image"]), service["image"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_names_services_and_waits_for_the_right_state(name):
    depends_on = SERVICES[name].get("depends_on", {})
    for target, spec in depends_on.items():
        assert target in SERVICES, f"{name} depends on unknown service {target}"
        condition = spec["condition"]
        assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy: it has no healthcheck"
    if name in {"web", "worker", "beat", "connector"}:
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
    if name == "migrate":
        assert depends_on["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", PKI_SERVICES)
def test_command_runs_a_program_of_the_project(name):
    check_pki_command(SERVICES[name]["command"])


def test_the_services_run_gunicorn_migrate_init_worker_and_beat():
    assert SERVICES["web"]["command"][:2] == ["gunicorn", "pki.wsgi"]
    assert SERVICES["worker"]["command"][:4] == ["celery", "-A", "pki", "worker"]
    assert SERVICES["beat"]["command"][:4] == ["celery", "-A", "pki", "beat"]
    assert SERVICES["connector"]["command"] == ["python", "manage.py", "peer", "run"]
    script = SERVICES["migrate"]["command"][-1]
    assert re.fullmatch(r"python manage\.py migrate( --noinput)? && python manage\.py init", script), script


@pytest.mark.parametrize("name", PKI_SERVICES)
def test_environment_names_are_read_by_pki(name):
    known = environment_names_read_by_pki()
    assert {"DATABASE_URL", "REDIS_URL", "PKI_MASTER_KEY", "ALLOWED_HOSTS", "PKI_BEHIND_TLS_PROXY",
            "PKI_BASE_URL", "DEBUG"} <= known, "the settings no longer read a variable the deployment relies on"
    env = environment(SERVICES[name])
    unknown = set(env) - known
    assert not unknown, f"{name} sets variables pki does not read: {sorted(unknown)}"
    assert {"DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "PKI_BASE_URL"} <= set(env)
    assert env["PKI_BEHIND_TLS_PROXY"] == "1"
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env.get("DEBUG", "0") in {"0", "false", ""}


@pytest.mark.parametrize("name", PKI_SERVICES)
def test_master_key_comes_from_the_env_file_and_is_the_same_everywhere(name):
    service = SERVICES[name]
    assert "PKI_MASTER_KEY" not in environment(service), "never a key in docker-compose.yml"
    assert service["env_file"] == "./deploy/pki.env"
    # One shared block: every process gets the same environment, so the same master key.
    reference = SERVICES["web"]
    assert environment(service) == environment(reference) and service["env_file"] == reference["env_file"]


def test_env_file_example_names_only_what_pki_reads():
    example = env_file_entries(DEPLOY / "pki.env.example")
    assert set(example) <= environment_names_read_by_pki(), set(example) - environment_names_read_by_pki()
    # Left empty: the containers refuse to start until the operator puts a key there.
    assert example["PKI_MASTER_KEY"] == ""


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if s.get("volumes")))
def test_mounted_files_exist(name):
    for volume in SERVICES[name]["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("."):
            assert source.startswith("./deploy/"), f"{name} mounts {source} from outside deploy/"
            assert (ROOT / source).exists() or source in OPERATOR_FILES, f"{name} mounts missing {source}"
        else:
            assert source in COMPOSE["volumes"], f"{name} mounts undeclared volume {source}"


def test_nginx_answers_ocsp_on_both_ports():
    conf = (DEPLOY / "nginx" / "pki.conf").read_text()
    routes = re.findall(r"location ~ (\S+) \{\s*proxy_pass http://pki_web;", conf)
    route = re.compile(next(r for r in routes if "ocsp" in r))
    assert sum("ocsp" in r for r in routes) == 2  # :80 (the AIA's plain-HTTP URL) and :443
    for path in ("/ocsp", "/ocsp/MEIwQDA+MDwwCQYFKw4DAhoFAAQU", "/ejbca/publicweb/status/ocsp",
                 "/ejbca/publicweb/status/ocsp/a/b+c=="):
        assert route.fullmatch(path), path
    for path in ("/ocspx", "/ocsp/", "/ejbca/publicweb/apply/scep/pkiclient.exe", "/crl/x.crl"):
        assert not route.fullmatch(path), path


def test_nginx_config_proxies_to_the_web_service():
    conf = (DEPLOY / "nginx" / "pki.conf").read_text()
    mount = next(v for v in SERVICES["nginx"]["volumes"] if v.startswith("./deploy/nginx/pki.conf:"))
    assert mount.split(":")[1].startswith("/etc/nginx/conf.d/")
    web_port = SERVICES["web"]["command"][SERVICES["web"]["command"].index("--bind") + 1].rsplit(":", 1)[1]
    upstream = re.search(r"upstream (\w+) \{([^}]*)\}", conf)
    assert re.search(rf"^\s*server web:{web_port};", upstream.group(2), re.M), "upstream is not the web service"
    assert conf.count(f"proxy_pass http://{upstream.group(1)};") == 4  # each port: OCSP and the rest
    protocols = set(re.search(r"ssl_protocols ([^;]+);", conf).group(1).split())
    assert protocols == {"TLSv1.2", "TLSv1.3"}
    assert "Strict-Transport-Security" in conf
    assert "ssl_verify_client optional;" in conf
    assert "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;" in conf
    assert "proxy_set_header X-Forwarded-Proto https;" in conf
    assert re.search(r"client_max_body_size \d+[km];", conf)


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    """``docker compose`` (or a standalone ``docker-compose``) of Compose v2; ``config`` needs no engine."""
    for argv in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(argv[0]):
            continue
        out = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip().lstrip("v").startswith("2."):
            return argv
    pytest.skip("no Compose v2 command line here (`docker compose version` fails): the YAML checks above stand in")


def test_docker_compose_config_accepts_the_file(compose_cli, tmp_path):
    # A copy of the project files compose reads, with the operator's env file made from the example.
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / "Dockerfile", tmp_path)
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    example = (DEPLOY / "pki.env.example").read_text()
    (tmp_path / "deploy" / "pki.env").write_text(example.replace("PKI_MASTER_KEY=\n", "PKI_MASTER_KEY=k\n"))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "POSTGRES_PASSWORD": "pw",
           "PKI_HOSTNAME": "pki.test"}
    out = subprocess.run([*compose_cli, "config", "--format", "json"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    model = json.loads(out.stdout)
    assert set(model["services"]) == set(SERVICES)
    assert model["services"]["web"]["deploy"]["replicas"] == 2
    for name in PKI_SERVICES:
        resolved = model["services"][name]["environment"]
        assert resolved["PKI_MASTER_KEY"] == "k", "the env file did not reach the service"
        assert resolved["DATABASE_URL"] == "postgres://pki:pw@postgres:5432/pki"
        assert resolved["ALLOWED_HOSTS"] == "pki.test" and resolved["PKI_BASE_URL"] == "http://pki.test"
    # Without the database password compose refuses to start anything.
    del env["POSTGRES_PASSWORD"]
    refused = subprocess.run([*compose_cli, "config", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr


# --- Dockerfile and its entrypoint ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_builds_from_python_311_slim_as_a_non_root_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert any(re.search(rf"useradd --system [^&]*\b{users[-1]}\b", arg) for op, arg in instructions if op == "RUN")
    run = " ".join(arg for op, arg in instructions if op == "RUN")
    assert "pip install ." in run and "manage.py collectstatic --noinput" in run
    entrypoint = json.loads(next(arg for op, arg in instructions if op == "ENTRYPOINT"))
    check_pki_command(json.loads(next(arg for op, arg in instructions if op == "CMD")))
    copied = {arg.split()[-1]: arg.split()[-2] for op, arg in instructions if op == "COPY"}
    assert copied[f"/usr/local/bin/{entrypoint[0]}"] == "deploy/docker-entrypoint.sh"


def test_dockerfile_copies_every_package_and_the_templates():
    copies = [arg.split() for op, arg in dockerfile_instructions() if op == "COPY"]
    sources = {src.rstrip("/") for *srcs, _ in copies for src in srcs if not src.startswith("--")}
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the project"
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
                and any(re.fullmatch(pattern.replace("*", ".*"), p.name) for pattern in include)}
    assert packages and packages <= sources, f"not copied into the image: {sorted(packages - sources)}"
    assert {"templates", "static", "manage.py", "pyproject.toml"} <= sources


def test_dockerignore_keeps_secrets_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", "deploy/pki.env", "deploy/tls", "var", ".venv", ".git"} <= ignored


def test_collectstatic_at_build_time_needs_no_database_and_leaves_no_key(tmp_path):
    """The Dockerfile's COPY and collectstatic steps, replayed in a directory laid out like /app."""
    app = tmp_path / "app"
    app.mkdir()
    for op, arg in dockerfile_instructions():
        if op == "COPY":
            *sources, dest = arg.split()
            if dest.startswith("/"):
                continue
            for source in sources:
                target = app / (Path(source).name if dest.endswith("/") or dest == "./" else dest)
                (shutil.copytree if (ROOT / source).is_dir() else shutil.copy)(ROOT / source, target)
    step = next(arg for op, arg in dockerfile_instructions() if op == "RUN" and "collectstatic" in arg)
    command = next(part.strip() for part in step.split("&&") if "collectstatic" in part)
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(app),
           "PKI_VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
    out = subprocess.run(["sh", "-c", command], cwd=app, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert any((app / "staticfiles" / "admin").rglob("*.css")), "collectstatic collected nothing"
    assert not (tmp_path / "var" / "master.key").exists(), "a master key would be baked into the image"


@pytest.mark.parametrize(("key", "expect_start"), [("", False), ("shared-key", True)])
def test_entrypoint_refuses_to_start_without_the_master_key(key, expect_start, tmp_path):
    entrypoint = DEPLOY / "docker-entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    env = {"PATH": os.environ["PATH"], "PKI_MASTER_KEY": key}
    out = subprocess.run([str(entrypoint), "sh", "-c", 'echo "started with $PKI_MASTER_KEY"'], env=env,
                         capture_output=True, text=True, timeout=30)
    if expect_start:
        assert out.returncode == 0 and out.stdout.strip() == f"started with {key}", out.stderr
    else:
        assert out.returncode != 0 and "PKI_MASTER_KEY" in out.stderr and not out.stdout


# --- systemd units -----------------------------------------------------------------------------------


def test_systemd_units_for_web_worker_beat_and_connector():
    assert UNITS == ["pki-beat.service", "pki-connector.service", "pki-web.service", "pki-worker.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_unit_runs_a_program_of_the_project(unit):
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "EnvironmentFile=/etc/pki/pki.env" in text
    assert re.search(r"^User=pki$", text, re.M)
    argv = shlex.split(re.search(r"^ExecStart=(.+)$", text, re.M).group(1))
    assert argv[0].startswith("/opt/pki/.venv/bin/")
    check_pki_command([Path(argv[0]).name, *argv[1:]])
    role = unit.removeprefix("pki-").removesuffix(".service")
    assert {"web": "gunicorn", "worker": "celery", "beat": "celery", "connector": "python"}[role] == Path(argv[0]).name
    if role == "connector":
        assert argv[1:] == ["manage.py", "peer", "run"]
    elif role != "web":
        assert argv[3] == role


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/install-test-deps.sh installs the Debian package systemd"
    env_file = tmp_path / "pki.env"
    env_file.write_text("PKI_MASTER_KEY=k\n")
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    for unit in UNITS:
        # The units as installed, pointed at this checkout's virtualenv so the programs exist.
        text = (DEPLOY / "systemd" / unit).read_text()
        text = text.replace("/opt/pki/.venv/bin/", f"{Path(sys.executable).parent}/").replace("/opt/pki", str(ROOT))
        text = text.replace("/etc/pki/pki.env", str(env_file))
        text = re.sub(r"^(User|Group)=pki$", rf"\1={user}", text, flags=re.M)
        (tmp_path / unit).write_text(text)
    out = subprocess.run([analyze, "verify", *(str(tmp_path / u) for u in UNITS)], capture_output=True, text=True,
                         timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if any(u in line for u in UNITS)]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
