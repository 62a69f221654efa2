"""Token operations that guard what is in use: delete, remove key, edit, test key."""

import pytest

from cryptotokens import services
from cryptotokens.errors import AuthenticationCodeError, CryptoTokenError, KeyPairNotFoundError
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied
from pki.models import AuditEvent


def test_delete_refused_while_a_ca_uses_it(root_ca, actor):
    token = root_ca.crypto_token
    with pytest.raises(CryptoTokenError, match="in use by CA 'TestRoot'"):
        services.delete_token(actor, token)
    assert CryptoToken.objects.filter(pk=token.pk).exists()
    assert AuditEvent.objects.filter(event_type="CRYPTOTOKEN_DELETE", outcome="FAILURE").exists()


def test_delete_unused_token_removes_its_keys(soft_token, actor):
    services.generate_key_pair(actor, soft_token, "k", "P-256")
    services.delete_token(actor, soft_token)
    assert not CryptoToken.objects.filter(name="TestToken").exists()
    assert not CryptoTokenKeyPair.objects.filter(alias="k").exists()


def test_remove_key_refused_while_in_use_then_allowed(root_ca, actor):
    token = root_ca.crypto_token
    with pytest.raises(CryptoTokenError, match="Key pair 'signKey' is in use by CA 'TestRoot'"):
        services.remove_key_pair(actor, token, "signKey")
    services.generate_key_pair(actor, token, "spare", "P-256")
    services.remove_key_pair(actor, token, "spare")
    assert not CryptoTokenKeyPair.objects.filter(token=token, alias="spare").exists()
    with pytest.raises(KeyPairNotFoundError):
        services.remove_key_pair(actor, token, "spare")


@pytest.mark.parametrize("spec", ["RSA2048", "P-256", "P-521", "Ed25519", "Ed448"])
def test_test_key_pair(soft_token, actor, spec):
    services.generate_key_pair(actor, soft_token, "k", spec)
    assert services.test_key_pair(actor, soft_token, "k")
    assert AuditEvent.objects.filter(event_type="CRYPTOTOKEN_TEST_KEYPAIR", outcome="SUCCESS").count() == 1


def test_edit_token(soft_token_factory, actor):
    token = soft_token_factory("Editable", auth_code="code1", auto_activate=True)
    token = services.edit_token(actor, token, auto_activate=False, allow_export=True, name="Edited")
    assert (token.name, token.auto_activate, token.allow_export) == ("Edited", False, True)
    assert token.is_active and not token.auth_code_encrypted  # still active, code no longer stored for restarts
    with pytest.raises(AuthenticationCodeError):
        services.edit_token(actor, token, auth_code="wrong", auto_activate=True)
    services.deactivate(actor, token)
    with pytest.raises(CryptoTokenError, match="Give the authentication code"):
        services.edit_token(actor, CryptoToken.objects.get(pk=token.pk), auto_activate=True)
    token = services.edit_token(actor, CryptoToken.objects.get(pk=token.pk), auth_code="code1", auto_activate=True)
    assert token.is_active and token.auth_code_encrypted


@pytest.mark.parametrize(
    ("call", "rule"),
    [
        (lambda a, t: services.activate(a, t, "foo123"), "/cryptotoken/activate/"),
        (lambda a, t: services.deactivate(a, t), "/cryptotoken/deactivate/"),
        (lambda a, t: services.generate_key_pair(a, t, "x", "P-256"), "/cryptotoken/generate_keys/"),
        (lambda a, t: services.remove_key_pair(a, t, "x"), "/cryptotoken/remove_keys/"),
        (lambda a, t: services.test_key_pair(a, t, "x"), "/cryptotoken/test_keys/"),
        (lambda a, t: services.delete_token(a, t), "/cryptotoken/delete/"),
        (lambda a, t: services.edit_token(a, t, allow_export=True), "/cryptotoken/modify/"),
    ],
)
def test_each_operation_checks_its_rule(soft_token, call, rule):
    viewer = Actor("viewer", role_rules={"V": [("/cryptotoken/view", True)]})
    with pytest.raises(AuthorizationDenied, match=f"{rule}{soft_token.pk}"):
        call(viewer, soft_token)
    # a per-token grant is enough
    granted = Actor("op", role_rules={"O": [(f"{rule}{soft_token.pk}", True)]})
    assert granted.is_allowed(f"{rule}{soft_token.pk}")
    assert not granted.is_allowed(f"{rule}{soft_token.pk + 1}")


def test_export_only_when_allowed(soft_token_factory, actor):
    from cryptography.hazmat.primitives.serialization import pkcs12

    locked = soft_token_factory("Locked")
    services.generate_key_pair(actor, locked, "k", "P-256")
    with pytest.raises(CryptoTokenError, match="does not allow export"):
        services.export_key_pair(actor, locked, "k", "export-pw-1")
    open_token = soft_token_factory("Exportable", allow_export=True)
    entry = services.generate_key_pair(actor, open_token, "k", "P-256")
    with pytest.raises(CryptoTokenError, match="at least 8"):
        services.export_key_pair(actor, open_token, "k", "short")
    data = services.export_key_pair(actor, open_token, "k", "export-pw-1")
    key, _, _ = pkcs12.load_key_and_certificates(data, b"export-pw-1")
    from cryptography.hazmat.primitives import serialization

    assert key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == bytes(entry.public_key_der)
    assert AuditEvent.objects.filter(event_type="CRYPTOTOKEN_EXPORT_KEYPAIR", outcome="SUCCESS").count() == 1


def test_key_generation_task(soft_token, actor):
    from cryptotokens.tasks import queue_key_generation

    result = queue_key_generation(actor, soft_token, "queued", "P-384")  # eager without a broker
    assert result.successful()
    assert result.result["key_spec"] == "secp384r1"
    assert CryptoTokenKeyPair.objects.filter(token=soft_token, alias="queued").exists()
    viewer = Actor("viewer", role_rules={"V": [("/cryptotoken/view", True)]})
    with pytest.raises(AuthorizationDenied):
        queue_key_generation(viewer, soft_token, "nope", "P-256")
