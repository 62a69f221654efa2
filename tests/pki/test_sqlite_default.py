"""The embedded default database (SQLite, as `make run` uses it) runs in WAL mode with synchronous=NORMAL and a
busy timeout, so readers never wait for the writer and a second writer queues instead of failing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "pki.settings"
django.setup()
from django.db import connection
with connection.cursor() as c:
    out = {}
    for pragma in ("journal_mode", "synchronous", "busy_timeout"):
        c.execute("PRAGMA " + pragma)
        out[pragma] = c.fetchone()[0]
print(json.dumps(out))
"""


def test_sqlite_default_runs_in_wal_mode(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'pki.sqlite3'}", "PKI_MASTER_KEY": "t"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    pragmas = json.loads(out.strip().splitlines()[-1])
    # synchronous: 1 = NORMAL (2 would be FULL, a sync at every commit).
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30000}


QUEUE_PROBE = """
import fcntl, json, os, threading
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "pki.settings"
django.setup()
from django.db import connection, connections, transaction

lock_file = str(connection.settings_dict["NAME"]) + "-lock"
with connection.cursor() as c:
    c.execute("CREATE TABLE probe (n integer)")


def queue_taken():
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def insert(n):
    with connection.cursor() as c:
        c.execute("INSERT INTO probe VALUES (%s)", [n])


out = {"idle": queue_taken()}
with transaction.atomic():
    insert(1)
    out["in_transaction"] = queue_taken()
out["after_commit"] = queue_taken()
try:
    with transaction.atomic():
        insert(2)
        raise RuntimeError
except RuntimeError:
    pass
out["after_rollback"] = queue_taken()
order = []


def second_writer():
    with transaction.atomic():
        order.append("second begins")
        insert(3)
    connections.close_all()


with transaction.atomic():
    insert(4)
    writer = threading.Thread(target=second_writer)
    writer.start()
    writer.join(0.5)
    order.append("first commits")
writer.join(30)
with connection.cursor() as c:
    c.execute("SELECT n FROM probe ORDER BY n")
    out["rows"] = [r[0] for r in c.fetchall()]
out["order"] = order
print(json.dumps(out))
"""


def test_sqlite_writers_queue_on_the_lock_file(tmp_path: Path) -> None:
    """Each write transaction holds ``<database>-lock`` from its BEGIN to its commit or rollback, so the next
    writer (another thread here; another gunicorn worker in make run) is woken when it is free instead of
    sleeping in SQLite's busy handler."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'pki.sqlite3'}", "PKI_MASTER_KEY": "t"}
    out = subprocess.run([sys.executable, "-c", QUEUE_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"idle": False, "in_transaction": True, "after_commit": False, "after_rollback": False,
                    "rows": [1, 3, 4], "order": ["first commits", "second begins"]}
