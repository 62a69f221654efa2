"""The EJBCA-shaped crypto token REST endpoints."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.choices import MemberMatch
from pki.models import AccessRule, Role, RoleMember

BASE = "/ejbca/ejbca-rest-api/v1/cryptotoken"


def _client(username: str, rules: list[str]) -> APIClient:
    user = get_user_model().objects.create_user(username, password="pw-" + username)
    if rules:
        role = Role.objects.create(name=f"role-{username}")
        for r in rules:
            AccessRule.objects.create(role=role, resource=r)
        RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=username)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_client(db):
    return _client("tokenadmin", ["/"])


@pytest.fixture
def manual_token(soft_token_factory):
    return soft_token_factory("ApiToken", auth_code="right-code", auto_activate=False)


def test_activate_deactivate(admin_client, manual_token):
    r = admin_client.put(f"{BASE}/ApiToken/deactivate")
    assert r.status_code == 200 and "deactivated" in r.json()["message"]
    assert not CryptoToken.objects.get(pk=manual_token.pk).is_active
    r = admin_client.put(f"{BASE}/ApiToken/activate", {"activation_code": "wrong"}, format="json")
    assert r.status_code == 422 and "Wrong authentication code" in r.json()["error_message"]  # EJBCA's 422
    assert "wrong" not in r.content.decode().replace("Wrong", "")
    r = admin_client.put(f"{BASE}/ApiToken/activate", {"activation_code": "right-code"}, format="json")
    assert r.status_code == 200 and r.content == b""  # EJBCA answers 200 with no body
    assert CryptoToken.objects.get(pk=manual_token.pk).is_active


@pytest.mark.parametrize(
    ("body", "status", "spec"),
    [
        ({"key_pair_alias": "rsa", "key_alg": "RSA", "key_spec": "2048"}, 200, "2048"),
        ({"key_pair_alias": "ec", "key_alg": "ECDSA", "key_spec": "P-256"}, 200, "secp256r1"),
        ({"key_pair_alias": "ed", "key_alg": "Ed25519", "key_spec": ""}, 200, "Ed25519"),
        ({"key_pair_alias": "bad", "key_alg": "DSA", "key_spec": "1024"}, 422, None),  # EJBCA: InvalidKey -> 422
        ({"key_pair_alias": "bad", "key_alg": "RSA", "key_spec": "12"}, 422, None),
        ({"key_alg": "RSA", "key_spec": "2048"}, 400, None),
    ],
)
def test_generate_keys(admin_client, manual_token, body, status, spec):
    r = admin_client.post(f"{BASE}/ApiToken/generatekeys", body, format="json")
    assert r.status_code == status, r.content
    if spec:
        assert r.content == b""  # EJBCA's generatekeys answers 200 with no body
        assert CryptoTokenKeyPair.objects.get(token=manual_token, alias=body["key_pair_alias"]).key_spec == spec
    else:
        assert set(r.json()) == {"error_code", "error_message"}
        assert not CryptoTokenKeyPair.objects.filter(token=manual_token).exists()


def test_remove_keys_and_errors(admin_client, manual_token, root_ca):
    admin_client.post(f"{BASE}/ApiToken/generatekeys", {"key_pair_alias": "k", "key_alg": "EC", "key_spec": "P-256"},
                      format="json")
    assert admin_client.post(f"{BASE}/ApiToken/k/removekeys").status_code == 200
    assert admin_client.post(f"{BASE}/ApiToken/k/removekeys").status_code == 400
    assert admin_client.put(f"{BASE}/NoSuch/deactivate").status_code == 422  # EJBCA: "Unknown crypto token"
    again = admin_client.post(f"{BASE}/ApiToken/generatekeys", {"key_pair_alias": "k2", "key_alg": "EC",
                                                                 "key_spec": "P-256"}, format="json")
    taken = admin_client.post(f"{BASE}/ApiToken/generatekeys", {"key_pair_alias": "k2", "key_alg": "EC",
                                                                 "key_spec": "P-256"}, format="json")
    assert again.status_code == 200 and taken.status_code == 422  # an alias in use: EJBCA's 422
    in_use = admin_client.post(f"{BASE}/{root_ca.crypto_token.name}/signKey/removekeys")
    assert in_use.status_code == 400 and "in use by CA 'TestRoot'" in in_use.json()["error_message"]


def test_access_rules(db, manual_token):
    viewer = _client("viewer", ["/cryptotoken/view"])
    r = viewer.put(f"{BASE}/ApiToken/deactivate")
    assert r.status_code == 403 and f"/cryptotoken/deactivate/{manual_token.pk}" in r.json()["error_message"]
    anonymous = APIClient()
    assert anonymous.put(f"{BASE}/ApiToken/deactivate").status_code in (401, 403)
    assert viewer.get(f"{BASE}/status").json()["status"] == "OK"
