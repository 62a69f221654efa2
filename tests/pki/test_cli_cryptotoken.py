"""``manage.py cryptotoken`` with ``ejbca.sh cryptotoken``'s arguments, as EJBCA's CLI documentation writes them."""

from __future__ import annotations

from io import StringIO

import pytest

from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.models import AuditEvent
from tests.pki.cli_support import refused, run


def test_token_lifecycle_in_ejbca_sh_form(db):
    err = StringIO()
    out = run("cryptotoken", "create", "--token", "MyToken", "--pin", "foo123", "--autoactivate", "true",
              "--type", "SoftCryptoToken", stderr=err)
    assert "Created crypto token 'MyToken'" in out
    assert "foo123" not in out + err.getvalue() and "PKI_TOKEN_AUTHCODE" in err.getvalue()  # warned, not echoed
    assert CryptoToken.objects.get(name="MyToken").auto_activate
    assert "Generated RSA 2048" in run("cryptotoken", "generatekey", "--token", "MyToken", "--alias", "signKey",
                                       "--keyspec", "2048")
    assert "Generated EC secp256r1" in run("cryptotoken", "generatekey", "--token", "MyToken", "--alias", "testKey",
                                           "--keyspec", "secp256r1")
    keys = run("cryptotoken", "listkeys", "--token", "MyToken")
    assert "signKey\tRSA\t2048" in keys and "testKey\tEC\tsecp256r1" in keys
    assert "MyToken\tSoftCryptoToken\tactive, auto-activated\t2 key pair(s)" in run("cryptotoken", "list")
    assert "tested OK" in run("cryptotoken", "testkey", "--token", "MyToken", "--alias", "testKey")
    assert "Removed key pair 'testKey'" in run("cryptotoken", "removekey", "--token", "MyToken", "--alias", "testKey")
    assert not CryptoTokenKeyPair.objects.filter(token__name="MyToken", alias="testKey").exists()
    assert "Deleted crypto token 'MyToken'" in run("cryptotoken", "delete", "--token", "MyToken")
    events = set(AuditEvent.objects.filter(actor="cli").values_list("event_type", flat=True))
    assert {"CRYPTOTOKEN_CREATE", "CRYPTOTOKEN_GEN_KEYPAIR", "CRYPTOTOKEN_TEST_KEYPAIR", "CRYPTOTOKEN_DELETE_KEYPAIR",
            "CRYPTOTOKEN_DELETE"} <= events, events


def test_activate_and_deactivate_with_the_pin(db):
    run("cryptotoken", "create", "--token", "Manual", "--pin", "foo123", "--autoactivate", "false")
    assert not CryptoToken.objects.get(name="Manual").auto_activate
    run("cryptotoken", "deactivate", "--token", "Manual")
    assert "offline" in run("cryptotoken", "list")
    assert "Wrong authentication code" in refused("cryptotoken", "activate", "--token", "Manual", "--pin", "nope")
    assert "is active" in run("cryptotoken", "activate", "--token", "Manual", "--pin", "foo123")
    assert CryptoToken.objects.get(name="Manual").is_active


def test_the_pin_may_come_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("PKI_TOKEN_AUTHCODE", "from-env-123")
    err = StringIO()
    run("cryptotoken", "create", "--token", "EnvToken", "--autoactivate", "true", stderr=err)
    assert err.getvalue() == ""  # no warning: nothing secret on the command line
    run("cryptotoken", "deactivate", "--token", "EnvToken")
    run("cryptotoken", "activate", "--token", "EnvToken")
    assert CryptoToken.objects.get(name="EnvToken").is_active


@pytest.mark.parametrize(("args", "message", "code"), [
    (("create", "--token", "T2", "--pin", "x", "--type", "org.cesecore.keys.token.SunP11CryptoToken"),
     "crypto token type", 2),
    (("create", "--token", "T2", "--pin", "x", "--type", "PKCS11CryptoToken", "--lib", "/nowhere/libfoo.so",
      "--slotlabeltype", "SLOT_LABEL", "--slotlabel", "x"), "not a PKCS#11 library configured", 1),
    (("create", "--token", "T2", "--pin", "x", "--autoactivate", "maybe"), "true or false", 1),
    (("generatekey", "--token", "T", "--alias", "k", "--keyspec", "512"), "not supported", 1),
    (("generatekey", "--token", "T", "--alias", "k"), "--keyspec is required", 1),
    (("testkey", "--token", "T", "--alias", "missing"), "missing", 1),
    (("activate", "--token", "NoSuch", "--pin", "x"), "does not exist", 1),
])
def test_refusals(db, args, message, code):
    run("cryptotoken", "create", "--token", "T", "--pin", "foo123", "--autoactivate", "true")
    if message == "true or false":
        with pytest.raises(Exception, match=message):  # an argparse error: usage and exit status 2 from the CLI
            run("cryptotoken", *args)
        return
    assert message in refused("cryptotoken", *args, code=code)
    assert not CryptoToken.objects.filter(name="T2").exists()
