"""Crypto token pages: create from the declared fields, key pairs, activation, refusals."""

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.contrib.auth import get_user_model
from django.test import Client

from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.choices import MemberMatch
from pki.models import AccessRule, Role, RoleMember


def _client(username: str, rules: list[str]) -> Client:
    get_user_model().objects.create_user(username, password="pw-" + username + "-1")
    role = Role.objects.create(name=f"role-{username}")
    AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=username)
    client = Client()
    client.login(username=username, password="pw-" + username + "-1")
    return client


@pytest.fixture
def admin(db):
    return _client("tokenui", ["/"])


def _create(admin, **extra):
    data = {"name": "UiToken", "token_type": "SoftCryptoToken", "auth_code": "secret-1",
            "auth_code_repeat": "secret-1", "allow_export": "on", **extra}
    return admin.post("/cryptotokens/new/", data)


def test_create_form_shows_each_backend_fields(admin):
    html = admin.get("/cryptotokens/new/").content.decode()
    for text in ('data-backend="AWSKMSCryptoToken"', 'data-backend="AzureCryptoToken"', "Key Vault name", "Region"):
        assert text in html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"auth_code_repeat": "other"}, "The authentication codes differ"),
        ({"token_type": "AWSKMSCryptoToken"}, "Region is required for AWS KMS"),
        ({"token_type": "AzureCryptoToken"}, "Key Vault name is required"),
    ],
)
def test_create_refusals(admin, extra, message):
    r = _create(admin, **extra)
    assert r.status_code == 400 and message in r.content.decode()
    assert not CryptoToken.objects.filter(name="UiToken").exists()


def test_token_lifecycle_in_the_ui(admin):
    r = _create(admin)
    token = CryptoToken.objects.get(name="UiToken")
    assert r.status_code == 302 and token.allow_export and token.is_active
    admin.post(f"/cryptotokens/{token.pk}/generate/", {"alias": "k1", "key_spec": "P-256"})
    assert CryptoTokenKeyPair.objects.filter(token=token, alias="k1", key_spec="secp256r1").exists()
    page = admin.get(f"/cryptotokens/{token.pk}/").content.decode()
    assert "k1" in page and "secp256r1" in page and "Soft (PKCS#12 keystore in the database)" in page
    r = admin.post(f"/cryptotokens/{token.pk}/test/", {"alias": "k1"}, follow=True)
    assert b"signed and verified" in r.content
    r = admin.post(f"/cryptotokens/{token.pk}/export/", {"alias": "k1", "password": "export-pass-1"})
    key, _, _ = pkcs12.load_key_and_certificates(r.content, b"export-pass-1")
    assert key is not None
    admin.post(f"/cryptotokens/{token.pk}/deactivate/")
    assert not CryptoToken.objects.get(pk=token.pk).is_active
    r = admin.post(f"/cryptotokens/{token.pk}/activate/", {"auth_code": "wrong"}, follow=True)
    assert b"Wrong authentication code" in r.content and not CryptoToken.objects.get(pk=token.pk).is_active
    admin.post(f"/cryptotokens/{token.pk}/activate/", {"auth_code": "secret-1"})
    assert CryptoToken.objects.get(pk=token.pk).is_active
    admin.post(f"/cryptotokens/{token.pk}/remove/", {"alias": "k1"})
    assert not CryptoTokenKeyPair.objects.filter(token=token).exists()
    admin.post(f"/cryptotokens/{token.pk}/delete/")
    assert not CryptoToken.objects.filter(pk=token.pk).exists()


def test_in_use_token_is_not_deleted(admin, root_ca):
    token = root_ca.crypto_token
    r = admin.post(f"/cryptotokens/{token.pk}/delete/", follow=True)
    assert b"in use by CA" in r.content and CryptoToken.objects.filter(pk=token.pk).exists()


def test_viewer_cannot_change_tokens(db, soft_token):
    viewer = _client("viewer", ["/administrator", "/cryptotoken/view"])
    page = viewer.get(f"/cryptotokens/{soft_token.pk}/").content.decode()
    assert "Generate a key pair" not in page and "Delete token" not in page
    r = viewer.post(f"/cryptotokens/{soft_token.pk}/generate/", {"alias": "x", "key_spec": "P-256"}, follow=True)
    assert f"/cryptotoken/generate_keys/{soft_token.pk}".encode() in r.content
    assert not CryptoTokenKeyPair.objects.filter(token=soft_token).exists()
    assert viewer.get("/cryptotokens/new/").status_code == 403


def test_edit_token(admin, soft_token_factory):
    token = soft_token_factory("EditMe", auth_code="code-1", auto_activate=True)
    r = admin.post(f"/cryptotokens/{token.pk}/edit/", {"name": "Edited", "allow_export": "on"})
    assert r.status_code == 302
    token.refresh_from_db()
    assert (token.name, token.allow_export, token.auto_activate) == ("Edited", True, False)
    assert token.is_active  # still active until deactivated
    r = admin.post(f"/cryptotokens/{token.pk}/edit/", {"name": "Edited", "auto_activate": "on", "auth_code": "bad"})
    assert r.status_code == 400 and b"Wrong authentication code" in r.content
    viewer = _client("viewer2", ["/administrator", "/cryptotoken/view"])
    r = viewer.post(f"/cryptotokens/{token.pk}/edit/", {"name": "Hijacked"})
    assert r.status_code == 403 and f"/cryptotoken/modify/{token.pk}".encode() in r.content
    assert CryptoToken.objects.get(pk=token.pk).name == "Edited"


@pytest.mark.parametrize(("action", "data", "message"), [
    ("test", {"alias": "a\x00b"}, "No key pair &#x27;a\\x00b&#x27;"),
    ("remove", {"alias": "a\x00b"}, "No key pair &#x27;a\\x00b&#x27;"),
    ("export", {"alias": "a\x00b", "password": "Export-Pass-1", "password_repeat": "Export-Pass-1"},
     "Give a password"),  # a form: its alias field refuses the NUL (with this form's one message)
    ("adopt", {"alias": "a\x00b"}, "without control characters"),
    ("generate", {"alias": "a\nb", "key_spec": "P-256"}, "without control characters"),
])
def test_a_key_alias_with_a_nul_or_control_character_is_refused_on_the_page(admin, soft_token, tracebacks, action,
                                                                             data, message):
    """Test, remove and adopt read the alias straight from the request: a NUL there reached PostgreSQL, which raised
    (a 500). A lookup now finds no such key pair; a new key pair's alias refuses control characters."""
    admin.raise_request_exception = False
    keys = CryptoTokenKeyPair.objects.count()
    response = admin.post(f"/cryptotokens/{soft_token.pk}/{action}/", data, follow=True)
    assert response.status_code == 200 and message in response.content.decode(), response.content.decode()[-800:]
    assert CryptoTokenKeyPair.objects.count() == keys
    assert not tracebacks.records
