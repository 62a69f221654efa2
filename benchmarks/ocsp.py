"""OCSP responses per second through the HTTP endpoint, next to raw ``cryptography`` building and signing.

The server is ``make run``'s: scripts/serve.py with its defaults (nginx in front of gunicorn 2x4, whose application
answers OCSP through protocols.ocsp.endpoint; ``--ocsp-workers N`` here passes serve.py's option, which sends OCSP
to N granian processes of protocols/ocsp/wsgi.py instead), on PostgreSQL (planner statistics taken, as autovacuum
keeps them), with a P-256 CA and an active P-256 OCSP key binding that signs the answers. The requests (one
certificate each, SHA-1 CertID, a nonce, as OpenSSL sends them) are built before the clock starts and POSTed by 8
keep-alive clients on plain sockets (http.client cost the client more CPU per request than the whole answer costs
the server); after the clock stops every answer is parsed and checked (successful, signature by the binding's key,
status good, the nonce echoed).

Printed beside it, measured in the same run:
- the raw rate: ``cryptography``'s OCSPResponseBuilder signing one good answer with a P-256 key on one thread
  of this process, before and after the HTTP runs (the mean is the ratio's denominator), and per CPU second of
  that thread;
- the floors, driven by the same client: a WSGI app that reads the request and returns 400 fixed bytes, behind
  nginx under granian as serve.py runs the responder's own processes, and under make run's gunicorn (2x4, no
  nginx); and the one-round-trip floor: the same app behind nginx and granian, running the responder's real state
  statement (protocols.ocsp.services, prepared) once per request: what any responder that reads the database once
  per answer can reach here;
- CPU per answer of the server processes (not the scheduler or connector beside them), of the PostgreSQL sessions
  serving them and of the client, for every run; and from those, what each pipeline would reach with every core
  to itself, against the raw thread with one core to itself: the ratio the load of a shared machine moves least;
- the load average before and after: the machine may be shared, and the figures move with it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/ocsp.py [-n 3000] [-c 8]
    ... benchmarks/ocsp.py --ocsp-workers 2   # the responder's own processes instead of gunicorn
    ... benchmarks/ocsp.py --smoke            # CI: a few requests, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _setup import ROOT, load, setup_django, table

DATABASE = "pki_bench_ocsp"
TARGET = 0.40


def prepare(n: int):
    """A P-256 CA, an OCSP binding and ``n`` certificates; returns (CA certificate, certificates)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from cryptotokens import services as tokens
    from keybindings.models import InternalKeyBinding
    from pki.auth.access import Actor
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.services.cas import CASettings, create_ca
    from pki.services.profiles import ensure_builtin_profiles

    actor = Actor.system_actor("bench")
    ensure_builtin_profiles()
    token = tokens.create_token(actor, name="OcspBench", token_type="SoftCryptoToken", auth_code="foo123",
                                auto_activate=True)
    ca = create_ca(actor, CASettings(name="OcspBenchCA", subject_dn="CN=OCSP Bench CA,O=Bench,C=SE",
                                     crypto_token=token, key_alias="caKey", key_spec="P-256"))
    tokens.generate_key_pair(actor, token, "ocspKey", "P-256")
    responder = issue(IssuanceRequest(
        ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="OCSPSIGNER"),
        public_key=tokens.get_private_key(token, "ocspKey").public_key(),
        subject_dn="CN=OCSP Bench Responder,O=Bench,C=SE", username="ocsp-bench")).row
    InternalKeyBinding.objects.create(name="ocsp-bench", binding_type="OcspKeyBinding", crypto_token=token,
                                      key_pair_alias="ocspKey", certificate=responder)
    profile = CertificateProfile.objects.get(name="ENDUSER")
    certs = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        certs.append(issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, public_key=key,
                                           subject_dn=f"CN=ocsp-bench-{i},O=Bench,C=SE",
                                           username=f"ocsp-bench-{i}")).row.certificate)
    return ca.certificate, responder.certificate, certs


