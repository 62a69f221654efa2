"""AWS KMS crypto tokens against a real moto server process (KMS, and IAM for the access-policy tests).

What moto cannot show, and how the tests deal with it:
* moto ignores ``MessageType=DIGEST`` and hashes whatever it gets. Inputs up to 4096 bytes are sent RAW
  (verified end to end); for larger inputs the tests check that the backend sends the SHA-2 digest with
  ``MessageType=DIGEST`` (what AWS expects) and that moto's signature is the one over that digest taken as
  a message, i.e. moto's documented shortcut, not AWS behaviour.
* moto signs RSA-PSS with the maximum salt length, AWS with salt length = hash length, so PSS signatures
  are verified here with ``PSS.AUTO`` (the CA tests use PKCS#1 v1.5 and ECDSA, whose encodings are fixed).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from cryptotokens import services
from cryptotokens.backends import aws
from cryptotokens.backends.remote_keys import (
    CryptoTokenUnavailableError,
    KeyServiceAccessDeniedError,
    RemoteECPrivateKey,
    RemoteRSAPrivateKey,
)
from cryptotokens.errors import (
    AuthenticationCodeError,
    CryptoTokenError,
    KeyPairExistsError,
    UnsupportedKeySpecError,
)
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.models import AuditEvent
from tests.conftest import pem
from tests.cryptotokens.aws_moto import MotoServer, free_port

REGION = "us-east-1"
SIX_RIGHTS = set(aws.KMS_RIGHTS)


def unique(prefix: str) -> str:
    """Aliases must be new in the moto server, which lives longer than one test's database."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def moto_kms():
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kms(moto_kms, settings):
    """Point the backend at the moto server; every test starts with no pooled clients."""
    settings.AWS_KMS_ENDPOINT_URL = moto_kms.url
    aws.clear_clients()
    yield moto_kms
    aws.clear_clients()


