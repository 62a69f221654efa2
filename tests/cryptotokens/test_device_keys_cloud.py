"""Keys already in AWS KMS (moto server) and Azure Key Vault (the local Key Vault server), made there outside this
project, listed and registered by alias; the token page and the REST API on the device list; and the Azure Key
Vault settings that ended in tracebacks, now clear errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cryptotokens import services
from cryptotokens.backends import azure
from cryptotokens.errors import CryptoTokenError
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from tests.cryptotokens import test_aws, test_azure
from tests.cryptotokens.test_views import _client

# The servers and tokens of the AWS and Azure test modules.
moto_kms, kms, admin_kms, kms_token_factory, kms_token = (
    test_aws.moto_kms, test_aws.kms, test_aws.admin_kms, test_aws.kms_token_factory, test_aws.kms_token)
kv_tls, binding_pem, kv_server, kv, kv_token_factory, kv_token = (
    test_azure.kv_tls, test_azure.binding_pem, test_azure.kv_server, test_azure.kv, test_azure.kv_token_factory,
    test_azure.kv_token)
key_binding_provider = test_azure.key_binding_provider

DATA = b"signed in the cloud"


def _signs(token: CryptoToken, alias: str) -> None:
    key = services.get_private_key(CryptoToken.objects.get(pk=token.pk), alias)
    key.public_key().verify(key.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA, ec.ECDSA(hashes.SHA256()))


# -- AWS KMS -------------------------------------------------------------------------------------------------------


def test_kms_lists_the_aliases_the_credentials_see_and_registers_one(kms_token, admin_kms, actor):
    sign = test_aws.unique("ejbca-sign")
    key_id = admin_kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    admin_kms.create_alias(AliasName=f"alias/{sign}", TargetKeyId=key_id)
    crypt = test_aws.unique("crypt")
    enc_id = admin_kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    admin_kms.create_alias(AliasName=f"alias/{crypt}", TargetKeyId=enc_id)
    sym = test_aws.unique("sym")
    admin_kms.create_alias(AliasName=f"alias/{sym}", TargetKeyId=admin_kms.create_key()["KeyMetadata"]["KeyId"])

    listed = {k.alias: k for k in services.list_device_keys(actor, kms_token)}
    assert (listed[sign].key_algorithm, listed[sign].key_spec, listed[sign].usable, listed[sign].known) == \
        ("EC", "secp256r1", True, False)
    assert bytes(listed[sign].reference).decode().endswith(key_id)
    assert "ENCRYPT_DECRYPT, not SIGN_VERIFY" in listed[crypt].problem and not listed[crypt].usable
    assert listed[sym].problem and not listed[sym].usable
    assert not any(alias.startswith("aws/") for alias in listed)

    entry = services.adopt_key_pair(actor, kms_token, sign)
    assert bytes(entry.private_data).decode().endswith(key_id)
    _signs(kms_token, sign)
    assert {k.alias: k for k in services.list_device_keys(actor, kms_token)}[sign].known
    with pytest.raises(CryptoTokenError, match="not SIGN_VERIFY"):
        services.adopt_key_pair(actor, kms_token, crypt)
    assert not CryptoTokenKeyPair.objects.filter(alias=crypt).exists()


# -- Azure Key Vault -----------------------------------------------------------------------------------------------


def test_vault_lists_its_keys_and_registers_one(kv_token, kv, actor):
    made = test_azure.unique("ejbca-kv")
    kv.create_key(made, {"kty": "EC", "crv": "P-256", "key_ops": ["sign", "verify"]})
    wrapper = test_azure.unique("wrap")
    kv.create_key(wrapper, {"kty": "RSA", "key_size": 2048, "key_ops": ["wrapKey", "unwrapKey"]})

    listed = {k.alias: k for k in services.list_device_keys(actor, kv_token)}
    assert (listed[made].key_algorithm, listed[made].key_spec, listed[made].usable) == ("EC", "secp256r1", True)
    assert "without the sign operation" in listed[wrapper].problem
    assert azure.PROBE_KEY_NAME not in listed

    entry = services.adopt_key_pair(actor, kv_token, made)
    assert bytes(entry.private_data).decode() == f"{kv.url}/keys/{made}/{kv.keys[made][-1].version}"
    _signs(kv_token, made)
    with pytest.raises(CryptoTokenError, match="cannot be used: it was created without the sign operation"):
        services.adopt_key_pair(actor, kv_token, wrapper)


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("AZURE_AUTHORITY_HOST", "http://login.example.org", "AZURE_AUTHORITY_HOST must be an https:// URL"),
    ("AZURE_AUTHORITY_HOST", "https://user:pw@login.example.org", "must not contain credentials"),
    ("AZURE_KEYVAULT_URL_TEMPLATE", "https://one-vault.vault.azure.net", "must contain {vault}"),
    ("AZURE_KEYVAULT_URL_TEMPLATE", "https://{vaultname}.vault.azure.net", "must contain {vault}"),
    ("AZURE_KEYVAULT_URL_TEMPLATE", "https://{vault.vault.azure.net", "must contain {vault}"),
    ("AZURE_KEYVAULT_URL_TEMPLATE", "http://{vault}.vault.azure.net", "must be an https:// URL"),
])
def test_bad_endpoint_settings_are_clear_errors(kv_token_factory, settings, tracebacks, setting, value, message):
    setattr(settings, setting, value)
    azure.clear_clients()
    with pytest.raises(CryptoTokenError, match=message.replace("{", r"\{").replace("}", r"\}")):
        kv_token_factory("KvBadSetting")
    assert not CryptoToken.objects.filter(name="KvBadSetting").exists()
    assert not tracebacks.records


def test_bad_endpoint_setting_in_the_ui_is_a_form_error(db, kv, settings, tracebacks):
    admin = _client("kvui8", ["/"])
    settings.AZURE_AUTHORITY_HOST = "http://login.example.org"
    data = {"name": "KvUi", "token_type": "AzureCryptoToken", "auth_code": test_azure.SECRET,
            "auth_code_repeat": test_azure.SECRET}
    data.update({f"AzureCryptoToken__{k}": v for k, v in test_azure.kv_properties().items()})
    r = admin.post("/cryptotokens/new/", data)
    assert r.status_code == 400 and "AZURE_AUTHORITY_HOST must be an https:// URL" in r.content.decode()
    assert not tracebacks.records


def test_key_binding_with_key_and_certificate_is_not_blamed_for_an_http_authority(
        kv_token_factory, key_binding_provider, settings):
    """Was: 'an RSA key and its certificate are needed' for a binding that has both (the real cause was the
    authority host). The binding's credential is blamed only when it is what the SDK refused."""
    settings.AZURE_AUTHORITY_HOST = "http://login.example.org"
    with pytest.raises(CryptoTokenError) as exc:
        kv_token_factory("KvBindingHttp", secret="unused",
                         properties=test_azure.binding_properties("kv-auth-binding"))
    assert "https://" in str(exc.value) and "RSA key and its certificate" not in str(exc.value)


