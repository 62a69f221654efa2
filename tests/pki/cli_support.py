"""Running management commands in-process for the CLI tests: output, errors and exit codes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def run(*args: str, stderr: StringIO | None = None) -> str:
    """The command's standard output; CommandError propagates."""
    out = StringIO()
    call_command(*args, stdout=out, stderr=stderr or StringIO())
    return out.getvalue()


def refused(*args: str, code: int = 1) -> str:
    """The message of a refused command, checking its exit code (2: a capability this project lacks)."""
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == code, (caught.value.returncode, str(caught.value))
    return str(caught.value)