@pytest.fixture
def admin_kms(moto_kms):
    """The test's own KMS client, to look at KMS state the backend has no right to read (DescribeKey)."""
    return boto3.client("kms", region_name=REGION, endpoint_url=moto_kms.url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def kms_properties(access_key_id: str = "testing", **extra) -> dict:
    return {"auth_method": "ACCESS_KEY", "region": REGION, "access_key_id": access_key_id, **extra}


@pytest.fixture
def kms_token_factory(db, actor, kms):
    def make(name: str | None = None, secret: str = "testing", properties: dict | None = None, **kw):
        return services.create_token(
            actor, name=name or unique("kms"), token_type="AWSKMSCryptoToken", auth_code=secret,
            auto_activate=kw.pop("auto_activate", True), properties=properties or kms_properties(), **kw,
        )

    return make


@pytest.fixture
def kms_token(kms_token_factory):
    return kms_token_factory("KmsToken")


class KmsCalls(list):
    """(operation, parameters) of each KMS call, and how many KMS clients were made."""

    clients_made = 0


@pytest.fixture
def kms_calls(monkeypatch):
    """Records every KMS call made through clients created from now on (botocore's before-call hook)."""
    calls = KmsCalls()
    real_client = boto3.session.Session.client

    def client(self, service_name, *args, **kwargs):
        made = real_client(self, service_name, *args, **kwargs)
        if service_name == "kms":
            calls.clients_made += 1
            built: dict = {}
            # The parameters as the backend passed them (before serialization), then the call as sent.
            made.meta.events.register("before-parameter-build.kms.*", lambda params, **_: built.update(p=dict(params)))
            made.meta.events.register("before-call.kms.*", lambda model, **_: calls.append((model.name, built["p"])))
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    aws.clear_clients()
    return calls


def test_backend_declares_itself():
    backend = aws.AWSKMSCryptoTokenBackend
    assert (backend.type_name, backend.label) == ("AWSKMSCryptoToken", "AWS KMS")
    params = {p.name: p for p in backend.parameters}
    assert set(params) == {"auth_method", "region", "access_key_id"}
    assert dict(params["auth_method"].choices) == {
        "ACCESS_KEY": "Access Key ID and Secret", "SERVICE_ACCOUNT_ROLE": "Service Account Role",
    }
    assert not params["access_key_id"].required  # only with ACCESS_KEY, checked by the backend


def test_create_token_keeps_the_secret_encrypted(kms_token_factory):
    token = kms_token_factory("KmsSecret", secret="testing-secret-access-key",
                              properties=kms_properties(region=" us-east-1 "))
    raw = CryptoToken.objects.filter(pk=token.pk).values().get()
    assert "testing-secret-access-key" not in repr(raw)
    assert raw["properties"] == {"auth_method": "ACCESS_KEY", "region": "us-east-1", "access_key_id": "testing"}
    assert token.is_active


@pytest.mark.parametrize(
    ("spec", "algorithm", "key_spec", "kms_spec"),
    [
        ("RSA2048", "RSA", "2048", "RSA_2048"),
        ("RSA3072", "RSA", "3072", "RSA_3072"),
        ("P-256", "EC", "secp256r1", "ECC_NIST_P256"),
        ("P-384", "EC", "secp384r1", "ECC_NIST_P384"),
    ],
)
def test_generate_and_sign(kms_token, actor, admin_kms, spec, algorithm, key_spec, kms_spec):
    alias = unique("gen")
    entry = services.generate_key_pair(actor, kms_token, alias, spec)
    assert (entry.key_algorithm, entry.key_spec) == (algorithm, key_spec)
    arn = bytes(entry.private_data).decode()
    meta = admin_kms.describe_key(KeyId=f"alias/{alias}")["KeyMetadata"]
    assert (meta["Arn"], meta["KeySpec"], meta["KeyUsage"]) == (arn, kms_spec, "SIGN_VERIFY")
    assert bytes(entry.public_key_der) == admin_kms.get_public_key(KeyId=arn)["PublicKey"]

    key = services.get_private_key(kms_token, alias)
    public = key.public_key()
    data = b"to be signed " * 20
    if algorithm == "RSA":
        assert isinstance(key, rsa.RSAPrivateKey) and isinstance(key, RemoteRSAPrivateKey)
        assert key.key_size == int(key_spec)
        for h in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
            public.verify(key.sign(data, padding.PKCS1v15(), h), data, padding.PKCS1v15(), h)
            pss = padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.DIGEST_LENGTH)
            # moto's salt length differs from AWS's (see the module docstring): AUTO reads it from the signature
            public.verify(key.sign(data, pss, h), data, padding.PSS(mgf=padding.MGF1(h),
                          salt_length=padding.PSS.AUTO), h)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key, RemoteECPrivateKey)
        assert key.curve.name == key_spec
        h = hashes.SHA256() if key_spec == "secp256r1" else hashes.SHA384()
        public.verify(key.sign(data, ec.ECDSA(h)), data, ec.ECDSA(h))