def build_requests(ca_cert, certs) -> list[tuple[bytes, bytes]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    out = []
    for cert in certs:
        nonce = secrets.token_bytes(16)
        req = (ocsp.OCSPRequestBuilder().add_certificate(cert, ca_cert, hashes.SHA1())
               .add_extension(x509.OCSPNonce(nonce), critical=False).build())
        out.append((req.public_bytes(Encoding.DER), nonce))
    return out


def check(requests, replies, responder) -> int:
    """How many replies are not a good answer signed by the binding with the request's nonce."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    bad = 0
    key = responder.public_key()
    for (_, nonce), body in zip(requests, replies, strict=True):
        try:
            r = ocsp.load_der_ocsp_response(body)
            key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(r.signature_hash_algorithm))
            ok = (r.certificate_status == ocsp.OCSPCertStatus.GOOD
                  and r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce)
        except Exception:  # noqa: BLE001 - every unreadable reply counts as a failure
            ok = False
        bad += not ok
    return bad


def raw_rate(ca_cert, certs, seconds: float) -> tuple[float, float]:
    """Responses that cryptography builds and signs with a P-256 key on one thread: per second, and per CPU second
    of that thread (what it reaches with a core of its own, whatever else the machine runs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name.from_rfc4514_string("CN=raw responder")
    signer = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
              .sign(key, hashes.SHA256()))
    done, started, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - started < seconds:
        cert = certs[done % len(certs)]
        (ocsp.OCSPResponseBuilder()
         .add_response(cert=cert, issuer=ca_cert, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
                       this_update=now, next_update=now + timedelta(minutes=5), revocation_time=None,
                       revocation_reason=None)
         .responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
         .sign(key, hashes.SHA256()))
        done += 1
    return done / (time.perf_counter() - started), done / (time.thread_time() - cpu)


def floor(environ, start_response):
    """A WSGI application that reads the request and answers a fixed 400 bytes: the ceiling of any Python
    responder behind this gunicorn and this client (run as ``ocsp:floor`` from benchmarks/)."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/ocsp-response"), ("Content-Length", "400")])
    return [b"\0" * 400]


FLOOR_DB_ENV = "PKI_OCSP_FLOOR_DB"  # JSON: the connection parameters, the statement, a CA id and a serial
_floor_db = threading.local()


def floor_db(environ, start_response):
    """:func:`floor` plus the one PostgreSQL round trip every answer needs: the responder's own state statement
    (protocols.ocsp.services, prepared once per connection, as the responder runs it) for a certificate of the
    benchmark's CA, on a psycopg2 connection per thread; no Django, no parsing, no signature. What a pipeline with
    one round trip per answer can reach behind this server on this machine (``ocsp:floor_db``)."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    cur = getattr(_floor_db, "cur", None)
    if cur is None:
        import json

        import psycopg2

        config = json.loads(os.environ[FLOOR_DB_ENV])
        conn = psycopg2.connect(**config["connect"])
        conn.autocommit = True
        cur = _floor_db.cur = conn.cursor()
        cur.execute(f"PREPARE ocsp_floor AS {config['sql']}")
        _floor_db.values = (config["serial"], config["ca"])
    serial, ca = _floor_db.values
    now = datetime.now(UTC)
    cur.execute("EXECUTE ocsp_floor(%s, %s, %s, %s)", [serial, now, now, ca])
    if cur.fetchone() is None:
        raise RuntimeError("the state statement found no CA")
    start_response("200 OK", [("Content-Type", "application/ocsp-response"), ("Content-Length", "400")])
    return [b"\0" * 400]


def floor_db_config(ca_id: int, serial: str) -> str:
    """:data:`FLOOR_DB_ENV`'s value for this database, CA and certificate."""
    import json
    import re

    from django.db import connection

    from protocols.ocsp import services

    numbered = iter(range(1, 5))
    sql = re.sub("%s", lambda _: f"${next(numbered)}", services._ANSWER_STATE_ONE)
    params = connection.get_connection_params()
    keep = ("host", "port", "user", "password", "dbname", "database")
    return json.dumps({"connect": {k: v for k, v in params.items() if k in keep and v},
                       "sql": sql, "ca": ca_id, "serial": serial})


def _wait_for(proc: subprocess.Popen, url: str, log: Path) -> None:
    try:
        _wait(proc, url, log)
    except BaseException:
        stop(proc)  # its whole process group: nothing it started may keep the port
        raise


def _wait(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=5).close()  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError as exc:
            if exc.code not in (502, 503, 504):  # nginx's answers while what it proxies to is not up yet
                return
            time.sleep(0.3)
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SystemExit("the server did not answer")


def start_make_run(tmp: Path, port: int, ocsp_workers: int | None = None) -> subprocess.Popen:
    """scripts/serve.py as ``make run`` starts it (nginx in front when installed, gunicorn 2x4, OCSP on the
    responder's own processes unless ``ocsp_workers`` is 0), without the scheduler (no periodic job runs during
    a two-minute benchmark)."""
    log = tmp / "serve.log"
    env = {**os.environ, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"), "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    choice = [] if ocsp_workers is None else ["--ocsp-workers", str(ocsp_workers)]
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--host", "127.0.0.1", "--port",
                             str(port), "--no-scheduler", "--run-dir", str(tmp / "run"), *choice],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for(proc, f"http://127.0.0.1:{port}/ocsp", log)
    return proc


def _serve():
    sys.path.insert(0, str(ROOT / "scripts"))
    import serve

    return serve


def start_floor(tmp: Path, port: int, app: str = "ocsp:floor") -> subprocess.Popen:
    """gunicorn with make run's settings (serve.py's argv, as without nginx) serving :func:`floor`."""
    log = tmp / "floor.log"
    argv = _serve().gunicorn_argv(f"127.0.0.1:{port}", 2, 4, exposed=True)
    argv[1] = app
    proc = subprocess.Popen([*argv, "--chdir", str(ROOT / "benchmarks")], cwd=ROOT, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for(proc, f"http://127.0.0.1:{port}/", log)
    return proc


def start_responder_floor(tmp: Path, port: int, app: str = "ocsp:floor") -> subprocess.Popen:
    """:func:`floor` on the responder's serving path: nginx (serve.py's configuration) sending /ocsp to granian
    with serve.py's argv for the responder; one process group to stop."""
    serve = _serve()
    log = tmp / "responder-floor.log"
    run_dir = tmp / "floor-run"
    run_dir.mkdir(exist_ok=True)
    run_dir.chmod(0o755)  # nginx's workers run as nobody when this runs as root
    tmp.chmod(0o755)
    upstreams = [serve.free_loopback_port() for _ in range(serve.OCSP_WORKERS or 2)]
    config = serve.render_nginx(run_dir, "127.0.0.1", port, serve.free_loopback_port(), ocsp_ports=upstreams)
    servers = ""
    for upstream in upstreams:
        argv = serve.ocsp_argv(upstream, serve.OCSP_THREADS)
        argv[-1] = app
        servers += f"{' '.join(argv)} & "
    script = (f"{servers}{serve.nginx_binary()} -p {run_dir} -c {config} -e stderr & "
              "trap 'kill -TERM $(jobs -p); wait' TERM; wait")
    proc = subprocess.Popen(["sh", "-c", script], cwd=ROOT / "benchmarks", stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "benchmarks")})
    _wait_for(proc, f"http://127.0.0.1:{port}/ocsp", log)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Stop ``proc``'s process group; then kill what is left of it (a worker still starting ignores a stop)."""
    import contextlib

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def post_raw(port: int, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], list[bytes]]:
    """POST every body to /ocsp with ``concurrency`` keep-alive clients on plain sockets; (seconds, latencies,
    replies). http.client cost the client more CPU per request than the responder's whole answer; this
    writes prepared request bytes and reads status line, headers and a Content-Length body, nothing more.
    A reply other than HTTP 200 stops the run."""
    import socket
    import threading

    head = ("POST /ocsp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/ocsp-request\r\n"
            "Content-Length: {length}\r\n\r\n")
    messages = [head.format(port=port, length=len(b)).encode() + b for b in bodies]
    latencies = [0.0] * len(bodies)
    replies: list[bytes] = [b""] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""

        def more() -> bytes:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            return chunk
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                started = time.perf_counter()
                sock.sendall(messages[i])
                while b"\r\n\r\n" not in buffer:
                    buffer += more()
                header, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(header.lower().split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += more()
                replies[i], buffer = buffer[:length], buffer[length:]
                latencies[i] = time.perf_counter() - started
                if header[9:12] != b"200":
                    raise RuntimeError(f"HTTP {header[9:12].decode()}: {replies[i][:300]!r}")
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            errors.append(exc)
        finally:
            sock.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"load generator: {errors[0]}")
    return time.perf_counter() - started, latencies, replies


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (those still alive), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (serve.py, gunicorn's arbiter and workers, nginx)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _backends() -> list[int]:
    """The PostgreSQL server processes serving the benchmark database (the server's connections)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cur.fetchall()]


def _serving(root: int) -> list[int]:
    """The processes below ``root`` that answer requests: not the scheduler or the peer connector make run starts
    beside them (``manage.py ...``), whose start-up would otherwise be counted as the answers' CPU."""
    def ours(pid: int) -> bool:
        try:
            return b"manage.py" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    return [pid for pid in _descendants(root) if ours(pid)]


def _settle(pids: list[int], seconds: float = 30) -> None:
    """Wait until ``pids`` are idle (a worker still loading Django would count its start-up as answers' CPU)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = _cpu_seconds(pids)
        time.sleep(0.5)
        if _cpu_seconds(pids) - before < 0.05:
            return


def _measure(proc: subprocess.Popen, port: int, warm: list[bytes], bodies: list[bytes], concurrency: int) -> dict:
    """Warm ``proc``'s server up, then POST ``bodies``: seconds, latencies, replies and CPU seconds of the server's
    processes, of the PostgreSQL sessions serving this database and of this process."""
    post_raw(port, warm, concurrency)  # every thread's connection and prepared statements
    server = _serving(proc.pid)
    _settle(server)
    post_raw(port, warm, concurrency)
    backends = _backends()
    cpu = (_cpu_seconds(server), _cpu_seconds(backends), time.process_time())
    seconds, latencies, replies = post_raw(port, bodies, concurrency)
    return {"seconds": seconds, "latencies": latencies, "replies": replies,
            "server": _cpu_seconds(server) - cpu[0], "postgres": _cpu_seconds(backends) - cpu[1],
            "client": time.process_time() - cpu[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="requests (one certificate each)")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--smoke", action="store_true", help="a few requests: check that it runs")
    parser.add_argument("--ocsp-workers", type=int, default=None,
                        help="serve.py's --ocsp-workers for the pki run (default: make run's; 0: gunicorn answers)")
    args = parser.parse_args()
    n = 16 if args.smoke else args.n
    setup_django(DATABASE)
    import tempfile

    from tests.protocols.scep.live import free_port

    port = args.port or free_port()
    ca_cert, responder, certs = prepare(min(n, 200))
    from django.db import connection

    from pki.models import CertificateAuthority

    with connection.cursor() as cur:  # planner statistics, as autovacuum keeps them on a database in use
        cur.execute("ANALYZE")
    ca_id = CertificateAuthority.objects.get(name="OcspBenchCA").pk
    os.environ[FLOOR_DB_ENV] = floor_db_config(ca_id, format(certs[0].serial_number, "x"))
    connection.close()  # the floors' sessions are then the only ones on this database besides the server's
    requests = build_requests(ca_cert, [certs[i % len(certs)] for i in range(n)])
    bodies = [r[0] for r in requests]
    warm = [r[0] for r in build_requests(ca_cert, certs[: 4 * args.c])]
    raw_seconds = 0.2 if args.smoke else 3.0
    raw_before = raw_rate(ca_cert, certs, raw_seconds)
    load_before = load()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, start in (("pki", lambda t, p: start_make_run(t, p, args.ocsp_workers)),
                            ("floor_db", lambda t, p: start_responder_floor(t, p, "ocsp:floor_db")),
                            ("responder", start_responder_floor), ("gunicorn", start_floor)):
            if name == "floor_db":
                raw_after = raw_rate(ca_cert, certs, raw_seconds)
            proc = start(Path(tmp), port)
            try:
                runs[name] = _measure(proc, port, warm, bodies, args.c)
            finally:
                stop(proc)
            connection.close()
    failed = check(requests, runs["pki"]["replies"], responder)
    raw = (raw_before[0] + raw_after[0]) / 2
    raw_cpu = (raw_before[1] + raw_after[1]) / 2
    serve = _serve()
    on_responder = serve.OCSP_WORKERS if args.ocsp_workers is None else args.ocsp_workers

    def rate(name: str) -> float:
        return n / runs[name]["seconds"]

    def ms(name: str, part: str) -> float:
        return runs[name][part] / n * 1000

    def row(label: str, per_second: float, name: str | None, bad="") -> tuple:
        if name is None:
            return label, f"{per_second:,.0f}", "", "", "", bad
        lat = sorted(runs[name]["latencies"])
        cpu = f"{ms(name, 'server'):.2f} / {ms(name, 'postgres'):.2f} / {ms(name, 'client'):.2f}"
        return (label, f"{per_second:,.0f}", f"{statistics.median(lat) * 1000:.1f}",
                f"{lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000:.1f}", cpu, bad)

    responder_shape = f"{serve.OCSP_WORKERS or 2}x{serve.OCSP_THREADS}"
    path = (f"nginx -> responder granian {on_responder}x{serve.OCSP_THREADS}" if on_responder
            else "nginx -> gunicorn 2x4")
    print(f"OCSP responder, P-256 binding, make run (scripts/serve.py: {path}), "
          f"PostgreSQL, {n} requests with nonce, concurrency {args.c}, load {load_before} -> {load()}")
    print(table([
        row("pki /ocsp (HTTP, every answer verified)", rate("pki"), "pki", failed),
        row(f"nginx + granian {responder_shape}, no-op app + the state statement", rate("floor_db"), "floor_db"),
        row(f"nginx + granian {responder_shape}, no-op WSGI app", rate("responder"), "responder"),
        row("make run's gunicorn 2x4 alone, no-op WSGI app", rate("gunicorn"), "gunicorn"),
        row(f"cryptography build+sign, 1 thread ({raw_before[0]:,.0f} before, {raw_after[0]:,.0f} after)", raw,
            None),
    ], ("", "responses/s", "p50 ms", "p99 ms", "CPU ms/answer: server / PostgreSQL / client", "failed")))
    cores = os.cpu_count() or 1

    def bound(name: str) -> float:
        """Answers per second if every core were the pipeline's: cores / its CPU per answer."""
        return cores * 1000 / (ms(name, "server") + ms(name, "postgres") + ms(name, "client"))

    print(f"ratio {rate('pki') / raw:.2f} of raw (target {TARGET:.2f}); one round trip floor / raw "
          f"{rate('floor_db') / raw:.2f}; pki / one round trip floor {rate('pki') / rate('floor_db'):.2f}")
    # The same comparison by CPU, which the machine's other load moves less: the pipeline with all cores to
    # itself against the raw thread with one core to itself.
    print(f"by CPU: raw build+sign {raw_cpu:,.0f} per CPU second; {cores} cores / CPU per answer of the whole "
          f"pipeline: pki {bound('pki'):,.0f}/s = {bound('pki') / raw_cpu:.2f} of raw, one round trip floor "
          f"{bound('floor_db'):,.0f}/s = {bound('floor_db') / raw_cpu:.2f} of raw: {TARGET:.2f} is "
          f"{'within' if bound('floor_db') / raw_cpu >= TARGET else 'out of'} reach of a pipeline with one "
          "PostgreSQL round trip per answer on this machine")
    if failed:
        raise SystemExit(f"{failed} answers were wrong")


if __name__ == "__main__":
    main()
