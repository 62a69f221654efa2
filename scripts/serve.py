"""The server of ``make run``: nginx on HOST:PORT in front of gunicorn on a loopback port only nginx knows.

    .venv/bin/python scripts/serve.py [--host 127.0.0.1] [--port 8000] [--tls-port PORT+443] [--workers 2]
                                      [--threads 4] [--ocsp-workers 2] [--ocsp-threads 4] [--no-scheduler]

nginx (deploy/nginx/pki-run.conf) holds slow clients, reads whole request bodies with a timeout and bounds
request lines; gunicorn (settings in pki/gunicorn_conf.py) gets complete requests only, so a few clients that
announce a body and send nothing no longer hold its threads. nginx's files (configuration, pid, temporary
bodies) go to ``--run-dir`` (var/run). Without an nginx binary the script serves with gunicorn alone, says
loudly what that leaves open, and caps request lines at gunicorn's largest finite limit.

OCSP: nginx sends the responder's paths (``/ocsp``, ``/ejbca/publicweb/status/ocsp``) to ``--ocsp-workers``
processes of their own (default 2), protocols/ocsp/wsgi.py under granian (``--ocsp-threads`` threads each, one
loopback port each, taken in turn by nginx): the same endpoint (protocols.ocsp.endpoint) that gunicorn's application
runs ahead of Django's handler (pki/wsgi.py), without gunicorn; twice gunicorn's answers per second on a quiet
machine (benchmarks/README.md, "OCSP responder, fifth round"). ``--ocsp-workers 0`` leaves OCSP to gunicorn.

HTTPS: when ``init`` wrote var/tls/ (a server certificate from ManagementCA and the local CAs' certificates), nginx
also listens with TLS on ``--tls-port`` (default PORT+443: 8443 beside 8000; 0 turns it off) and asks for an
optional client certificate, which it verifies and forwards (X-SSL-Client-Verify, X-SSL-Client-Cert). gunicorn then
runs with PKI_BEHIND_TLS_PROXY=1 and PKI_TRUSTED_PROXIES=127.0.0.1: the headers are believed from the local nginx
only (the plain-HTTP server always blanks them), and cookies stay usable on the plain-HTTP port
(PKI_SECURE_COOKIES=0). Without nginx there is no HTTPS listener (gunicorn alone cannot verify client certificates).

Without REDIS_URL (no Celery beat), the periodic jobs (CRL renewal, SCEP transaction purge: CELERY_BEAT_SCHEDULE)
run in a third process, ``manage.py scheduler`` (pki/scheduler.py): outside gunicorn, so recycling a worker does
not stop it, and safe to run on several hosts sharing one database. ``--no-scheduler`` leaves it out.

The processes stop together: on SIGINT/SIGTERM, or when any of them exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SITE_CONF = ROOT / "deploy" / "nginx" / "pki-run.conf"
GUNICORN_CONF = "python:pki.gunicorn_conf"
# The addresses in pki-run.conf that are replaced here (tests/deploy/test_serving.py renders the same way).
LISTEN_PLACEHOLDER = "listen 127.0.0.1:8000;"
UPSTREAM_PLACEHOLDER = "server 127.0.0.1:8001;"
TLS_LISTEN_PLACEHOLDER = "listen 127.0.0.1:8443 ssl;"
TLS_DIR_PLACEHOLDER = "/PKI_TLS_DIR"
TLS_BEGIN, TLS_END = "# BEGIN HTTPS", "# END HTTPS"
TLS_FILES = ("server.pem", "server.key", "client-ca.pem")
PROXY_SECRET_PLACEHOLDER = "PKI_PROXY_SECRET_VALUE"
OCSP_PLACEHOLDER = "server 127.0.0.1:8002;"
# The OCSP responder's own processes (--ocsp-workers, --ocsp-threads; 0 workers: gunicorn answers OCSP too). On a
# quiet machine they answered 2,503/s against gunicorn's 1,181/s (p50 2.9 against 6.6 ms; benchmarks/ocsp.py,
# benchmarks/README.md "OCSP responder, fifth round"), with ~40% less server CPU per answer; loaded, the two were
# level. 4 threads each was the cheapest shape measured (2 x 1, 2 x 2, 2 x 4, 3 x 1, 3 x 2, 4 x 1, 4 x 2, 2 x 8).
OCSP_WORKERS, OCSP_THREADS = 2, 4
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

WARNING = """
  *******************************************************************************************
  *  WARNING: nginx is not installed; serving with gunicorn alone.                          *
  *  Clients that send a request body slowly can hold all of gunicorn's threads, and SCEP   *
  *  GET requests are limited to %(line)d-byte request lines (large renewals get 414).        *
  *  Install nginx (Debian: apt-get install nginx) and run `make run` again.                *
  *******************************************************************************************