def test_raw_and_digest_signing_paths(kms_token, actor, kms_calls):
    alias = unique("paths")
    services.generate_key_pair(actor, kms_token, alias, "RSA2048")
    key = services.get_private_key(kms_token, alias)
    public = key.public_key()
    small, large = b"s" * aws.RAW_MESSAGE_LIMIT, b"L" * (aws.RAW_MESSAGE_LIMIT + 1)

    del kms_calls[:]
    signature = key.sign(small, padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, small, padding.PKCS1v15(), hashes.SHA256())
    (op, params), = kms_calls
    assert (op, params["MessageType"], params["SigningAlgorithm"]) == ("Sign", "RAW", "RSASSA_PKCS1_V1_5_SHA_256")

    del kms_calls[:]
    signature = key.sign(large, padding.PKCS1v15(), hashes.SHA384())
    (op, params), = kms_calls
    digest = hashlib.sha384(large).digest()
    assert (params["MessageType"], params["SigningAlgorithm"]) == ("DIGEST", "RSASSA_PKCS1_V1_5_SHA_384")
    assert params["Message"] == digest  # what AWS signs as is
    # moto ignores DIGEST and hashes the digest again: its signature verifies over the digest as a message.
    public.verify(signature, digest, padding.PKCS1v15(), hashes.SHA384())

    del kms_calls[:]
    key.sign(hashlib.sha256(b"x").digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    assert kms_calls[0][1]["MessageType"] == "DIGEST"


def test_handle_refuses_what_kms_cannot_do(kms_token, actor):
    services.generate_key_pair(actor, kms_token, alias := unique("limits"), "RSA2048")
    services.generate_key_pair(actor, kms_token, ec_alias := unique("limits-ec"), "P-256")
    key, ec_key = services.get_private_key(kms_token, alias), services.get_private_key(kms_token, ec_alias)
    with pytest.raises(UnsupportedKeySpecError, match="salt as long as the hash"):
        key.sign(b"x", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
                 hashes.SHA256())
    with pytest.raises(UnsupportedKeySpecError, match="SHA-256, SHA-384 or SHA-512"):
        key.sign(b"x", padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(UnsupportedKeySpecError, match="only with SHA256"):
        ec_key.sign(b"x", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(CryptoTokenError, match="cannot be exported"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    with pytest.raises(CryptoTokenError, match="does not decrypt"):
        key.decrypt(b"x", padding.PKCS1v15())


@pytest.mark.parametrize(("spec", "sig_alg"), [("RSA2048", "SHA256WithRSA"), ("P-256", "SHA256withECDSA")])
def test_ca_on_a_kms_key_issues_certificates_and_crls_openssl_accepts(
    kms_token, actor, builtin_profiles, csr_factory, openssl, spec, sig_alg
):
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke
    from pki.services.cas import CASettings, create_ca

    ca = create_ca(actor, CASettings(
        name="KmsCA", subject_dn="CN=KMS CA,O=Test,C=SE", crypto_token=kms_token, key_alias=unique("ca"),
        key_spec=spec, signature_algorithm=sig_alg,
    ))
    profile = CertificateProfile.objects.get(name="ENDUSER")
    good = issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csr_factory("CN=Good,O=Test,C=SE")[0]))
    bad = issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csr_factory("CN=Bad,O=Test,C=SE")[0]))
    revoke(actor, bad.row, "keyCompromise")
    crl = create_crl(actor, ca)

    assert ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == bytes(CryptoTokenKeyPair.objects.get(token=kms_token, alias=ca.key_alias).public_key_der)
    openssl.write("ca.pem", pem(ca.certificate))
    openssl.write("good.pem", pem(good.certificate))
    openssl.write("bad.pem", pem(bad.certificate))
    openssl.write("crl.der", bytes(crl.der))
    assert "OK" in openssl("verify", "-CAfile", "ca.pem", "ca.pem").stdout  # the self-signed CA certificate
    assert "OK" in openssl("verify", "-CAfile", "ca.pem", "good.pem").stdout
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "ca.pem")
    assert "verify OK" in (out.stdout + out.stderr)
    openssl("crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem")
    openssl.write("trust.pem", pem(ca.certificate) + (openssl.workdir / "crl.pem").read_bytes())
    assert "OK" in openssl("verify", "-crl_check", "-CAfile", "trust.pem", "good.pem").stdout
    refused = openssl("verify", "-crl_check", "-CAfile", "trust.pem", "bad.pem", check=False)
    assert refused.returncode != 0 and "certificate revoked" in (refused.stdout + refused.stderr)


