"""Real nodes on loopback for the peers tests (:class:`PeerNodes`): a CA node (its own PostgreSQL database, no web
server: a CA takes no connections, it only runs ``manage.py peer run``) and an RA node, a VA node or both (each its
own database, gunicorn, and the mTLS listener of :mod:`tests.peers.tlsproxy` in front).

The CA has an RSA CA with the SCEP aliases of :mod:`tests.protocols.scep.live`. For an RA: the connector's
authentication key binding ``ra-link`` (and ``stranger``, whose certificate no RA role knows), a server certificate
for the RA listener, and a role letting both bindings carry SCEP; the RA has the CA's certificate imported and a
role admitting ``ra-link`` as an incoming peer. For a VA: the binding ``va-link``, the VA listener's server
certificate, a ``subscriber`` certificate, and the certificate of the VA's own OCSP key binding (whose key the VA
made); the VA imports it, and admits ``va-link``."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from tests.protocols.scep.live import BIN, ROOT, SETUP, free_port
from tests.support.environ import child_environ
from tests.support.templatedb import create_database

from .tlsproxy import TlsProxy

# Every node's setup runs at the same time as the others; what one needs of another's comes as a file in the shared
# directory, published by rename (there whole or not at all). A setup that failed leaves SETUP_FAILED there, so
# the others stop waiting at once.
SETUP_FAILED = "setup-failed"
SHARED = """
import time as _time
from pathlib import Path as _Path

def publish(path, data):
    part = _Path(str(path) + ".part")
    part.write_bytes(data)
    part.replace(path)

def wait_for(path):
    end = _time.monotonic() + 120
    while not _Path(path).exists():
        if _Path(%(out)r, "setup-failed").exists() or _time.monotonic() > end:
            raise SystemExit(f"{path}: the node that makes it failed")
        _time.sleep(0.05)
    return _Path(path)
"""

# The CA's setup after SETUP (its CA, ``a``, ``tokens``): what every peered node needs, then one part per node
# kind (CA_FOR_RA, CA_FOR_VA), then CA_END.
CA_SETUP = """
import json
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keybindings import services as kb
from peers import services as peers
from pki.choices import MemberMatch
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateAuthority, CertificateProfile
from pki.services import roles
from pki.x509.dn import parse_dn

out = Path(%(out)r)
ca = CertificateAuthority.objects.get(name="ScepCA")
kbt = tokens.create_token(a, name="PeerToken", token_type="SoftCryptoToken", auth_code="foo123", auto_activate=True)
ids = {}

def binding(name, cn):
    b = kb.create_binding(a, name=name, binding_type="AuthenticationKeyBinding", crypto_token=kbt, key_spec="P-256",
                          trusted_certificates=[{"ca": "ScepCA", "serial": ""}])
    kb.issue_certificate(a, b, ca=ca, profile=CertificateProfile.objects.get(name="ENDUSER"),
                         subject_dn=f"CN={cn},O=Test")
    return kb.set_status(a, b, "ACTIVE")

def issued(name, profile, san=""):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(f"CN={name},O=Test")).sign(key, hashes.SHA256())
    row = issue(IssuanceRequest(ca=ca, actor=a, profile=CertificateProfile.objects.get(name=profile), csr=csr,
                                subject_alt_name=san, username=name)).row
    (out / f"{name}.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return row

def server(name):
    return issued(name, "SERVER", "IPADDRESS=127.0.0.1")
"""

CA_FOR_RA = """
create_ca(a, CASettings(name="OtherCA", subject_dn="CN=OtherCA,O=Test,C=SE", crypto_token=token, key_alias="otherKey",
                        key_spec="P-256"))
link, stranger = binding("ra-link", "ca-connector"), binding("stranger", "stranger")
ra_server = server("ra-server")
server("no-client-auth")  # serverAuth only: what an RA must refuse as a client
role = roles.create_role(a, "RA connectors")
for b in (link, stranger):
    roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, b.certificate.serial, issuer_ca=ca))
