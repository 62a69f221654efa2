"""The live processes of this machine as Linux's /proc shows them: what the tests and the benchmarks need to find
a server's processes and count their CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def processes() -> Iterator[tuple[int, list[str], str]]:
    """``(pid, fields, cmdline)`` of each live process: ``fields`` are those of ``/proc/<pid>/stat`` after the
    command name (``fields[1]`` the parent, ``fields[3]`` the session, ``fields[11]``/``fields[12]`` user and
    system clock ticks), ``cmdline`` its arguments joined by spaces. A process that ends while read is left out."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        yield int(entry.name), stat.rsplit(")", 1)[1].split(), cmdline