def test_alias_taken_on_the_token_or_only_in_kms(kms_token, actor, admin_kms, kms_calls):
    alias = unique("twice")
    services.generate_key_pair(actor, kms_token, alias, "P-256")
    with pytest.raises(KeyPairExistsError, match="already exists"):
        services.generate_key_pair(actor, kms_token, alias, "P-256")

    # An alias someone made in KMS directly: refused before any key is created.
    outside = unique("outside")
    key_id = admin_kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    admin_kms.create_alias(AliasName=f"alias/{outside}", TargetKeyId=key_id)
    del kms_calls[:]
    with pytest.raises(KeyPairExistsError, match=f"alias/{outside}"):
        services.generate_key_pair(actor, kms_token, outside, "P-256")
    assert {op for op, _ in kms_calls} == {"ListAliases"}
    assert not CryptoTokenKeyPair.objects.filter(token=kms_token, alias=outside).exists()


@pytest.mark.parametrize(
    ("alias", "message"),
    [("with space", "letters, digits"), ("aws/mine", "reserved for AWS"), ("x" * 251, "1 to 250"),
     ("ünïcode", "letters, digits")],
)
def test_aliases_kms_cannot_name(kms_token, actor, kms_calls, alias, message):
    with pytest.raises(CryptoTokenError, match=message):
        services.generate_key_pair(actor, kms_token, alias, "P-256")
    assert kms_calls == [] and not kms_token.key_pairs.exists()


@pytest.mark.parametrize("spec", ["Ed25519", "Ed448", "brainpoolP256r1", "RSA1024", "RSA8192"])
def test_unsupported_key_specs(kms_token, actor, kms_calls, spec):
    with pytest.raises(UnsupportedKeySpecError, match="AWS KMS crypto tokens hold RSA 2048/3072/4096 and EC"):
        services.generate_key_pair(actor, kms_token, unique("spec"), spec)
    assert kms_calls == [] and not kms_token.key_pairs.exists()


def test_remove_key_pair_schedules_deletion(kms_token, actor, admin_kms):
    alias = unique("remove")
    entry = services.generate_key_pair(actor, kms_token, alias, "RSA2048")
    backend = services.backend_for(kms_token)
    backend.remove_key_pair(entry, services.auth_code_of(kms_token))
    meta = admin_kms.describe_key(KeyId=bytes(entry.private_data).decode())["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert (meta["DeletionDate"] - meta["CreationDate"]).days in (6, 7)  # the 7-day minimum window
    backend.remove_key_pair(entry, services.auth_code_of(kms_token))  # twice is harmless
    # DeleteAlias is not among the rights: the alias stays until KMS deletes the key.
    entry.delete()
    with pytest.raises(KeyPairExistsError, match="stays taken until KMS deletes the key"):
        services.generate_key_pair(actor, kms_token, alias, "RSA2048")


def test_only_the_six_documented_kms_rights_are_used(kms_token_factory, actor, builtin_profiles, csr_factory,
                                                     kms_calls):
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.services.cas import CASettings, create_ca

    token = kms_token_factory("KmsRights")
    ca = create_ca(actor, CASettings(name="RightsCA", subject_dn="CN=Rights CA,O=Test,C=SE", crypto_token=token,
                                     key_alias=unique("rights-ca"), key_spec="P-384"))
    issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                          csr=csr_factory()[0]))
    create_crl(actor, ca)
    entry = services.generate_key_pair(actor, token, unique("rights-rsa"), "RSA3072")
    key = services.get_private_key(token, entry.alias)
    key.sign(b"y" * 10_000, padding.PKCS1v15(), hashes.SHA256())
    services.backend_for(token).remove_key_pair(entry, services.auth_code_of(token))
    assert {op for op, _ in kms_calls} == SIX_RIGHTS


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        (kms_properties(region=""), "not an AWS region"),
        (kms_properties(region="Mars"), "not an AWS region"),
        (kms_properties(auth_method="PASSWORD"), "Unknown AWS authentication method"),
        ({"auth_method": "ACCESS_KEY", "region": REGION}, "access key ID"),
        (kms_properties(access_key_id="has space"), "access key ID"),
    ],
)
def test_bad_settings_store_nothing(kms_token_factory, kms_calls, properties, message):
    with pytest.raises(CryptoTokenError, match=message):
        kms_token_factory("BadSettings", properties=properties)
    assert kms_calls == [] and not CryptoToken.objects.filter(name="BadSettings").exists()