roles.set_rules(a, role, {"/peer/carry/scep": True})
peers.add_connector(a, name="dmz-ra", url=%(url)r, binding="ra-link")
peers.add_connector(a, name="stranger-ra", url=%(url)r, binding="stranger", enabled=False)
ids.update(link_serial=link.certificate.serial, ra_server_serial=ra_server.serial)
"""

CA_FOR_VA = """
va_link = binding("va-link", "ca-va-connector")
server("va-server")
ids["subscriber"] = issued("subscriber", "ENDUSER").serial
# The VA's OCSP signer: its key stays on the VA; the CA certifies the VA's request.
row = issue(IssuanceRequest(ca=ca, actor=a, profile=CertificateProfile.objects.get(name="OCSPSIGNER"),
                            csr=x509.load_pem_x509_csr(wait_for(out / "va-ocsp.csr").read_bytes()),
                            username="va-ocsp")).row
(out / "va-ocsp.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
peers.add_connector(a, name="va", url=%(url)r, binding="va-link")
ids["va_link_serial"] = va_link.certificate.serial
"""

CA_END = """
(out / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
publish(out / "ids.json", json.dumps(ids).encode())  # last: the RA and VA setups wait for it
"""

RA_SETUP = """
import json
from pathlib import Path
from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.services import roles
from pki.services.cas import import_ca

a = Actor.system_actor("setup")
out = Path(%(out)r)
serial = json.loads(wait_for(out / "ids.json").read_text())["link_serial"]
ca = import_ca(a, "ScepCA", (out / "ca.pem").read_bytes())
role = roles.create_role(a, "CA peers")
roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, serial, issuer_ca=ca))
roles.set_rules(a, role, {"/peer/incoming": True})
"""

# On the VA, then VA_SETUP in the same process: its OCSP key binding's key and request (the CA certifies it).
VA_KEY = """
from pathlib import Path
from cryptotokens import services as tokens
from keybindings import services as kb
from pki.auth.access import Actor

a = Actor.system_actor("setup")
token = tokens.create_token(a, name="VaToken", token_type="SoftCryptoToken", auth_code="foo123", auto_activate=True)
binding = kb.create_binding(a, name="va-ocsp", binding_type="OcspKeyBinding", crypto_token=token, key_spec="P-256")
publish(Path(%(out)r, "va-ocsp.csr"), kb.generate_csr(a, binding, subject_dn="CN=va-ocsp,O=Test"))
"""

VA_SETUP = """
import json
from pathlib import Path
from keybindings import services as kb
from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.services import roles
from pki.services.cas import import_ca

a = Actor.system_actor("setup")
out = Path(%(out)r)
serial = json.loads(wait_for(out / "ids.json").read_text())["va_link_serial"]
ca = import_ca(a, "ScepCA", (out / "ca.pem").read_bytes())
binding = kb.get_binding(a, "va-ocsp")
kb.import_certificate(a, binding, (out / "va-ocsp.pem").read_bytes())
kb.set_status(a, binding, "ACTIVE")
role = roles.create_role(a, "CA peers")
roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, serial, issuer_ca=ca))
roles.set_rules(a, role, {"/peer/incoming": True})
"""


MANY = """
import io, json
from pathlib import Path
from django.core.management import call_command
from django.core.management.base import CommandError

results = []
for argv in json.loads(%(commands)r):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*argv, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        err.write(f"CommandError: {exc}\\n")
        code = exc.returncode
    results.append([code, out.getvalue(), err.getvalue()])
