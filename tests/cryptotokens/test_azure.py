"""Azure Key Vault crypto tokens, through the Azure SDK against a local HTTPS Key Vault + Azure AD stand-in.

The stand-in (tests/cryptotokens/keyvault_server.py) speaks the REST calls the SDK makes, including the 401
bearer challenge and the AAD client-credentials token endpoint, over TLS with a test CA; the tests only
use the backend (through the services) and look at what the server received.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from cryptotokens import services
from cryptotokens.backends import azure
from cryptotokens.backends.remote_keys import CryptoTokenUnavailableError, RemoteECPrivateKey, RemoteRSAPrivateKey
from cryptotokens.errors import (
    AuthenticationCodeError,
    CryptoTokenError,
    KeyPairExistsError,
    UnsupportedKeySpecError,
)
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from tests.conftest import pem
from tests.cryptotokens.aws_moto import free_port
from tests.cryptotokens.keyvault_server import KeyVaultTestServer, make_tls_files, unb64url

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0b6a1f6e-3c1d-4a57-9f0e-3f4f1c1d2e3f"
SECRET = "kv-app-secret-Zq8~do-not-log"
CERT_CLIENT_ID = "5e2d4c3b-1a09-4f8e-8d7c-6b5a49382716"


def unique(prefix: str) -> str:
    """Key names must be new in the vault, which lives longer than one test's database."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client_certificate(common_name: str = "pki key binding") -> tuple[bytes, x509.Certificate]:
    """An RSA key and self-signed certificate, as PEM (certificate + key), like a key binding's."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    data = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return data, cert


@pytest.fixture(scope="module")
def kv_tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("kv-tls"))


@pytest.fixture(scope="module")
def binding_pem():
    return client_certificate()


@pytest.fixture(scope="module")
def kv_server(kv_tls, binding_pem):
    server = KeyVaultTestServer(kv_tls, TENANT).start()
    try:
        server.register_client(CLIENT_ID, secret=SECRET)
        server.register_client(CERT_CLIENT_ID, certificate=binding_pem[1])
        yield server
    finally:
        server.stop()


def point_settings_at(settings, server: KeyVaultTestServer, tls) -> None:
    # The local server cannot have vault host names: the vault name goes into the path, which the server drops.
    settings.AZURE_KEYVAULT_URL_TEMPLATE = server.url + "/{vault}"
    settings.AZURE_AUTHORITY_HOST = server.url
    settings.AZURE_KEYVAULT_VERIFY_CHALLENGE_RESOURCE = False  # the server is not *.vault.azure.net
    settings.AZURE_CA_BUNDLE = str(tls.ca_file)


@pytest.fixture
def kv(kv_server, kv_tls, settings):
    point_settings_at(settings, kv_server, kv_tls)
    azure.clear_clients()
    yield kv_server
    azure.clear_clients()


def kv_properties(**extra) -> dict:
    return {"vault_type": "standard", "vault_name": "pki-test-vault", "client_id": CLIENT_ID, "tenant_id": TENANT,
            "authentication": "APP_SECRET", **extra}


@pytest.fixture
def kv_token_factory(db, actor, kv):
    def make(name: str | None = None, secret: str = SECRET, properties: dict | None = None, **kw):
        return services.create_token(
            actor, name=name or unique("kv"), token_type="AzureCryptoToken", auth_code=secret,
            auto_activate=kw.pop("auto_activate", True), properties=properties or kv_properties(), **kw,
        )

    return make


@pytest.fixture
def kv_token(kv_token_factory):
    return kv_token_factory("KvToken")


@pytest.fixture
def premium_token(kv_token_factory):
    return kv_token_factory("KvPremium", properties=kv_properties(vault_type="premium"))


def test_backend_declares_itself():
    backend = azure.AzureCryptoTokenBackend
    assert (backend.type_name, backend.label) == ("AzureCryptoToken", "Azure Key Vault")
    params = {p.name: p for p in backend.parameters}
    assert set(params) == {"vault_type", "vault_name", "client_id", "tenant_id", "authentication", "key_binding"}
    assert dict(params["vault_type"].choices) == {
        "standard": "Standard (software-protected keys)", "premium": "Premium (HSM-protected keys)",
    }
    assert set(dict(params["authentication"].choices)) == {"APP_SECRET", "KEY_BINDING"}


def test_create_token_checks_the_credentials_and_keeps_the_secret_encrypted(kv_token_factory, kv):
    before = len(kv.requests)
    token = kv_token_factory("KvCreate", properties=kv_properties(vault_type="Premium", vault_name=" pki-vault "))
    raw = CryptoToken.objects.filter(pk=token.pk).values().get()
    assert SECRET not in repr(raw)
    assert raw["properties"]["vault_type"] == "premium" and raw["properties"]["vault_name"] == "pki-vault"
    seen = [(r["method"], r["path"]) for r in kv.requests[before:]]
    assert ("POST", f"/{TENANT}/oauth2/v2.0/token") in seen
    assert ("GET", f"/keys/{azure.PROBE_KEY_NAME}/") in seen  # "<name>/": the latest version


@pytest.mark.parametrize(
    ("token_fixture", "spec", "kty", "algorithm", "key_spec"),
    [
        ("kv_token", "RSA2048", "RSA", "RSA", "2048"),
        ("kv_token", "P-256", "EC", "EC", "secp256r1"),
        ("premium_token", "RSA3072", "RSA-HSM", "RSA", "3072"),
        ("premium_token", "P-384", "EC-HSM", "EC", "secp384r1"),
    ],
)
def test_generate_and_sign(request, actor, kv, token_fixture, spec, kty, algorithm, key_spec):
    token = request.getfixturevalue(token_fixture)
    alias = unique("gen")
    entry = services.generate_key_pair(actor, token, alias, spec)
    assert (entry.key_algorithm, entry.key_spec) == (algorithm, key_spec)
    (create,) = [r for r in kv.requests_to("POST", f"/keys/{alias}/create") if r["body"]]
    assert create["body"]["kty"] == kty
    # RSA keys also decrypt (SCEP; tests/cryptotokens/test_decrypt_azure.py).
    ops = ["sign", "verify", "encrypt", "decrypt"] if algorithm == "RSA" else ["sign", "verify"]
    assert create["body"]["key_ops"] == ops
    stored = kv.keys[alias][-1]
    assert bytes(entry.private_data).decode() == f"{kv.url}/keys/{alias}/{stored.version}"
    assert bytes(entry.public_key_der) == stored.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    key = services.get_private_key(token, alias)
    public = key.public_key()
    data = b"to be signed " * 500  # Key Vault signs digests: the size of the data does not matter
    if algorithm == "RSA":
        assert isinstance(key, rsa.RSAPrivateKey) and isinstance(key, RemoteRSAPrivateKey)
        for h in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
            public.verify(key.sign(data, padding.PKCS1v15(), h), data, padding.PKCS1v15(), h)
            pss = padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.DIGEST_LENGTH)
            public.verify(key.sign(data, pss, h), data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        sign_request = kv.requests_to("POST", rf"/keys/{alias}/\w+/sign")[0]["body"]
        assert sign_request["alg"] == "RS256" and unb64url(sign_request["value"]) == hashlib.sha256(data).digest()
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key, RemoteECPrivateKey)
        h = hashes.SHA256() if key_spec == "secp256r1" else hashes.SHA384()
        public.verify(key.sign(data, ec.ECDSA(h)), data, ec.ECDSA(h))  # DER, converted from r || s
        assert kv.requests_to("POST", rf"/keys/{alias}/\w+/sign")[0]["body"]["alg"] in ("ES256", "ES384")


def test_handle_refuses_what_key_vault_cannot_do(kv_token, actor):
    services.generate_key_pair(actor, kv_token, ec_alias := unique("limits"), "P-256")
    services.generate_key_pair(actor, kv_token, rsa_alias := unique("limits"), "RSA2048")
    ec_key, rsa_key = services.get_private_key(kv_token, ec_alias), services.get_private_key(kv_token, rsa_alias)
    with pytest.raises(UnsupportedKeySpecError, match="Azure Key Vault signs with secp256r1 keys only with SHA256"):
        ec_key.sign(b"x", ec.ECDSA(hashes.SHA512()))
    with pytest.raises(UnsupportedKeySpecError, match="salt as long as the hash"):
        rsa_key.sign(b"x", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256())
    with pytest.raises(CryptoTokenError, match="cannot be exported"):
        ec_key.private_numbers()


@pytest.mark.parametrize(("spec", "sig_alg"), [("RSA2048", "SHA256withRSAandMGF1"), ("P-256", "SHA256withECDSA"),
                                               ("RSA3072", "SHA384WithRSA")])
def test_ca_on_a_key_vault_key_issues_certificates_and_crls_openssl_accepts(
    kv_token, actor, builtin_profiles, csr_factory, openssl, spec, sig_alg
):
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke
    from pki.services.cas import CASettings, create_ca

    ca = create_ca(actor, CASettings(
        name="KvCA", subject_dn="CN=Key Vault CA,O=Test,C=SE", crypto_token=kv_token, key_alias=unique("ca"),
        key_spec=spec, signature_algorithm=sig_alg,
    ))
    profile = CertificateProfile.objects.get(name="ENDUSER")
    good = issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csr_factory("CN=Good,O=Test,C=SE")[0]))
    bad = issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csr_factory("CN=Bad,O=Test,C=SE")[0]))
    revoke(actor, bad.row, "keyCompromise")
    crl = create_crl(actor, ca)

    assert ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == bytes(CryptoTokenKeyPair.objects.get(token=kv_token, alias=ca.key_alias).public_key_der)
    openssl.write("ca.pem", pem(ca.certificate))
    openssl.write("good.pem", pem(good.certificate))
    openssl.write("bad.pem", pem(bad.certificate))
    openssl.write("crl.der", bytes(crl.der))
    assert "OK" in openssl("verify", "-CAfile", "ca.pem", "ca.pem").stdout
    assert "OK" in openssl("verify", "-CAfile", "ca.pem", "good.pem").stdout
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in (out.stdout + out.stderr)
    openssl("crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem")
    openssl.write("trust.pem", pem(ca.certificate) + (openssl.workdir / "crl.pem").read_bytes())
    assert "OK" in openssl("verify", "-crl_check", "-CAfile", "trust.pem", "good.pem").stdout
    refused = openssl("verify", "-crl_check", "-CAfile", "trust.pem", "bad.pem", check=False)
    assert refused.returncode != 0 and "certificate revoked" in (refused.stdout + refused.stderr)


@pytest.mark.parametrize(
    ("properties", "secret", "message"),
    [
        (kv_properties(), "wrong-secret-value-42", r"Azure AD rejected the credentials.*\(AADSTS7000215\)"),
        (kv_properties(client_id=str(uuid.UUID(int=7))), SECRET, r"Azure AD rejected.*\(AADSTS700016\)"),
        (kv_properties(tenant_id="other-tenant.example"), SECRET, r"Azure AD rejected the credentials"),
    ],
)
def test_refused_credentials_store_nothing_and_never_show_the_secret(kv_token_factory, kv, caplog, properties, secret,
                                                                     message):
    caplog.set_level(logging.DEBUG)  # the Azure SDK's and MSAL's debug logs included
    before = len(kv.requests)
    with pytest.raises(AuthenticationCodeError, match=message) as caught:
        kv_token_factory("KvRefused", secret=secret, properties=properties)
    assert not CryptoToken.objects.filter(name="KvRefused").exists()
    assert not any(r["path"].startswith("/keys/") and r["method"] == "POST" for r in kv.requests[before:])
    for text in (secret, SECRET):
        assert text not in str(caught.value)
        assert text not in caplog.text and all(text not in str(r.args) for r in caplog.records)
    assert caplog.records


def test_wrong_code_on_activation_keeps_the_token_inactive(kv_token_factory, actor):
    token = kv_token_factory("KvManual", auto_activate=False)
    services.deactivate(actor, token)
    with pytest.raises(AuthenticationCodeError, match="AADSTS7000215"):
        services.activate(actor, token, "not-the-secret")
    assert not CryptoToken.objects.get(pk=token.pk).is_active
    services.activate(actor, token, SECRET)
    assert CryptoToken.objects.get(pk=token.pk).is_active


@pytest.mark.parametrize("unreachable", ["vault", "authority"])
def test_unreachable_vault_or_authority_is_a_clear_error(kv_token_factory, settings, unreachable):
    dead = f"https://127.0.0.1:{free_port()}"
    if unreachable == "vault":
        settings.AZURE_KEYVAULT_URL_TEMPLATE = dead + "/{vault}"
    else:
        settings.AZURE_AUTHORITY_HOST = dead
    with pytest.raises(CryptoTokenUnavailableError, match="cannot be reached"):
        kv_token_factory("KvUnreachable")
    assert not CryptoToken.objects.filter(name="KvUnreachable").exists()


def test_vault_going_away_and_coming_back(db, actor, kv_tls, settings):
    """A stopped vault gives a clear error; the failed clients are replaced once it is back."""
    server = KeyVaultTestServer(kv_tls, TENANT).start()
    server.register_client(CLIENT_ID, secret=SECRET)
    point_settings_at(settings, server, kv_tls)
    azure.clear_clients()
    try:
        token = services.create_token(actor, name="KvAway", token_type="AzureCryptoToken", auth_code=SECRET,
                                      auto_activate=True, properties=kv_properties())
        services.generate_key_pair(actor, token, alias := unique("away"), "P-256")
        key = services.get_private_key(token, alias)
        key.sign(b"1", ec.ECDSA(hashes.SHA256()))
        key.sign(b"2", ec.ECDSA(hashes.SHA256()))
        token_requests = len(server.requests_to("POST", rf"/{TENANT}/oauth2/v2.0/token"))
        assert token_requests == 1  # one pooled credential served creation, generation and both signatures
        server.stop()
        with pytest.raises(CryptoTokenUnavailableError, match="cannot be reached"):
            key.sign(b"3", ec.ECDSA(hashes.SHA256()))
        server.start()  # same port
        signature = key.sign(b"4", ec.ECDSA(hashes.SHA256()))
        key.public_key().verify(signature, b"4", ec.ECDSA(hashes.SHA256()))
        # the failed clients were dropped: a new credential asked for a new token
        assert len(server.requests_to("POST", rf"/{TENANT}/oauth2/v2.0/token")) == token_requests + 1
    finally:
        server.stop()
        azure.clear_clients()


def test_alias_taken_on_the_token_or_only_in_the_vault(kv_token, actor, kv):
    alias = unique("twice")
    services.generate_key_pair(actor, kv_token, alias, "P-256")
    with pytest.raises(KeyPairExistsError, match="already exists"):
        services.generate_key_pair(actor, kv_token, alias, "P-256")

    outside = unique("outside")
    kv.create_key(outside, {"kty": "EC", "crv": "P-256"})  # someone made it in the vault directly
    with pytest.raises(KeyPairExistsError, match="already exists as a key in Azure Key Vault"):
        services.generate_key_pair(actor, kv_token, outside, "P-256")
    assert len(kv.keys[outside]) == 1  # no new version was created
    assert not kv.requests_to("POST", f"/keys/{outside}/create")


@pytest.mark.parametrize(("alias", "message"), [("under_score", "letters, digits or '-'"), ("a b", "letters"),
                                                ("x" * 128, "1 to 127")])
def test_aliases_key_vault_cannot_name(kv_token, actor, kv, alias, message):
    before = len(kv.requests)
    with pytest.raises(CryptoTokenError, match=message):
        services.generate_key_pair(actor, kv_token, alias, "P-256")
    assert kv.requests[before:] == [] and not kv_token.key_pairs.exists()


@pytest.mark.parametrize("spec", ["Ed25519", "Ed448", "brainpoolP384r1", "RSA1024"])
def test_unsupported_key_specs(kv_token, actor, kv, spec):
    before = len(kv.requests)
    with pytest.raises(UnsupportedKeySpecError, match="Azure Key Vault crypto tokens hold RSA 2048/3072/4096 and EC"):
        services.generate_key_pair(actor, kv_token, unique("spec"), spec)
    assert kv.requests[before:] == [] and not kv_token.key_pairs.exists()


def test_remove_key_pair_deletes_the_key(kv_token, actor, kv):
    alias = unique("remove")
    entry = services.generate_key_pair(actor, kv_token, alias, "RSA2048")
    backend = services.backend_for(kv_token)
    backend.remove_key_pair(entry, services.auth_code_of(kv_token))
    assert kv.requests_to("DELETE", f"/keys/{alias}")
    assert alias not in kv.keys and kv.deleted[alias]["recoveryId"].endswith(f"/deletedkeys/{alias}")
    backend.remove_key_pair(entry, services.auth_code_of(kv_token))  # already gone: nothing to do
    entry.delete()
    # soft delete keeps the name: a new key under it is refused by the vault (409) with a clear error
    with pytest.raises(KeyPairExistsError, match="deleted key keeps its name"):
        services.generate_key_pair(actor, kv_token, alias, "RSA2048")
    assert not kv_token.key_pairs.filter(alias=alias).exists()


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        (kv_properties(vault_name="ab"), "not a Key Vault name"),
        (kv_properties(vault_name="has--double"), "not a Key Vault name"),
        (kv_properties(vault_name="https://evil.example/"), "not a Key Vault name"),
        (kv_properties(vault_type="ultra"), "Unknown Key Vault type"),
        (kv_properties(client_id="not-a-guid"), "client ID must be the application's GUID"),
        (kv_properties(tenant_id=""), "tenant ID"),
        (kv_properties(authentication="PASSWORD"), "Unknown Key Vault authentication"),
        (kv_properties(authentication="KEY_BINDING"), "needs the name of a key binding"),
    ],
)
def test_bad_settings_store_nothing(kv_token_factory, kv, properties, message):
    before = len(kv.requests)
    with pytest.raises(CryptoTokenError, match=message):
        kv_token_factory("KvBadSettings", properties=properties)
    assert kv.requests[before:] == [] and not CryptoToken.objects.filter(name="KvBadSettings").exists()


@pytest.fixture
def key_binding_provider(binding_pem):
    bindings = {"kv-auth-binding": binding_pem[0], "unregistered": client_certificate("other")[0]}
    azure.register_key_binding_credentials(lambda name: bindings[name])
    yield bindings
    from keybindings.services import credentials_pem

    azure.register_key_binding_credentials(credentials_pem)  # back to the app's own provider


def binding_properties(binding: str) -> dict:
    return kv_properties(client_id=CERT_CLIENT_ID, authentication="KEY_BINDING", key_binding=binding)


def test_key_binding_authentication_with_a_client_certificate(kv_token_factory, actor, kv, key_binding_provider):
    before = len(kv.requests)
    token = kv_token_factory("KvBinding", secret="unused", properties=binding_properties("kv-auth-binding"))
    (token_request,) = kv.requests_to("POST", rf"/{TENANT}/oauth2/v2.0/token")[-1:]
    assert token_request in kv.requests[before:]
    assert token_request["body"]["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    services.generate_key_pair(actor, token, alias := unique("binding"), "P-256")
    key = services.get_private_key(token, alias)
    key.public_key().verify(key.sign(b"b", ec.ECDSA(hashes.SHA256())), b"b", ec.ECDSA(hashes.SHA256()))


def test_key_binding_with_a_certificate_azure_does_not_know(kv_token_factory, key_binding_provider):
    with pytest.raises(AuthenticationCodeError, match="key binding certificate"):
        kv_token_factory("KvBadBinding", secret="unused", properties=binding_properties("unregistered"))
    assert not CryptoToken.objects.filter(name="KvBadBinding").exists()


def test_key_binding_without_a_provider_is_a_clear_error(kv_token_factory):
    from keybindings.services import credentials_pem

    azure.register_key_binding_credentials(None)  # as if the keybindings app were not installed
    try:
        with pytest.raises(CryptoTokenError, match="no key binding provider is installed"):
            kv_token_factory("KvNoProvider", secret="unused", properties=binding_properties("kv-auth-binding"))
    finally:
        azure.register_key_binding_credentials(credentials_pem)
    assert not CryptoToken.objects.filter(name="KvNoProvider").exists()


def test_unknown_key_binding_is_a_clear_error(kv_token_factory, key_binding_provider):
    with pytest.raises(CryptoTokenError, match="Key binding 'no-such-binding' .* cannot be used: KeyError"):
        kv_token_factory("KvUnknownBinding", secret="unused", properties=binding_properties("no-such-binding"))
    assert not CryptoToken.objects.filter(name="KvUnknownBinding").exists()


def test_ecdsa_raw_to_der_roundtrip():
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from cryptotokens.backends.remote_keys import ecdsa_raw_to_der

    raw = (5).to_bytes(32, "big") + (2**255 + 1).to_bytes(32, "big")
    assert decode_dss_signature(ecdsa_raw_to_der(raw)) == (5, 2**255 + 1)
    with pytest.raises(CryptoTokenError, match="malformed"):
        ecdsa_raw_to_der(b"\x01\x02\x03")


def test_login_with_a_real_key_binding(kv_token_factory, kv, actor, root_ca, soft_token):
    """The keybindings app's provider: a soft-token key and the certificate our CA issued for it."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    from keybindings.models import InternalKeyBinding
    from keybindings.services import credentials_pem
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    azure.register_key_binding_credentials(credentials_pem)
    entry = services.generate_key_pair(actor, soft_token, "kv-login", "RSA2048")
    cert_row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                     public_key=load_der_public_key(bytes(entry.public_key_der)),
                                     subject_dn="CN=pki Key Vault login")).row
    binding = InternalKeyBinding.objects.create(name="kv-login-binding", crypto_token=soft_token,
                                                key_pair_alias="kv-login", certificate=cert_row)
    client_id = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    kv.register_client(client_id, certificate=cert_row.certificate)
    token = kv_token_factory("KvRealBinding", secret="unused", properties=kv_properties(
        client_id=client_id, authentication="KEY_BINDING", key_binding="kv-login-binding"))
    services.generate_key_pair(actor, token, alias := unique("real-binding"), "P-256")
    key = services.get_private_key(token, alias)
    key.public_key().verify(key.sign(b"r", ec.ECDSA(hashes.SHA256())), b"r", ec.ECDSA(hashes.SHA256()))
    binding.status = InternalKeyBinding.Status.DISABLED
    binding.save()
    azure.clear_clients()
    with pytest.raises(CryptoTokenError, match="disabled"):
        kv_token_factory("KvDisabledBinding", secret="unused", properties=kv_properties(
            client_id=client_id, authentication="KEY_BINDING", key_binding="kv-login-binding"))
