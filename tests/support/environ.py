"""The environment of a process a test starts: gunicorn, ``scripts/serve.py``, ``manage.py``, a benchmark script."""

from __future__ import annotations

import os

#: What belongs to the test process alone, by name prefix: pytest's and pytest-xdist's variables, the suite's own
#: settings (PKI_TEST_*), its Redis, and its Prometheus multiprocess directory (tests/conftest.py), into which a
#: child would write its own counters (gunicorn) or which it would empty at its start as ``make run`` does
#: (serve.py), losing the counts of the test process under a later scrape of its /metrics.
TEST_PROCESS_ONLY = ("PYTEST_", "PKI_TEST_", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")


def child_environ(*also: str) -> dict[str, str]:
    """This process's environment without the names that start with one of TEST_PROCESS_ONLY or ``also``."""
    return {k: v for k, v in os.environ.items() if not k.startswith(TEST_PROCESS_ONLY + also)}