"""


def nginx_binary() -> str | None:
    """The nginx program on PATH or in the usual sbin directories (not on a user's PATH on Debian)."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def tls_dir_of(environ: dict[str, str] | None = None) -> Path:
    """Where ``init`` writes the HTTPS listener's files (PKI_VAR_DIR/tls, var/tls by default)."""
    env = os.environ if environ is None else environ
    return Path(env.get("PKI_VAR_DIR") or ROOT / "var") / "tls"


def tls_ready(tls_dir: Path) -> bool:
    """Whether ``init`` made every file the HTTPS listener needs."""
    return all((tls_dir / name).is_file() for name in TLS_FILES)


def port_free(host: str, port: int) -> bool:
    """Whether nginx could listen on ``host:port`` now (a taken HTTPS port must not stop the HTTP server)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_nginx(run_dir: Path, host: str, port: int, upstream_port: int, *, tls_port: int = 0,
                 tls_dir: Path | None = None, proxy_secret: str = "", ocsp_ports: Sequence[int] = ()) -> Path:
    """pki-run.conf with this run's addresses, inside a main nginx.conf whose files all live in ``run_dir``.
    The HTTPS server is kept only with a ``tls_port`` and the ``tls_dir`` holding init's files; it sends
    ``proxy_secret`` to gunicorn (the rendered site file is readable by its owner only). The OCSP paths go to
    the responder processes on ``ocsp_ports`` (nginx takes them in turn), or without any to gunicorn, which
    answers them too."""
    site = SITE_CONF.read_text()
    ocsp_servers = "\n    ".join(f"server 127.0.0.1:{p};" for p in (ocsp_ports or [upstream_port]))
    replacements = [(LISTEN_PLACEHOLDER, f"listen {_address(host, port)};"),
                    (UPSTREAM_PLACEHOLDER, f"server 127.0.0.1:{upstream_port};"),
                    (OCSP_PLACEHOLDER, ocsp_servers)]
    start, end = site.find(TLS_BEGIN), site.find(TLS_END)
    if start < 0 or end < start:
        raise SystemExit(f"serve.py: {SITE_CONF} no longer has its {TLS_BEGIN} ... {TLS_END} block")
    if tls_port and tls_dir is not None:
        replacements.append((TLS_LISTEN_PLACEHOLDER, f"listen {_address(host, tls_port)} ssl;"))
        replacements.append((PROXY_SECRET_PLACEHOLDER, proxy_secret or secrets.token_urlsafe(32)))
        site = site.replace(TLS_DIR_PLACEHOLDER, str(tls_dir.resolve()))
    else:
        site = site[:start] + site[end + len(TLS_END):]
    for old, new in replacements:
        if site.count(old) != 1:
            raise SystemExit(f"serve.py: {SITE_CONF} no longer has exactly one {old!r}")
        site = site.replace(old, new)
    site_file = run_dir / "pki-run.conf"
    site_file.unlink(missing_ok=True)
    fd = os.open(site_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds this run's proxy secret
    with os.fdopen(fd, "w") as handle:
        handle.write(site)
    temp_paths = "\n".join(f"    {kind}_temp_path {run_dir}/{kind};" for kind in TEMP_KINDS)
    main = run_dir / "nginx.conf"
    # One worker: nginx only shuffles bytes here, the CPU belongs to gunicorn. Its access log is the server's
    # (it sees the clients' addresses); gunicorn's would show nginx's only.
    main.write_text(f"""daemon off;
worker_processes 1;
pid {run_dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
    access_log /dev/stdout;
{temp_paths}
    include {run_dir}/pki-run.conf;
}}
""")
    return main


def gunicorn_argv(bind: str, workers: int, threads: int, *, exposed: bool,
                  control_socket: Path | None = None) -> list[str]:
    """gunicorn as every start path runs it (the shared config module), plus this run's bind and pool."""
    argv = [str(BIN / "gunicorn"), "pki.wsgi", "-c", GUNICORN_CONF, "--bind", bind,
            "--workers", str(workers), "--threads", str(threads)]
    from gunicorn.config import KNOWN_SETTINGS

    if control_socket is not None and any(s.name == "control_socket" for s in KNOWN_SETTINGS):
        # Its own, not the default in $HOME that every gunicorn of this user would share.
        argv += ["--control-socket", str(control_socket)]
    if exposed:
        from pki.gunicorn_conf import EXPOSED_LIMIT_REQUEST_LINE

        # Clients reach gunicorn directly: its own finite limits instead of nginx's (see pki/gunicorn_conf.py).
        argv += ["--limit-request-line", str(EXPOSED_LIMIT_REQUEST_LINE),
                 "--limit-request-field_size", str(EXPOSED_LIMIT_REQUEST_LINE), "--access-logfile", "-"]
    return argv


