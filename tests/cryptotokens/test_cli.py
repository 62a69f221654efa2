"""`manage.py cryptotoken`: the token verbs end to end."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cryptotokens.models import CryptoToken


def run(*args) -> str:
    out = StringIO()
    call_command("cryptotoken", *args, stdout=out)
    return out.getvalue()


def test_token_lifecycle(db):
    assert "Created crypto token 'cli'" in run("create", "--name", "cli", "--authcode", "pin1234")
    assert "Generated EC secp256r1 key pair 'k1'" in run("generatekey", "cli", "k1", "P-256")
    assert "Generated RSA 2048" in run("generatekey", "cli", "k2", "RSA2048")
    listing = run("list", "cli")
    assert "k1\tEC\tsecp256r1" in listing and "k2\tRSA\t2048" in listing
    assert "tested OK" in run("testkey", "cli", "k1")
    assert "deactivated" in run("deactivate", "cli")
    assert "offline" in run("list")
    with pytest.raises(CommandError, match="offline"):
        run("testkey", "cli", "k1")
    with pytest.raises(CommandError, match="Wrong authentication code"):
        run("activate", "cli", "--authcode", "nope")
    assert "is active" in run("activate", "cli", "--authcode", "pin1234")
    assert "Removed key pair 'k2'" in run("removekey", "cli", "k2")
    assert "Deleted" in run("delete", "cli")
    assert not CryptoToken.objects.filter(name="cli").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("activate", "missing", "--authcode", "x"), "does not exist"),
        (("generatekey", "t", "k", "RSA512"), "not supported"),
        (("generatekey", "t", "k", "bogus"), "Unknown key specification"),
        (("create", "--name", "t", "--authcode", "x"), "already exists"),
    ],
)
def test_errors(db, args, message):
    run("create", "--name", "t", "--authcode", "pw")
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_create_needs_a_code(db, monkeypatch):
    monkeypatch.delenv("PKI_TOKEN_AUTHCODE", raising=False)
    monkeypatch.setattr("os.isatty", lambda fd: False)
    with pytest.raises(CommandError, match="authentication code"):
        run("create", "--name", "nocode")
