"""OCSP responses per second through the HTTP endpoint, next to raw ``cryptography`` building and signing.

The server is ``make run``'s: scripts/serve.py with its defaults (nginx in front of gunicorn 2x4, which answers
OCSP; ``--ocsp-workers N`` would send OCSP to processes of its own, protocols/ocsp/wsgi.py under granian), on
PostgreSQL (planner statistics taken, as autovacuum keeps them), with a P-256 CA and an active P-256 OCSP key
binding that signs the answers. The requests (one certificate each, SHA-1 CertID, a
nonce, as OpenSSL sends them) are built before the clock starts and POSTed by 8 keep-alive clients on plain
sockets (http.client cost the client more CPU per request than the whole answer costs the server); after the
clock stops every answer is parsed and checked (successful, signature by the binding's key, status good, the
nonce echoed).

Printed beside it, measured in the same run:
- the raw rate: ``cryptography``'s OCSPResponseBuilder signing one good answer with a P-256 key on one thread
  of this process, before and after the HTTP run (the mean is the ratio's denominator);
- the floors: a WSGI app that reads the request and returns 400 fixed bytes, driven by the same client, under
  make run's gunicorn (2x4, no nginx): what any Python responder behind this server can reach here; and behind
  nginx under granian as serve.py runs the responder's own processes (2x2 when the default is off);
- CPU per answer of the server processes, of the PostgreSQL sessions serving them and of the client, and the
  load average before and after: the machine may be shared, and the figures move with it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python benchmarks/ocsp.py [-n 3000] [-c 8]
    ... benchmarks/ocsp.py --smoke        # CI: a few requests, checks that it runs and prints its figures
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
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


def raw_rate(ca_cert, certs, seconds: float) -> float:
    """Responses per second that cryptography builds and signs with a P-256 key on one thread."""
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
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        cert = certs[done % len(certs)]
        (ocsp.OCSPResponseBuilder()
         .add_response(cert=cert, issuer=ca_cert, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
                       this_update=now, next_update=now + timedelta(minutes=5), revocation_time=None,
                       revocation_reason=None)
         .responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
         .sign(key, hashes.SHA256()))
        done += 1
    return done / (time.perf_counter() - started)


def floor(environ, start_response):
    """A WSGI application that reads the request and answers a fixed 400 bytes: the ceiling of any Python
    responder behind this gunicorn and this client (run as ``ocsp:floor`` from benchmarks/)."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/ocsp-response"), ("Content-Length", "400")])
    return [b"\0" * 400]


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


def start_make_run(tmp: Path, port: int) -> subprocess.Popen:
    """scripts/serve.py as ``make run`` starts it (2 gunicorn workers of 4 threads; nginx in front when
    installed), without the scheduler (no periodic job runs during a two-minute benchmark)."""
    log = tmp / "serve.log"
    env = {**os.environ, "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"), "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--host", "127.0.0.1", "--port",
                             str(port), "--no-scheduler", "--run-dir", str(tmp / "run")],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for(proc, f"http://127.0.0.1:{port}/ocsp", log)
    return proc


def _serve():
    sys.path.insert(0, str(ROOT / "scripts"))
    import serve

    return serve