def test_key_binding_with_an_ec_key_is_still_told_what_it_needs(kv_token_factory, key_binding_provider):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec binding")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_binding_provider["ec-binding"] = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(CryptoTokenError, match="RSA key and its certificate are needed"):
        kv_token_factory("KvEcBinding", secret="unused", properties=test_azure.binding_properties("ec-binding"))


# -- the token page and the REST API ------------------------------------------------------------------------------


def test_token_page_lists_device_keys_and_registers_one(kv_token, kv):
    admin = _client("kvpage8", ["/"])
    made = test_azure.unique("page")
    kv.create_key(made, {"kty": "EC", "crv": "P-256", "key_ops": ["sign", "verify"]})
    html = admin.get(f"/cryptotokens/{kv_token.pk}/").content.decode()
    assert 'id="device-keys"' in html and made in html and "not registered" in html
    r = admin.post(f"/cryptotokens/{kv_token.pk}/adopt/", {"alias": made})
    assert r.status_code == 302
    assert CryptoTokenKeyPair.objects.filter(token=kv_token, alias=made).exists()
    viewer = _client("kvviewer8", ["/cryptotoken/view"])
    viewer.post(f"/cryptotokens/{kv_token.pk}/adopt/", {"alias": test_azure.unique("none")})
    assert CryptoTokenKeyPair.objects.filter(token=kv_token).count() == 1


def test_rest_listkeys_and_adopt(kv_token, kv):
    made = test_azure.unique("rest")
    kv.create_key(made, {"kty": "EC", "crv": "P-384", "key_ops": ["sign", "verify"]})
    admin = _client("kvrest8", ["/"])
    base = f"/ejbca/ejbca-rest-api/v1/cryptotoken/{kv_token.name}"
    r = admin.get(f"{base}/keys")
    assert r.status_code == 200
    row = next(k for k in r.json()["keys"] if k["key_pair_alias"] == made)
    assert (row["key_alg"], row["key_spec"], row["registered"], row["usable"]) == ("EC", "secp384r1", False, True)
    assert admin.post(f"{base}/{made}/adopt", content_type="application/json").status_code == 201
    again = admin.post(f"{base}/{made}/adopt", content_type="application/json")
    assert again.status_code in (400, 409, 422) and "already registered" in again.json()["error_message"]
    missing = admin.post(f"{base}/{test_azure.unique('missing')}/adopt", content_type="application/json")
    assert missing.status_code in (400, 404, 422) and "holds no key" in missing.json()["error_message"]
    viewer = _client("kvrestview8", ["/cryptotoken/view"])
    assert viewer.get(f"{base}/keys").status_code == 200
    assert viewer.post(f"{base}/{made}x/adopt", content_type="application/json").status_code == 403
    nobody = _client("kvrestnone8", ["/ca_functionality/view_ca"])
    assert nobody.get(f"{base}/keys").status_code in (403, 404)
