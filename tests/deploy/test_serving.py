"""How the server is started: request-line limits that fit SCEP GET messages, and slow clients that cannot stall it.

The settings are checked where they live (pki/gunicorn_conf.py, deploy/nginx/*.conf, every command line that
starts gunicorn), then a real server is started the way ``make run`` starts it (its scripts/serve.py line of the
Makefile: nginx in front of gunicorn, against a PostgreSQL database of its own) and attacked and used over HTTP:
16 connections that announce a body and never send it, and RSA-4096 enrollment and renewal by GET with the
project's SCEP client.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from pki import gunicorn_conf
from protocols.scep.messages import MessageType, PkiStatus
from protocols.scep.messages import client as scep_client
from tests.protocols.scep.live import LiveScepServer
from tests.protocols.scep.server_fixtures import make_csr, own, self_signed

ROOT = Path(__file__).resolve().parents[2]
NGINX_DIR = ROOT / "deploy" / "nginx"
CONF_MODULE = "python:pki.gunicorn_conf"
GUNICORN_DEFAULT_LINE = 4094  # gunicorn's own default limit_request_line: a certmonger renewal exceeds it
SCEP_PATH = "/ejbca/publicweb/apply/scep/pkiclient.exe"


def _serve_module():
    spec = importlib.util.spec_from_file_location("pki_serve", ROOT / "scripts" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = _serve_module()


# --- the settings ------------------------------------------------------------------------------------------


def test_gunicorn_limits_fit_a_get_pkioperation_of_the_default_max_body_size():
    from gunicorn.config import Config

    from protocols.scep.models import DEFAULT_MAX_BODY_SIZE

    needed = gunicorn_conf.scep_get_request_line(DEFAULT_MAX_BODY_SIZE)
    assert needed >= 3 * len(base64.b64encode(b"\0" * DEFAULT_MAX_BODY_SIZE))  # every base64 byte URL-encoded
    assert gunicorn_conf.SCEP_GET_REQUEST_LINE >= needed
    # gunicorn reads the module as it does with -c, and its largest finite line limit (8190) would not do.
    cfg = Config()
    for name in ("limit_request_line", "limit_request_field_size"):
        cfg.set(name, getattr(gunicorn_conf, name))
    assert needed > 8190 and cfg.limit_request_line == 0  # unlimited: nginx in front bounds it
    assert cfg.limit_request_field_size >= needed


def _size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit.lower()]


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()
    return int(number) * {None: 1, "s": 1, "ms": 0.001, "m": 60}[unit]


def _server_blocks(text: str) -> list[str]:
    """The top-level ``server { ... }`` blocks of an http-level nginx include."""
    text = re.sub(r"#.*", "", text)
    blocks = []
    for match in re.finditer(r"^server\s*\{", text, re.M):
        depth, i = 0, match.end() - 1
        for i in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
        blocks.append(text[match.start():i + 1])
    return blocks


def _directive(block: str, name: str) -> str | None:
    found = re.findall(rf"^\s*{name}\s+([^;]+);", block, re.M)
    return found[-1].strip() if found else None


NGINX_SERVERS = [("pki.conf", 0), ("pki.conf", 1), ("pki-run.conf", 0), ("pki-run.conf", 1)]


@pytest.mark.parametrize(("conf", "index"), NGINX_SERVERS,
                         ids=["pki.conf:80", "pki.conf:443", "pki-run.conf", "pki-run.conf:https"])
def test_nginx_bounds_request_lines_and_slow_clients(conf, index):
    blocks = _server_blocks((NGINX_DIR / conf).read_text())
    assert len(blocks) == 2  # plain HTTP and HTTPS (make run's HTTPS server only when init made its credentials)
    block = blocks[index]
    count, size = _directive(block, "large_client_header_buffers").split()
    # A request line must fit one buffer: a GET PKIOperation of the alias default maxBodySize does.
    assert _size(size) >= gunicorn_conf.SCEP_GET_REQUEST_LINE
    assert int(count) <= 4  # each connection may take count x size while sending its head
    for name in ("client_header_timeout", "client_body_timeout"):
        value = _directive(block, name)
        assert value and _seconds(value) <= 30, f"{name} {value}"
    assert _directive(block, "proxy_request_buffering") in (None, "on")  # nginx's default is on


@pytest.mark.parametrize(("conf", "index"), [("pki.conf", 1), ("pki-run.conf", 1)],
                         ids=["pki.conf:443", "pki-run.conf"])
def test_the_https_listener_takes_a_connectors_largest_answer_post(conf, index, settings):
    """On an RA or VA node a CA connector posts up to MAX_POST_BODIES of answers at once (plus JSON around them);
    nginx must let through what Django itself accepts, or such a post would get nginx's 413 on every retry."""
    from peers.connector import MAX_ANSWERS, MAX_POST_BODIES

    limit = _size(_directive(_server_blocks((NGINX_DIR / conf).read_text())[index], "client_max_body_size"))
    assert limit >= MAX_POST_BODIES + MAX_ANSWERS * 1024
    assert limit >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _makefile_run_line() -> list[str]:
    """The command of ``make run`` that starts the server, as the Makefile has it."""
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    lines = [line.strip() for line in recipe.splitlines() if "serve.py" in line]
    assert len(lines) == 1, recipe
    return shlex.split(lines[0])


