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
