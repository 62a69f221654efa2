"""Stopping a ``scripts/serve.py`` process that a test started as a process-group leader."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


def stop_serve(proc: subprocess.Popen, run_dir: Path) -> None:
    """SIGTERM serve.py (it stops what it started), SIGKILL its group if it does not, remove ``run_dir``; then
    raise AssertionError if anything of its process group is left (every child must stop with it)."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    shutil.rmtree(run_dir, ignore_errors=True)
    time.sleep(0.5)
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"a process of serve.py's group {proc.pid} outlived it")