def _argv_compose() -> list[str]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]


def _argv_dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))


def _argv_systemd() -> list[str]:
    text = (ROOT / "deploy" / "systemd" / "pki-web.service").read_text()
    return shlex.split(re.search(r"^ExecStart=(.+)$", text, re.M).group(1))


def _argv_make_run() -> list[str]:
    line = _makefile_run_line()
    assert line[:2] == ["$(PY)", "scripts/serve.py"], line
    return serve.gunicorn_argv("fd://3", 2, 4, exposed=False)


def _live_command() -> list[str]:
    server = LiveScepServer.__new__(LiveScepServer)
    server.workers, server.threads, server.tmp = 2, 4, Path("/tmp")
    return server.command(8000)


@pytest.mark.parametrize("argv_of", [_argv_compose, _argv_dockerfile, _argv_systemd, _argv_make_run, _live_command],
                         ids=["compose", "Dockerfile", "systemd", "make-run", "tests-live-scep"])
def test_every_start_path_loads_the_shared_gunicorn_settings(argv_of):
    argv = argv_of()
    assert Path(argv[0]).name == "gunicorn", argv
    assert argv[argv.index("-c") + 1] == CONF_MODULE, argv
    # Nothing on the command line overrides the limits again.
    assert not [a for a in argv if a.startswith("--limit-request")], argv


@pytest.mark.parametrize("path", ["tests/deploy/test_topology.py", "tests/endentities/test_enroll_concurrency.py"])
def test_tests_that_start_gunicorn_load_the_shared_settings(path):
    text = (ROOT / path).read_text()
    starts = len(re.findall(r'"gunicorn"\)?, "pki\.wsgi"', text))
    assert starts >= 1 and text.count(f'"-c", "{CONF_MODULE}"') == starts


def test_without_nginx_gunicorn_keeps_finite_limits():
    argv = serve.gunicorn_argv("127.0.0.1:8000", 2, 4, exposed=True)
    for flag in ("--limit-request-line", "--limit-request-field_size"):
        assert argv[argv.index(flag) + 1] == str(gunicorn_conf.EXPOSED_LIMIT_REQUEST_LINE) == "8190"
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("limit_request_line", int(argv[argv.index("--limit-request-line") + 1]))
    assert cfg.limit_request_line == 8190  # the flags are gunicorn's own spelling
    assert "--limit-request-field_size" in cfg.settings["limit_request_field_size"].cli


def test_a_connection_made_before_gunicorn_runs_has_no_nagle_delay():
    """nginx may connect while gunicorn is still starting (the connection waits in the accept queue, and nginx keeps
    it alive afterwards): it takes its options from the socket serve.py hands over, so TCP_NODELAY must be set there,
    or each response gunicorn writes in two parts on it waits 40 ms for nginx's delayed acknowledgement."""
    listener = serve.upstream_socket()
    early = socket.create_connection(listener.getsockname())
    try:
        accepted, _ = listener.accept()  # what gunicorn accepts later
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            # And it shows: as nginx sees it (a request, then gunicorn's headers and body in two writes), the body
            # arrives with the headers, not after nginx's delayed ACK (43-44 ms from the second exchange on, measured
            # with the option off; a new connection's first segments are acknowledged at once). The median of the
            # later exchanges keeps a busy machine's scheduling out of it.
            early.settimeout(5)
            took = []
            for _ in range(20):
                early.sendall(b"R" * 1447)
                accepted.recv(65536)
                accepted.sendall(b"H" * 310)
                accepted.sendall(b"B" * 3437)
                got = len(early.recv(65536))
                start = time.monotonic()
                while got < 310 + 3437:
                    got += len(early.recv(65536))
                took.append(time.monotonic() - start)
            assert sorted(took[4:])[8] < 0.02, took
    finally:
        early.close()
        listener.close()


