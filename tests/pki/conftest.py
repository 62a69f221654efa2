"""Fixtures of the pki tests' command-line modules (test_cli_*.py)."""

from __future__ import annotations

import pytest

from tests.pki.cli_support import run


@pytest.fixture
def cli_init(db, monkeypatch):
    """A database after `init` (ManagementCA, the default roles, EMPTY profile); no prompts, no code in the env."""
    monkeypatch.delenv("PKI_TOKEN_AUTHCODE", raising=False)
    monkeypatch.delenv("PKI_ENROLLMENT_CODE", raising=False)
    monkeypatch.setattr("os.isatty", lambda fd: False)
    run("init")