def test_unreachable_endpoint_is_a_clear_error_and_stores_nothing(kms_token_factory, settings):
    settings.AWS_KMS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(CryptoTokenUnavailableError, match=r"AWS KMS \(http://127.0.0.1:\d+\) cannot be reached"):
        kms_token_factory("Unreachable")
    assert time.monotonic() - started < 30
    assert not CryptoToken.objects.filter(name="Unreachable").exists()


def test_signing_when_kms_goes_away_fails_cleanly(kms_token, actor, settings):
    services.generate_key_pair(actor, kms_token, alias := unique("away"), "P-256")
    key = services.get_private_key(kms_token, alias)
    key.sign(b"x", ec.ECDSA(hashes.SHA256()))
    settings.AWS_KMS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    services.clear_key_cache()  # the handle is rebuilt with the new endpoint, as after a restart
    with pytest.raises(CryptoTokenUnavailableError, match="cannot be reached"):
        services.get_private_key(kms_token, alias).sign(b"x", ec.ECDSA(hashes.SHA256()))


def test_service_account_role_uses_the_default_credential_chain(kms_token_factory, actor, monkeypatch, tmp_path):
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata service here
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    role = {"auth_method": "SERVICE_ACCOUNT_ROLE", "region": REGION}
    with pytest.raises(AuthenticationCodeError, match="No AWS credentials"):
        kms_token_factory("NoRole", secret="unused", properties=role)
    assert not CryptoToken.objects.filter(name="NoRole").exists()

    # What an instance role provides, boto3 finds through the same chain (here: the environment).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    token = kms_token_factory("Role", secret="unused", properties={**role, "access_key_id": "ignored"})
    assert token.properties["access_key_id"] == ""
    services.generate_key_pair(actor, token, alias := unique("role"), "P-256")
    key = services.get_private_key(token, alias)
    key.public_key().verify(key.sign(b"r", ec.ECDSA(hashes.SHA256())), b"r", ec.ECDSA(hashes.SHA256()))


# -- IAM enforced: a moto server that checks signatures and policies like AWS ---------------------------------

POLICY_SIX_RIGHTS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": [f"kms:{r}" for r in aws.KMS_RIGHTS], "Resource": "*"}],
}