def test_nginx_accepts_the_run_configuration(tmp_path):
    nginx = serve.nginx_binary()
    assert nginx, "nginx is not installed: scripts/install-test-deps.sh installs the Debian package nginx"
    config = serve.render_nginx(tmp_path, "127.0.0.1", 8000, 8001)
    out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "[emerg]" not in out.stderr, out.stderr


# --- a server started as `make run` starts it ----------------------------------------------------------------

RENEWAL_ALIAS = """
from pki.auth.access import Actor
from pki.models import CertificateAuthority
from protocols.scep import services

services.add_alias(Actor.system_actor("setup"), "renewing", default_ca=CertificateAuthority.objects.get(name="ScepCA"),
                   client_certificate_renewal=True)
"""

AGE = """
from django.utils import timezone
from pki.models import Certificate

row = Certificate.objects.get(serial="%(serial)s")
length, now = row.not_after - row.not_before, timezone.now()
Certificate.objects.filter(pk=row.pk).update(not_before=now - length * 0.6, not_after=now + length * 0.4)
"""


class MakeRunServer(LiveScepServer):
    """LiveScepServer's database and setup, served by the Makefile's run command (nginx + gunicorn)."""

    def command(self, port: int) -> list[str]:
        # The run directory must be traversable by nginx's workers (nobody, when the tests run as root).
        self.run_dir = Path(tempfile.mkdtemp(prefix="pki-serve-"))
        self.run_dir.chmod(0o755)
        values = {"$(PY)": sys.executable, "$(HOST)": "127.0.0.1", "$(PORT)": str(port)}
        argv = [values.get(a, a) for a in _makefile_run_line()]
        assert not [a for a in argv if "$(" in a], argv
        return [*argv, "--run-dir", str(self.run_dir)]

    def close(self) -> None:
        super().close()
        if getattr(self, "run_dir", None):
            shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    assert serve.nginx_binary(), "nginx is not installed: scripts/install-test-deps.sh installs it"
    with MakeRunServer(tmp_path_factory.mktemp("serve"), users=("dev4096",)) as server:
        server.manage("shell", "-c", RENEWAL_ALIAS)
        yield server


def _body_timeout() -> float:
    return _seconds(_directive(_server_blocks((NGINX_DIR / "pki-run.conf").read_text())[0], "client_body_timeout"))


@pytest.mark.multiprocess
@pytest.mark.xdist_group("serve")
def test_slow_bodies_do_not_stall_the_server(served):
    port = int(served.base.rsplit(":", 1)[1])
    slow = []
    for _ in range(16):  # twice gunicorn's 2 workers x 4 threads
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"POST {SCEP_PATH}?operation=PKIOperation HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/x-pki-message\r\nContent-Length: 60000\r\n\r\n".encode() + b"x" * 100)
        slow.append(sock)
    sent = time.monotonic()
    try:
        time.sleep(0.5)  # they have reached the server
        elapsed = []
        for _ in range(3):
            start = time.monotonic()
            with urllib.request.urlopen(f"{served.url()}?operation=GetCACaps", timeout=5) as reply:
                assert reply.status == 200 and b"POSTPKIOperation" in reply.read()
            elapsed.append(time.monotonic() - start)
        assert min(elapsed) < 1.0 and max(elapsed) < 3.0, elapsed
        # The server gives up on each of them within its body timeout: 408 or a plain close, not a hang.
        bound = _body_timeout() + 5
        for sock in slow:
            sock.settimeout(max(bound - (time.monotonic() - sent), 0.1))
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - sent < bound
    finally:
        for sock in slow:
            sock.close()
    assert " 408 " in served.logs()  # nginx logged them