def ocsp_argv(port: int, threads: int) -> list[str]:
    """One OCSP responder process (protocols/ocsp/wsgi.py): granian with one worker of ``threads`` threads on a
    loopback port only nginx is told. One port per process, not one granian of N workers: those share one
    listening socket, and nginx's few kept connections to it all landed on one worker (measured: one process did
    ~95% of the answers while the other idled). nginx takes the ports in turn. Its access log is nginx's."""
    return [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--blocking-threads", str(threads), "--no-ws", "--log-level", "warning",
            "--respawn-failed-workers", "protocols.ocsp.wsgi:application"]


def free_loopback_port() -> int:
    """A port nothing listens on now (granian binds by number: it takes no socket handed over)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def upstream_socket() -> socket.socket:
    """gunicorn's listening socket, bound to a free loopback port here and handed over (``fd://``).

    ``TCP_NODELAY`` is set on it before ``listen``: an accepted connection takes its options from the listening
    socket at the handshake, and nginx connects (and keeps the connection alive, for good) as soon as a request
    comes, which can be while gunicorn is still starting. gunicorn sets the option on the socket itself only once
    it runs, so a connection made before that kept Nagle's algorithm: every response gunicorn writes in two parts
    (headers, then the body) on it waited for nginx's delayed acknowledgement, 40 ms (measured on the peers lease
    and answer calls, which an RA's carried SCEP request waits for in turn)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def wait_for_responder(port: int, proc: subprocess.Popen, seconds: float = 90) -> bool:
    """Whether the responder answers its ``/healthz`` (False: it exited, or took longer than ``seconds``), so
    nginx never answers 502 for it while its workers load Django."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()  # noqa: S310 - loopback
            return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def scheduler_argv() -> list[str]:
    """The embedded scheduler's process (the periodic jobs Celery beat runs when Redis is configured)."""
    return [sys.executable, str(ROOT / "manage.py"), "scheduler"]


def wants_scheduler(no_scheduler: bool, environ: dict[str, str] | None = None) -> bool:
    """Start the scheduler unless told not to or a broker is configured (then Celery beat runs the jobs)."""
    return not no_scheduler and not (environ if environ is not None else os.environ).get("REDIS_URL")


def _name(proc: subprocess.Popen) -> str:
    return "scheduler" if proc.args[-1:] == ["scheduler"] else Path(proc.args[0]).name


def _own_group(proc: subprocess.Popen) -> bool:
    """Started in a process group of its own (the OCSP responder: granian's workers must stop with it)."""
    try:
        return os.getpgid(proc.pid) == proc.pid
    except OSError:
        return False


