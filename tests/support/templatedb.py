"""A migrated, empty PostgreSQL database to copy instead of migrating each fresh one (the pytest-django test
databases, the peers nodes, the ejbca.sh script's installation).

``migrate`` on an empty database costs a Python start and every migration; ``CREATE DATABASE ... TEMPLATE``
copies the result in a fraction of a second. The template is named after a digest of every migration file (and
the cache table ``init`` makes), so a changed migration builds a new one; it is built once per PostgreSQL server
under an advisory lock (two pytest-xdist workers wait for one build), into a scratch name renamed when complete.
A freshly migrated database holds nothing that depends on the environment (no master-key MACs: the audit chain
head stays empty until the first event), so one template serves every node and key.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .environ import child_environ

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "pki_tpl_"
_LOCK = 0x706B6974  # pg_advisory_lock key: "pkit"
_built: dict[str, str] = {}


def _admin() -> dict:
    import dj_database_url

    server = dj_database_url.parse(_server_url())
    return {"dbname": "postgres", "user": server["USER"], "password": server["PASSWORD"] or None,
            "host": server["HOST"] or None, "port": server["PORT"] or None}


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise AssertionError("DATABASE_URL must name the PostgreSQL server (make test sets it)")
    return url


def _digest() -> str:
    """Of every migration module on disk and the cache table: what a fresh ``migrate`` + ``init`` produce."""
    from django.conf import settings
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    digest = hashlib.sha256(repr(settings.CACHES["default"]).encode())
    for key in sorted(loader.disk_migrations):
        module = sys.modules[loader.disk_migrations[key].__module__]
        digest.update(repr(key).encode())
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return cur.fetchone() is not None


def migrated_template() -> str:
    """The template's name, building it first if this server has none for the current migrations."""
    import psycopg2

    name = PREFIX + _digest()
    if name in _built:
        return name
    conn = psycopg2.connect(**_admin())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
            try:
                if not _exists(cur, name):
                    scratch = f"{name}_build_{os.getpid()}"
                    cur.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
                    cur.execute(f'CREATE DATABASE "{scratch}"')
                    try:
                        _migrate(scratch)
                    except BaseException:
                        cur.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
                        raise
                    cur.execute(f'ALTER DATABASE "{scratch}" RENAME TO "{name}"')
                    # As template0: nothing (autovacuum included) connects to it, so a copy never finds it in use.
                    cur.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            finally:
                cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    finally:
        conn.close()
    _built[name] = name
    return name


def _migrate(db_name: str) -> None:
    env = {**child_environ(),
           "DATABASE_URL": urlsplit(_server_url())._replace(path=f"/{db_name}").geturl(),
           "PKI_MASTER_KEY": "template-build-key"}
    for args in (("migrate", "--noinput", "-v0"), ("createcachetable",)):
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
        if out.returncode != 0:
            raise AssertionError(f"manage.py {args[0]} (template) failed:\n{out.stdout}\n{out.stderr}")


def create_database(db_name: str) -> None:
    """``db_name`` as a fresh copy of the migrated template (dropped first if a crashed run left it)."""
    import psycopg2

    template = migrated_template()
    conn = psycopg2.connect(**_admin())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{db_name}" TEMPLATE "{template}"')
    finally:
        conn.close()