Path(%(results)r).parent.mkdir(parents=True, exist_ok=True)
Path(%(results)r).write_text(json.dumps(results))
"""


class Node:
    """A node's database, environment and ``manage.py``."""

    def __init__(self, tmp: Path, role: str, db_name: str, **env: str):
        import dj_database_url

        server_url = os.environ.get("DATABASE_URL", "")
        if not server_url.startswith("postgres"):
            raise AssertionError("DATABASE_URL must name the PostgreSQL server (make test sets it)")
        self.db_name = db_name
        server = dj_database_url.parse(server_url)
        self._admin = {"dbname": "postgres", "user": server["USER"], "password": server["PASSWORD"] or None,
                       "host": server["HOST"] or None, "port": server["PORT"] or None}
        (tmp / role).mkdir(parents=True, exist_ok=True)
        self.env = {
            **child_environ(),
            "DATABASE_URL": urlsplit(server_url)._replace(path=f"/{db_name}").geturl(),
            "PKI_MASTER_KEY": f"peers-live-{secrets.token_urlsafe(24)}", "PKI_VAR_DIR": str(tmp / role / "var"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
            "PKI_NODE_ROLE": role, **env,
        }

    def sql(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(**self._admin)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(**{**self._admin, "dbname": self.db_name})
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def manage(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args[:2])} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def manage_many(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
        """Several management commands in ONE ``manage.py`` process (a Python and Django start each is most of a
        command's time), in order, each whatever the one before did; per command what ``manage.py`` would have
        given: the exit code (a CommandError's), its output, and its error output with Django's ``CommandError:``
        line."""
        results = self.env["PKI_VAR_DIR"] + f"/commands-{secrets.token_hex(4)}.json"
        self.manage("shell", "-c", MANY % {"commands": json.dumps(commands), "results": results})
        return [subprocess.CompletedProcess(list(argv), code, out, err)
                for argv, (code, out, err) in zip(commands, json.loads(Path(results).read_text()), strict=True)]

    def create(self) -> None:
        """A migrated database with the cache table (as `init` makes it: the refusal counters live in the cache),
        copied from the suite's migrated template instead of two ``manage.py`` runs."""
        create_database(self.db_name)

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            self.sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def _stop(process: subprocess.Popen | None, sig=signal.SIGTERM, grace: float = 10) -> None:
    """``sig`` to the process group, SIGKILL after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


DROP = """
import os, sys, threading, psycopg2
def drop(name):
    conn = psycopg2.connect(os.environ["DROP_FROM"])
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
threads = [threading.Thread(target=drop, args=(n,)) for n in sys.argv[1:]]
for t in threads: t.start()
for t in threads: t.join()
"""


def drop_later(nodes: list[Node]) -> None:
    """Drop the nodes' databases in a process of their own, not waited for: on PostgreSQL 15 each DROP DATABASE
    waits for a checkpoint (3 to 9 s on a busy test server), and nothing of a test depends on it any more. The
    drops run at once, so they share the checkpoint."""
    if not nodes:
        return
    admin = urlsplit(nodes[0].env["DATABASE_URL"])._replace(path="/postgres").geturl()  # not in argv: ps shows it
    subprocess.Popen([sys.executable, "-c", DROP, *(n.db_name for n in nodes)], env={**os.environ, "DROP_FROM": admin},
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


class Listener:
    """A node's web side: gunicorn on a loopback port and the mTLS listener (:class:`TlsProxy`) in front, on the
    port the CA's connector URL names."""

    def __init__(self, node: Node, log: Path, *, workers: int, threads: int, access_log: bool = False):
        self.node, self.log = node, log
        self.port, self.listener_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"  # gunicorn itself (what the listener forwards to)
        self.url = f"https://127.0.0.1:{self.listener_port}"
        self.gunicorn = subprocess.Popen(
            [str(BIN / "gunicorn"), "pki.wsgi", "-c", "python:pki.gunicorn_conf", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--threads", str(threads), *(["--access-logfile", "-"] if access_log else []),
             # Unused here, and by default one path for every gunicorn of the host (~/.gunicorn/gunicorn.ctl).
             "--no-control-socket"],
            cwd=ROOT, env=node.env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.proxy: TlsProxy | None = None

    def listen(self, cert: Path, key: Path, client_ca: Path) -> None:
        """The mTLS listener, once the CA has issued its server certificate."""
        self.proxy = TlsProxy(cert, key, client_ca, self.port, port_hint=self.listener_port)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.gunicorn.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{self.log.read_text(errors='replace')[-6000:]}")
            try:
                urllib.request.urlopen(self.base + "/login/", timeout=5).close()
                return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"gunicorn did not answer:\n{self.log.read_text(errors='replace')[-6000:]}"
                                         ) from None
                time.sleep(0.1)

    def close(self) -> None:
        """Stop gunicorn and the listener (the node is down: connections to it are refused). gunicorn's quick
        shutdown takes 1 to 3 s; now and then a worker of the RA's is still there after 10 (a request thread it
        waits for at exit), and nothing here needs it to go cleanly: SIGKILL after 4."""
        _stop(self.gunicorn, signal.SIGINT, grace=4)
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None


class PeerNodes:
    """The CA node (no web server: a CA takes no connections, it only runs ``manage.py peer run``) and the nodes
    its connector process connects to: an RA (``ra=True``, the connector ``dmz-ra``), a VA (``va=True``, the
    connector ``va``: the VA's own OCSP key binding, certified by the CA), or both at once. Each node has its own
    database; an RA or VA is gunicorn behind the mTLS :class:`Listener`."""

    def __init__(self, tmp: Path, *, ra: bool = True, va: bool = False, users: tuple[str, ...] = (),
                 request_timeout: float = 20, lease: float = 4, workers: int = 2):
        self.tmp, self.users, self.workers = tmp, users, workers
        tag = secrets.token_hex(3)
        self.ca = Node(tmp, "ca", f"peers_ca_{tag}")
        self.ra = Node(tmp, "ra", f"peers_ra_{tag}", PKI_BEHIND_TLS_PROXY="1", PKI_TRUSTED_PROXIES="127.0.0.1",
                       PKI_PEER_REQUEST_TIMEOUT=str(request_timeout), PKI_PEER_LEASE_SECONDS=str(lease)) if ra else None
        self.va = Node(tmp, "va", f"peers_va_{tag}", PKI_BEHIND_TLS_PROXY="1",
                       PKI_TRUSTED_PROXIES="127.0.0.1") if va else None
        self.out = tmp / "shared"
        self.out.mkdir(exist_ok=True)
        self.connector: subprocess.Popen | None = None
        self.ra_web: Listener | None = None
        self.va_web: Listener | None = None

    # The RA's web side under the names the two-node tests and benchmarks/peer_scep.py use.
    @property
    def gunicorn(self) -> subprocess.Popen | None:
        return self.ra_web.gunicorn if self.ra_web else None

    @property
    def proxy(self) -> TlsProxy | None:
        return self.ra_web.proxy if self.ra_web else None

    @property
    def ra_base(self) -> str:
        return self.ra_web.base if self.ra_web else ""

    @property
    def proxy_url(self) -> str:
        return self.ra_web.url if self.ra_web else ""

    @property
    def va_base(self) -> str:
        return self.va_web.base if self.va_web else ""

    def _nodes(self) -> list[Node]:
        return [n for n in (self.ca, self.ra, self.va) if n is not None]

    def start(self) -> PeerNodes:
        for node in self._nodes():
            node.create()
        # gunicorn starts while the setup scripts run: it reads nothing of them before the first request.
        if self.ra is not None:
            self.ra_web = Listener(self.ra, self.tmp / "ra.log", workers=self.workers, threads=8, access_log=True)
        if self.va is not None:
            self.va_web = Listener(self.va, self.tmp / "va.log", workers=1, threads=4)
        out = {"out": str(self.out)}
        script = SETUP % {"secret": "s3cret", "users": list(self.users), "include_ca": False}
        script += (SHARED + CA_SETUP) % out
        if self.ra_web is not None:
            script += CA_FOR_RA % {"url": self.ra_web.url}
        if self.va_web is not None:
            script += CA_FOR_VA % {"url": self.va_web.url}
        setups = [(self.ca, script + CA_END)]
        if self.ra is not None:
            setups.append((self.ra, (SHARED + RA_SETUP) % out))
        if self.va is not None:
            setups.append((self.va, (SHARED + VA_KEY + VA_SETUP) % out))
        with ThreadPoolExecutor(len(setups)) as pool:  # one manage.py process per node, all at once
            for done in [pool.submit(self._setup, node, setup) for node, setup in setups]:
                done.result()
        for web, name in ((self.ra_web, "ra-server"), (self.va_web, "va-server")):
            if web is not None:
                web.listen(self.out / f"{name}.pem", self.out / f"{name}.key", self.out / "ca.pem")
                web.wait_ready()
        return self

    def _setup(self, node: Node, script: str) -> None:
        try:
            node.manage("shell", "-c", script)
        except BaseException:
            (self.out / SETUP_FAILED).touch()
            raise

    def start_connector(self, lease_wait: float = 1, workers: int | None = 4) -> None:
        """``manage.py peer run``. A lease is answered as soon as work arrives (the RA's NOTIFY), so a short
        ``lease_wait`` costs no latency; it bounds how long a stop waits for the lease in flight. ``workers``:
        None leaves the command's default."""
        log = (self.tmp / "connector.log").open("a")
        pool = [] if workers is None else ["--workers", str(workers)]
        self.connector = subprocess.Popen(
            [sys.executable, "manage.py", "peer", "run", "--lease-wait", str(lease_wait), *pool],
            cwd=ROOT, env=self.ca.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_connected(self, timeout: float = 60) -> None:
        """Until every connector reports itself connected (and, to an RA, has pushed the SCEP aliases)."""
        names = [n for n, node in (("dmz-ra", self.ra), ("va", self.va)) if node is not None]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connector is not None and self.connector.poll() is not None:
                raise AssertionError(f"connector exited:\n{self.logs('connector')}")
            connected = self.ca.query("SELECT count(*) FROM peers_peerconnector WHERE name = ANY(%s) "
                                      "AND state = 'connected'", (names,))[0][0]
            if connected == len(names) and (
                    self.ra is None or self.ra.query("SELECT count(*) FROM peers_pushedscepalias")[0][0]):
                return
            time.sleep(0.1)
        raise AssertionError(f"connector did not connect:\n{self.logs('connector')}")

    def stop_connector(self, sig=signal.SIGTERM) -> None:
        _stop(self.connector, sig)
        self.connector = None

    def scep_url(self, alias: str) -> str:
        return f"{self.ra_base}/ejbca/publicweb/apply/scep/{alias}/pkiclient.exe"

    def logs(self, which: str) -> str:
        path = self.tmp / f"{which}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def until(self, what, timeout: float = 60, why: str = "timed out"):
        """``what()``'s first true result, looked at every 50 ms; after ``timeout`` seconds an AssertionError with
        ``why`` and the connector's and the VA's logs."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            result = what()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"{why}\n{self.logs('connector')}\n{self.logs('va')}")

    def close(self) -> None:
        # The processes stop side by side (each stop waits for its process), the databases go in the background.
        stops = [self.stop_connector] + [w.close for w in (self.ra_web, self.va_web) if w is not None]
        with ThreadPoolExecutor(len(stops)) as pool:
            for stopped in [pool.submit(stop) for stop in stops]:
                stopped.result()
        drop_later(self._nodes())

    def __enter__(self) -> PeerNodes:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


PeerPair = PeerNodes  # the CA and an RA: the default


def ids(pair: PeerNodes) -> dict:
    return json.loads((pair.out / "ids.json").read_text())


def scepclient(workdir: Path, url: str, cn: str, challenge: str) -> subprocess.CompletedProcess:
    """micromdm's ``scepclient`` enrolling ``cn`` with a new RSA key in ``workdir`` (``client.pem`` on success)."""
    workdir.mkdir(parents=True)
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", "key.pem", "2048"], cwd=workdir, check=True,
                   capture_output=True)
    return subprocess.run(["scepclient", "-server-url", url, "-private-key", "key.pem", "-challenge", challenge,
                           "-cn", cn, "-organization", "Test", "-country", "SE"],
                          cwd=workdir, capture_output=True, text=True, timeout=180)


def openssl_ocsp(pair: PeerNodes, cert: Path) -> str:
    """``openssl ocsp`` asking the VA about ``cert`` (issued by the CA), the answer's signature verified against
    the CA; its report (``<cert>: good``, ``revoked``, ``Reason: ...``)."""
    out = subprocess.run(["openssl", "ocsp", "-issuer", str(pair.out / "ca.pem"), "-cert", str(cert), "-url",
                          pair.va_base + "/ocsp", "-CAfile", str(pair.out / "ca.pem"), "-no_nonce"],
                         capture_output=True, text=True, timeout=30)
    assert "Response verify OK" in out.stderr + out.stdout, out.stdout + out.stderr
    return out.stdout