@pytest.fixture(scope="module")
def iam_kms():
    """A second moto server with IAM enforced: users 'pki' (exactly the six rights), 'nobody', 'admin'."""
    import json

    server = MotoServer().start()
    try:
        iam = boto3.client("iam", region_name=REGION, endpoint_url=server.url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        keys = {}
        admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        for user, document in [("pki", POLICY_SIX_RIGHTS), ("nobody", None), ("admin", admin)]:
            iam.create_user(UserName=user)
            if document:
                policy = iam.create_policy(PolicyName=f"{user}-policy", PolicyDocument=json.dumps(document))
                iam.attach_user_policy(UserName=user, PolicyArn=policy["Policy"]["Arn"])
                keys[f"{user}-policy"] = policy["Policy"]["Arn"]
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        server.enforce_iam()
        server.keys = keys
        yield server
    finally:
        server.stop()


@pytest.fixture
def iam_endpoint(iam_kms, settings):
    settings.AWS_KMS_ENDPOINT_URL = iam_kms.url
    aws.clear_clients()
    yield iam_kms
    aws.clear_clients()


def iam_token(actor, name, key_id, secret, auto_activate=True):
    return services.create_token(actor, name=name, token_type="AWSKMSCryptoToken", auth_code=secret,
                                 auto_activate=auto_activate, properties=kms_properties(key_id))


def test_the_six_rights_are_enough(db, actor, iam_endpoint):
    key_id, secret = iam_endpoint.keys["pki"]
    token = iam_token(actor, "SixRights", key_id, secret)
    for spec, sign in [("RSA2048", lambda k: k.sign(b"m" * 5000, padding.PKCS1v15(), hashes.SHA256())),
                       ("P-521", lambda k: k.sign(b"m", ec.ECDSA(hashes.SHA512())))]:
        entry = services.generate_key_pair(actor, token, unique("iam"), spec)
        assert sign(services.get_private_key(token, entry.alias))
        services.backend_for(token).remove_key_pair(entry, secret)


@pytest.mark.parametrize(
    ("user", "secret", "error", "message"),
    [
        ("pki", "wrong-secret-value", AuthenticationCodeError, "rejected the credentials.*SignatureDoesNotMatch"),
        ("unknown", "some-secret-value", AuthenticationCodeError, "rejected the credentials.*InvalidClientTokenId"),
        ("nobody", None, KeyServiceAccessDeniedError, "denied kms:ListAliases.*must allow kms:ListAliases"),
    ],
)
def test_refused_credentials_store_nothing_and_never_show_the_secret(db, actor, iam_endpoint, caplog, user, secret,
                                                                     error, message):
    key_id, real_secret = iam_endpoint.keys.get(user, ("AKIAUNKNOWNUSER00000", None))
    secret = secret or real_secret
    caplog.set_level(logging.DEBUG)  # botocore's debug logs included
    with pytest.raises(error, match=message) as caught:
        iam_token(actor, "Refused", key_id, secret)
    assert not CryptoToken.objects.filter(name="Refused").exists()
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert caplog.records and secret not in caplog.text
    assert all(secret not in str(r.args) for r in caplog.records)


def test_wrong_code_on_activation_is_audited_without_the_secret(db, actor, iam_endpoint, caplog):
    key_id, secret = iam_endpoint.keys["pki"]
    token = iam_token(actor, "Reactivate", key_id, secret, auto_activate=False)
    services.deactivate(actor, token)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationCodeError):
        services.activate(actor, token, "not-the-secret-key")
    token.refresh_from_db()
    assert not token.is_active
    failure = AuditEvent.objects.get(event_type="CRYPTOTOKEN_ACTIVATION", outcome="FAILURE")
    assert "not-the-secret-key" not in repr(failure.details) and secret not in repr(failure.details)
    assert "not-the-secret-key" not in caplog.text and secret not in caplog.text
    services.activate(actor, token, secret)
    assert CryptoToken.objects.get(pk=token.pk).is_active


def test_a_client_that_failed_is_replaced(db, actor, iam_endpoint, kms_calls):
    """Pooled clients are reused, and dropped after a failure so the next call starts afresh."""
    key_id, secret = iam_endpoint.keys["pki"]
    token = iam_token(actor, "Pooled", key_id, secret)
    services.generate_key_pair(actor, token, alias := unique("pool"), "P-256")
    key = services.get_private_key(token, alias)
    assert kms_calls.clients_made == 1  # one client for creation, generation and the handle
    key.sign(b"1", ec.ECDSA(hashes.SHA256()))
    key.sign(b"2", ec.ECDSA(hashes.SHA256()))
    assert kms_calls.clients_made == 1
    iam = boto3.client("iam", region_name=REGION, endpoint_url=iam_endpoint.url,
                       aws_access_key_id=iam_endpoint.keys["admin"][0],
                       aws_secret_access_key=iam_endpoint.keys["admin"][1])
    iam.detach_user_policy(UserName="pki", PolicyArn=iam_endpoint.keys["pki-policy"])
    try:
        with pytest.raises(KeyServiceAccessDeniedError, match="denied kms:Sign"):
            key.sign(b"3", ec.ECDSA(hashes.SHA256()))
    finally:
        iam.attach_user_policy(UserName="pki", PolicyArn=iam_endpoint.keys["pki-policy"])
    key.sign(b"4", ec.ECDSA(hashes.SHA256()))
    assert kms_calls.clients_made == 2  # a fresh client after the failure