def start_floor(tmp: Path, port: int) -> subprocess.Popen:
    """gunicorn with make run's settings (serve.py's argv, as without nginx) serving :func:`floor`."""
    log = tmp / "floor.log"
    argv = _serve().gunicorn_argv(f"127.0.0.1:{port}", 2, 4, exposed=True)
    argv[1] = "ocsp:floor"
    proc = subprocess.Popen([*argv, "--chdir", str(ROOT / "benchmarks")], cwd=ROOT, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for(proc, f"http://127.0.0.1:{port}/", log)
    return proc


def start_responder_floor(tmp: Path, port: int) -> subprocess.Popen:
    """:func:`floor` on the responder's serving path: nginx (serve.py's configuration) sending /ocsp to granian
    with serve.py's argv for the responder; one process group to stop."""
    serve = _serve()
    log = tmp / "responder-floor.log"
    run_dir = tmp / "floor-run"
    run_dir.mkdir(exist_ok=True)
    run_dir.chmod(0o755)  # nginx's workers run as nobody when this runs as root
    tmp.chmod(0o755)
    upstream = serve.free_loopback_port()
    config = serve.render_nginx(run_dir, "127.0.0.1", port, serve.free_loopback_port(), ocsp_port=upstream)
    argv = serve.ocsp_argv(upstream, serve.OCSP_WORKERS or 2, serve.OCSP_THREADS)
    argv[-1] = "ocsp:floor"
    script = (f"{' '.join(argv)} & {serve.nginx_binary()} -p {run_dir} -c {config} -e stderr & "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="requests (one certificate each)")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    parser.add_argument("--smoke", action="store_true", help="a few requests: check that it runs")
    args = parser.parse_args()
    n = 16 if args.smoke else args.n
    setup_django(DATABASE)
    import tempfile

    from tests.protocols.scep.live import free_port

    port = args.port or free_port()
    ca_cert, responder, certs = prepare(min(n, 200))
    from django.db import connection

    with connection.cursor() as cur:  # planner statistics, as autovacuum keeps them on a database in use
        cur.execute("ANALYZE")
    requests = build_requests(ca_cert, [certs[i % len(certs)] for i in range(n)])
    warm = build_requests(ca_cert, certs[: 4 * args.c])
    raw_seconds = 0.2 if args.smoke else 3.0
    raw_before = raw_rate(ca_cert, certs, raw_seconds)
    load_before = load()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_make_run(Path(tmp), port)
        try:
            post_raw(port, [r[0] for r in warm], args.c)  # every thread's connection and prepared statements
            server, backends = _descendants(proc.pid), _backends()
            cpu = (_cpu_seconds(server), _cpu_seconds(backends), time.process_time())
            seconds, latencies, replies = post_raw(port, [r[0] for r in requests], args.c)
            cpu = (_cpu_seconds(server) - cpu[0], _cpu_seconds(backends) - cpu[1], time.process_time() - cpu[2])
        finally:
            stop(proc)
        raw_after = raw_rate(ca_cert, certs, raw_seconds)
        floors = {}
        for name, start in (("responder", start_responder_floor), ("gunicorn", start_floor)):
            proc = start(Path(tmp), port)
            try:
                post_raw(port, [r[0] for r in warm], args.c)
                floor_server = _descendants(proc.pid)
                floor_cpu = _cpu_seconds(floor_server)
                floor_seconds, floor_latencies, _ = post_raw(port, [r[0] for r in requests], args.c)
                floors[name] = (floor_seconds, floor_latencies, _cpu_seconds(floor_server) - floor_cpu)
            finally:
                stop(proc)
    failed = check(requests, replies, responder)
    raw = (raw_before + raw_after) / 2
    serve = _serve()
    rate = n / seconds
    floor_rate = n / floors["responder" if serve.OCSP_WORKERS else "gunicorn"][0]

    def row(name: str, per_second: float, lat: list[float] | None, bad="") -> tuple:
        if lat is None:
            return name, f"{per_second:,.0f}", "", "", bad
        lat = sorted(lat)
        return (name, f"{per_second:,.0f}", f"{statistics.median(lat) * 1000:.1f}",
                f"{lat[max(int(len(lat) * 0.99) - 1, 0)] * 1000:.1f}", bad)

    shape = f"{serve.OCSP_WORKERS or 2}x{serve.OCSP_THREADS}"
    path = f"nginx -> responder granian {shape}" if serve.OCSP_WORKERS else "nginx -> gunicorn 2x4"
    print(f"OCSP responder, P-256 binding, make run (scripts/serve.py: {path}), "
          f"PostgreSQL, {n} requests with nonce, concurrency {args.c}, load {load_before} -> {load()}")
    print(table([
        row("pki /ocsp (HTTP, every answer verified)", rate, latencies, failed),
        row(f"nginx + granian {shape}, no-op WSGI app", n / floors["responder"][0], floors["responder"][1]),
        row("make run's gunicorn 2x4 alone, no-op WSGI app", n / floors["gunicorn"][0], floors["gunicorn"][1]),
        row(f"cryptography build+sign, 1 thread ({raw_before:,.0f} before, {raw_after:,.0f} after)", raw, None),
    ], ("", "responses/s", "p50 ms", "p99 ms", "failed")))
    print(f"CPU ms per answer: server {cpu[0] / n * 1000:.2f} (no-op app under granian "
          f"{floors['responder'][2] / n * 1000:.2f}, under gunicorn {floors['gunicorn'][2] / n * 1000:.2f}), "
          f"PostgreSQL {cpu[1] / n * 1000:.2f}, "
          f"load generator {cpu[2] / n * 1000:.2f}; {os.cpu_count()} cores, shared with whatever else runs")
    print(f"ratio {rate / raw:.2f} of raw (target {TARGET:.2f}); floor / raw {floor_rate / raw:.2f}; "
          f"pki / floor {rate / floor_rate:.2f}")
    if failed:
        raise SystemExit(f"{failed} answers were wrong")


if __name__ == "__main__":
    main()
