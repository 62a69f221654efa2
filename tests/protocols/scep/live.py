"""A real SCEP server for interoperability tests and ``benchmarks/scep_enroll.py``: gunicorn on 127.0.0.1 (a
free port) against a PostgreSQL database of its own, with an RSA-2048 CA on a soft token and two aliases.

Aliases: ``scep`` (CA mode, the default URL) and ``ra-devices`` (RA mode, shared secret ``s3cret``). Both allow
single DES because micromdm's ``scepclient`` 2.1 encrypts with DES-CBC only, and leave the CA certificate out of
responses unless ``include_ca``: scepclient keeps the first certificate of a CertRep as its own. ``close()``
stops gunicorn by its process group and drops the database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.environ import child_environ

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
RA_SECRET = "s3cret"

SETUP = """
from cryptotokens import services as tokens
from endentities.services import add_end_entity, ensure_empty_profile
from endentities.validation import EndEntityInput
from pki.auth.access import Actor
from pki.services.cas import CASettings, create_ca
from pki.services.profiles import ensure_builtin_profiles
from protocols.scep import services

a = Actor.system_actor("setup")
ensure_builtin_profiles()
ensure_empty_profile()
token = tokens.create_token(a, name="ScepToken", token_type="SoftCryptoToken", auth_code="foo123", auto_activate=True)
ca = create_ca(a, CASettings(name="ScepCA", subject_dn="CN=ScepCA,O=Test,C=SE", crypto_token=token,
                             key_alias="signKey", key_spec="RSA2048"))
services.add_alias(a, "scep", default_ca=ca, allow_des=True, include_ca=%(include_ca)r)
# RA mode on EMPTY, as a user sets it up (its end entities get no enrollment code: the RA secret authenticated them).
services.add_alias(a, "ra-devices", operation_mode="ra", ra_default_ca=ca, ra_auth_password="%(secret)s",
                   ra_end_entity_profile="EMPTY", allow_des=True, include_ca=%(include_ca)r)
for name in %(users)r:
    add_end_entity(a, EndEntityInput(username=name, password="foo123", subject_dn=f"CN={name},O=Test,C=SE", ca=ca,
                                     certificate_profile="ENDUSER"))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveScepServer:
    """Database, setup and gunicorn; use as a context manager."""

    def __init__(self, tmp: Path, *, workers: int = 2, threads: int = 4, users: tuple[str, ...] = (),
                 include_ca: bool = False):
        import dj_database_url

        server_url = os.environ.get("DATABASE_URL", "")
        if not server_url.startswith("postgres"):
            raise AssertionError("DATABASE_URL must name the PostgreSQL server (make test sets it)")
        self.tmp = tmp
        self.workers = workers
        self.threads = threads  # as `make run`: a thread waiting on PostgreSQL leaves the core to another
        self.users = users
        self.include_ca = include_ca
        self.db_name = f"pki_scep_live_{secrets.token_hex(4)}"
        server = dj_database_url.parse(server_url)
        self._admin = {"dbname": "postgres", "user": server["USER"], "password": server["PASSWORD"] or None,
                       "host": server["HOST"] or None, "port": server["PORT"] or None}
        self.env = {
            **child_environ(),
            "DATABASE_URL": urlsplit(server_url)._replace(path=f"/{self.db_name}").geturl(),
            "PKI_MASTER_KEY": f"scep-live-{secrets.token_urlsafe(24)}",
            "PKI_VAR_DIR": str(tmp / "var"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DB_CONN_MAX_AGE": "600",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen | None = None
        self.base = ""
        self.log = tmp / "gunicorn.log"

    def _sql(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(**self._admin)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Read the server's own database (what the processes stored)."""
        import psycopg2

        conn = psycopg2.connect(**{**self._admin, "dbname": self.db_name})
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def manage(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args[:2])} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def create_database(self) -> None:
        """This server's database, migrated: a copy of the suite's migrated template (tests.support.templatedb), as
        ``migrate`` would leave it, without a Python start and every migration for each server."""
        from tests.support.templatedb import create_database

        create_database(self.db_name)

    def start(self) -> LiveScepServer:
        self.create_database()
        self.manage("shell", "-c", SETUP % {"secret": RA_SECRET, "users": list(self.users),
                                                  "include_ca": self.include_ca})
        port = free_port()
        handle = self.log.open("w")
        self.process = subprocess.Popen(self.command(port), cwd=ROOT, env=self.env, stdout=handle,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.logs()}")
            try:
                urllib.request.urlopen(self.url("scep") + "?operation=GetCACaps", timeout=5).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer within 30 s:\n{self.logs()}")

    def command(self, port: int) -> list[str]:
        """gunicorn on 127.0.0.1:``port``, with the settings every start path shares (pki/gunicorn_conf.py)."""
        argv = [str(BIN / "gunicorn"), "pki.wsgi", "-c", "python:pki.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
                "--workers", str(self.workers), "--threads", str(self.threads), "--access-logfile", "-",
                "--control-socket", str(self.tmp / "g.ctl")]
        from gunicorn.config import KNOWN_SETTINGS

        if not any(s.name == "control_socket" for s in KNOWN_SETTINGS):
            argv = argv[:-2]
        return argv

    def url(self, alias: str | None = None, short: bool = False) -> str:
        if alias is None:
            return f"{self.base}/ejbca/publicweb/apply/scep/pkiclient.exe"
        return f"{self.base}/scep/{alias}/pkiclient.exe" if short else \
            f"{self.base}/ejbca/publicweb/apply/scep/{alias}/pkiclient.exe"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)  # gunicorn's quick shutdown, workers included
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        # DROP DATABASE makes PostgreSQL checkpoint (seconds on a busy machine): in a thread of its own, so the next
        # test need not wait; not a daemon, so the interpreter waits for it before it exits.
        threading.Thread(target=self._drop_database, name=f"drop {self.db_name}").start()

    def _drop_database(self) -> None:
        with contextlib.suppress(Exception):
            self._sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def __enter__(self) -> LiveScepServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()