def _get(served, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", int(served.base.rsplit(":", 1)[1]), timeout=60)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _get_pki_operation(served, alias: str, request: scep_client.ClientRequest) -> tuple[int, bytes, int]:
    """PKIOperation by GET as certmonger sends it: base64, every reserved byte URL-encoded."""
    path = f"{SCEP_PATH.replace('scep/pkiclient.exe', f'scep/{alias}/pkiclient.exe')}?operation=PKIOperation" \
           f"&message={quote(base64.b64encode(request.data).decode(), safe='')}"
    status, body = _get(served, path)
    return status, body, len(f"GET {path} HTTP/1.1")


@pytest.mark.multiprocess
@pytest.mark.xdist_group("serve")
def test_rsa_4096_enrollment_and_renewal_by_get(served):
    with urllib.request.urlopen(f"{served.url('renewing')}?operation=GetCACert", timeout=30) as reply:
        ca_cert = x509.load_der_x509_certificate(reply.read())

    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    enroll = scep_client.build_pkcs_req(make_csr(key, "CN=dev4096,O=Test,C=SE", "foo123"),
                                        self_signed(key, "dev4096"), key, ca_cert)
    status, body, line = _get_pki_operation(served, "renewing", enroll)
    assert status == 200, (status, body[:300], served.logs())
    result = scep_client.parse_cert_rep(body, key, ca_certs=[ca_cert])
    assert result.status == PkiStatus.SUCCESS, result.fail_info_text
    old_cert = own(result, key)
    assert line > GUNICORN_DEFAULT_LINE

    # Renewal: signed by the certificate just issued, past half its validity (the server reads its stored row).
    served.manage("shell", "-c", AGE % {"serial": format(old_cert.serial_number, "x")})
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    renew = scep_client.build_pkcs_req(make_csr(new_key, "CN=dev4096,O=Test,C=SE", None), old_cert, key, ca_cert,
                                       message_type=MessageType.RENEWAL_REQ)
    status, body, line = _get_pki_operation(served, "renewing", renew)
    assert status == 200, (status, body[:300], served.logs())
    result = scep_client.parse_cert_rep(body, key, old_cert, ca_certs=[ca_cert])  # encrypted to the signer
    assert result.status == PkiStatus.SUCCESS, result.fail_info_text
    new_cert = own(result, new_key)
    assert new_cert.subject == old_cert.subject and new_cert.serial_number != old_cert.serial_number
    assert line > GUNICORN_DEFAULT_LINE
    assert served.query("SELECT count(*) FROM pki_certificate WHERE username = %s", ("dev4096",)) == [(2,)]


@pytest.mark.multiprocess
@pytest.mark.xdist_group("serve")
def test_a_get_of_the_max_body_size_reaches_scep_and_longer_lines_are_refused(served):
    from protocols.scep.models import DEFAULT_MAX_BODY_SIZE

    # The worst case for the line: a message whose base64 is all '/' (0xff bytes), each sent as %2F.
    message = quote(base64.b64encode(b"\xff" * DEFAULT_MAX_BODY_SIZE).decode(), safe="")
    path = f"{SCEP_PATH}?operation=PKIOperation&message={message}"
    status, body = _get(served, path)
    assert len(f"GET {path} HTTP/1.1") > 3 * 4 * DEFAULT_MAX_BODY_SIZE // 3
    # SCEP itself read it and refused it as no SCEP message: neither nginx nor gunicorn cut it off with 414.
    assert status == 400 and b"SCEP" in body, (status, body[:200])
    status, _ = _get(served, f"{SCEP_PATH}?operation=PKIOperation&message={'A' * (300 * 1024)}")
    assert status == 414


@pytest.mark.parametrize(("role", "threads"), [(None, 4), ("ca", 4), ("va", 4), ("ra", 16), (" RA ", 16)])
def test_an_ra_node_gets_threads_for_the_requests_it_holds(role, threads):
    """make run's gunicorn threads per worker: an RA holds each carried request's thread until the CA answers, so
    eight devices at once must not take every thread the connector's answers need."""
    env = {} if role is None else {"PKI_NODE_ROLE": role}
    assert gunicorn_conf.default_threads(env) == threads
    if role == "ra":
        assert gunicorn_conf.default_threads(env) * 2 > 8 + 2  # 2 workers: 8 waiting requests, a lease and an answer
    assert "--threads" not in _makefile_run_line()  # make run leaves the number to the node's role


@pytest.mark.parametrize("path", ["docker-compose.yml", "Dockerfile", "deploy/systemd/pki-web.service"])
def test_every_launcher_leaves_gunicorn_threads_to_the_node_role(path):
    """compose, the image and the systemd unit load pki.gunicorn_conf, whose ``threads`` follows PKI_NODE_ROLE: a
    ``--threads`` on their command line would give an RA node a CA's 4 (the README's RA set-up sets only the role)."""
    text = (ROOT / path).read_text()
    assert "pki.gunicorn_conf" in text and "--threads" not in text


@pytest.mark.parametrize(("role", "threads"), [("ra", 16), ("ca", 4)])
def test_gunicorn_reads_the_role_s_threads_from_the_shared_settings(role, threads):
    probe = ("import sys; from gunicorn.app.wsgiapp import WSGIApplication; "
             "sys.argv = ['gunicorn', 'pki.wsgi', '-c', 'python:pki.gunicorn_conf', '--workers', '3']; "
             "print(WSGIApplication('').cfg.threads)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, "PKI_NODE_ROLE": role},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.split() == [str(threads)]