def _stop(processes: list[subprocess.Popen]) -> None:
    # gunicorn and granian: SIGTERM is their graceful stop; nginx: SIGQUIT is its graceful stop.
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT if "nginx" in Path(proc.args[0]).name else signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in processes:
        group = _own_group(proc)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if group:  # a granian worker still starting ignores its parent's stop, and outlives a SIGKILLed one
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def fresh_metrics_dir(environ: dict[str, str] | None = None) -> Path:
    """prometheus_client's multiprocess directory (pki/settings.py), emptied: the counters of this run's processes
    are added up there (pki.metrics), and files of a previous run's processes would be counted too."""
    environ = environ if environ is not None else os.environ
    var_dir = Path(environ.get("PKI_VAR_DIR", ROOT / "var"))
    path = Path(environ.get("PROMETHEUS_MULTIPROC_DIR") or var_dir / "metrics")
    if path.is_dir():
        for stale in path.glob("*.db"):
            stale.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Start nginx and gunicorn (or gunicorn alone without nginx) and wait until either ends."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tls-port", type=int, default=None,
                        help="HTTPS listener with client certificates (default PORT+443; 0: none)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per gunicorn worker (default: pki/gunicorn_conf.py's for the node's role, 4; "
                             "16 on an RA node, where each request carried to the CA holds its thread until the CA "
                             "answers)")
    parser.add_argument("--ocsp-workers", type=int, default=OCSP_WORKERS,
                        help="processes of an OCSP responder of its own behind nginx (0: gunicorn answers)")
    parser.add_argument("--ocsp-threads", type=int, default=OCSP_THREADS)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "var" / "run")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="Do not run the periodic jobs here (Celery beat or another host runs them)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from pki.gunicorn_conf import default_threads

    args.threads = args.threads or default_threads()

    nginx = nginx_binary()
    processes: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    run_dir = args.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    fresh_metrics_dir()
    control_socket = run_dir / "gunicorn.ctl"
    if nginx is None:
        from pki.gunicorn_conf import EXPOSED_LIMIT_REQUEST_LINE

        print(WARNING % {"line": EXPOSED_LIMIT_REQUEST_LINE}, file=sys.stderr, flush=True)
        processes.append(subprocess.Popen(
            gunicorn_argv(f"{args.host}:{args.port}", args.workers, args.threads, exposed=True,
                          control_socket=control_socket), cwd=ROOT))
    else:
        # gunicorn's socket is bound here and handed over (fd://), so no other process can take the port
        # between choosing it and gunicorn listening on it.
        upstream = upstream_socket()
        tls_port = args.port + 443 if args.tls_port is None else args.tls_port
        tls_dir = tls_dir_of()
        if tls_port and not tls_ready(tls_dir):
            print(f"serve.py: no HTTPS listener: {tls_dir} lacks {', '.join(TLS_FILES)} (run manage.py init)",
                  file=sys.stderr, flush=True)
            tls_port = 0
        if tls_port and not port_free(args.host, tls_port):
            print(f"serve.py: no HTTPS listener: {_address(args.host, tls_port)} is in use (--tls-port chooses "
                  "another)", file=sys.stderr, flush=True)
            tls_port = 0
        proxy_secret = secrets.token_urlsafe(32)
        ocsp_ports = [free_loopback_port() for _ in range(max(args.ocsp_workers, 0))]
        config = render_nginx(run_dir, args.host, args.port, upstream.getsockname()[1], tls_port=tls_port,
                              tls_dir=tls_dir, proxy_secret=proxy_secret, ocsp_ports=ocsp_ports)
        # nginx is the only peer and appends the client's address to X-Forwarded-For: believe it from nginx
        # alone, so login and Basic throttling count per client, not one budget for everyone.
        env = {**os.environ, "PKI_TRUSTED_PROXIES": os.environ.get("PKI_TRUSTED_PROXIES") or "127.0.0.1"}
        if tls_port:
            # The forwarded client certificate is believed from the local nginx alone (gunicorn listens on a
            # loopback port only nginx is told), whatever PKI_TRUSTED_PROXIES the environment had.
            env.update(PKI_BEHIND_TLS_PROXY="1", PKI_TRUSTED_PROXIES="127.0.0.1", PKI_SECURE_COOKIES="0",
                       PKI_PROXY_SECRET=proxy_secret)
        responders = []
        for ocsp_port in ocsp_ports:
            # OCSP in processes of their own, past gunicorn (protocols/ocsp/wsgi.py); the same environment.
            responders.append((ocsp_port, subprocess.Popen(ocsp_argv(ocsp_port, args.ocsp_threads), cwd=ROOT,
                                                            env=env, start_new_session=True)))
            processes.append(responders[-1][1])
        processes.append(subprocess.Popen(
            gunicorn_argv(f"fd://{upstream.fileno()}", args.workers, args.threads, exposed=False,
                          control_socket=control_socket),
            cwd=ROOT, env=env, pass_fds=(upstream.fileno(),)))
        upstream.close()
        if not all(wait_for_responder(ocsp_port, responder) for ocsp_port, responder in responders):
            print("serve.py: the OCSP responder did not start; stopping", file=sys.stderr, flush=True)
            _stop(processes)
            return 1
        processes.append(subprocess.Popen([nginx, "-p", str(run_dir), "-c", str(config), "-e", "stderr"], cwd=ROOT))
        print(f"nginx on http://{_address(args.host, args.port)}/ in front of gunicorn (pki/gunicorn_conf.py)",
              file=sys.stderr, flush=True)
        if tls_port:
            print(f"nginx on https://{_address(args.host, tls_port)}/ with client certificates (var/superadmin.p12)",
                  file=sys.stderr, flush=True)
    if wants_scheduler(args.no_scheduler):
        processes.append(subprocess.Popen(scheduler_argv(), cwd=ROOT))
        print("scheduler: periodic jobs (CRLs, SCEP purge) run here (manage.py scheduler)", file=sys.stderr,
              flush=True)
    from peers.process import connector_argv, wants_connector

    if wants_connector():
        # The CA's outgoing peer connectors (RA/VA nodes); it idles while none is configured.
        processes.append(subprocess.Popen(connector_argv(), cwd=ROOT))
        print("connector: outgoing peer connectors run here (manage.py peer run; PKI_PEER_CONNECTOR=0: not here)",
              file=sys.stderr, flush=True)

    try:
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
        for proc in processes:
            if not stopping and proc.poll() is not None:
                print(f"serve.py: {_name(proc)} exited with {proc.returncode}; stopping",
                      file=sys.stderr, flush=True)
    finally:
        _stop(processes)
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
