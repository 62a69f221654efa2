"""Fixtures of the pki tests' command-line modules (test_cli_*.py)."""

from __future__ import annotations

import pytest

from tests.pki.cli_support import run
from tests.support.keypool import pooled_rsa_keys


@pytest.fixture
def cli_init(db, monkeypatch, settings):
    """A database after `init` (ManagementCA, the default roles, EMPTY profile); no prompts, no code in the env.

    The two costs of `init` that are the same in every test are cut: its RSA keys (ManagementCA's RSA-3072, the
    admin credentials' RSA-2048) come from a per-process pool (tests/support/keypool.py), and the admin's password
    is hashed with MD5 as in the other tests that log in, instead of a million PBKDF2 rounds."""
    monkeypatch.delenv("PKI_TOKEN_AUTHCODE", raising=False)
    monkeypatch.delenv("PKI_ENROLLMENT_CODE", raising=False)
    monkeypatch.setattr("os.isatty", lambda fd: False)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with pooled_rsa_keys():
        run("init")
