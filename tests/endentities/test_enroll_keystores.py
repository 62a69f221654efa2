"""Server-side key generation: P12, JKS, PEM and BCFKS keystores, read back by openssl, keytool and cryptography."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from endentities.choices import EndEntityStatus, TokenType
from endentities.keystores import build_jks, build_keystore, build_p12, keystore_filename
from endentities.models import EndEntity
from endentities.services import EnrollmentDenied, enroll_keystore, enroll_with_ra
from pki.errors import ValidationError
from pki.models import Certificate

from .entities_support import *  # noqa: F403  (the shared fixtures)

KEYTOOL = shutil.which("keytool")


def _keytool(*args: str) -> str:
    if KEYTOOL is None:
        raise AssertionError("keytool is missing: scripts/install-test-deps.sh installs default-jre-headless")
    proc = subprocess.run([KEYTOOL, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def keystore_entity(entity_factory):
    def make(username: str, token: str, password: str = "foo123"):
        return entity_factory(username, password=password, token_type=token, subject_dn=f"CN={username},O=Test")
    return make


def test_p12_as_ejbca_encrypts_it(keystore_entity, openssl, root_ca):
    keystore_entity("p12user", "P12")
    result = enroll_keystore("p12user", "foo123", key_alg="RSA", key_spec="2048", interface="rest")
    assert result.response_format == "PKCS12"
    key, cert, chain = pkcs12.load_key_and_certificates(result.keystore, b"foo123")
    assert cert.public_key() == key.public_key() and key.key_size == 2048
    assert [c.subject for c in chain] == [root_ca.certificate.subject]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(result.keystore, b"wrong")
    path = openssl.write("u.p12", result.keystore)
    info = openssl("pkcs12", "-in", path, "-info", "-noout", "-passin", "pass:foo123", "-legacy", check=False)
    if info.returncode != 0:  # OpenSSL without the legacy provider still reports the algorithms
        info = openssl("pkcs12", "-in", path, "-info", "-noout", "-passin", "pass:foo123", check=False)
    text = info.stdout + info.stderr
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in text  # the seed: pbeWithSHAAnd3-KeyTripleDES-CBC
    assert EndEntity.objects.get(username="p12user").status == EndEntityStatus.GENERATED


def test_p12_aes_setting(settings, keystore_entity, openssl):
    settings.PKI_P12_ENCRYPTION = "AES256"
    keystore_entity("aesuser", "P12")
    result = enroll_keystore("aesuser", "foo123", key_alg="EC", key_spec="P-256", interface="rest")
    info = openssl("pkcs12", "-in", openssl.write("a.p12", result.keystore), "-info", "-noout",
                   "-passin", "pass:foo123")
    assert "AES-256-CBC" in info.stdout + info.stderr


def test_jks_read_by_keytool(keystore_entity, tmp_path):
    keystore_entity("jksuser", "JKS")
    result = enroll_keystore("jksuser", "foo123", key_alg="RSA", key_spec="2048", interface="rest")
    assert result.response_format == "JKS" and result.keystore[:4] == bytes.fromhex("feedfeed")
    path = tmp_path / "u.jks"
    path.write_bytes(result.keystore)
    listing = _keytool("-list", "-v", "-keystore", str(path), "-storepass", "foo123", "-storetype", "JKS")
    assert "PrivateKeyEntry" in listing and "Certificate chain length: 2" in listing
    assert "CN=jksuser" in listing
    # The private key decrypts with the password: keytool converts it to PKCS#12, which cryptography reads.
    _keytool("-importkeystore", "-srckeystore", str(path), "-srcstoretype", "JKS", "-srcstorepass", "foo123",
             "-destkeystore", str(tmp_path / "out.p12"), "-deststoretype", "PKCS12", "-deststorepass", "foo123",
             "-noprompt")
    key, cert, _ = pkcs12.load_key_and_certificates((tmp_path / "out.p12").read_bytes(), b"foo123")
    assert cert.public_key() == key.public_key() == result.issued.certificate.public_key()
    bad = subprocess.run([KEYTOOL, "-list", "-keystore", str(path), "-storepass", "wrongpw", "-storetype", "JKS"],
                         capture_output=True, text=True)
    assert bad.returncode != 0  # the integrity check binds the store to the password


def test_jks_ec_key(csr_factory, root_ca, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    cert = root_ca.certificate
    data = build_jks(key, cert, [], "changeit", alias="Mixed-Case")
    (tmp_path / "e.jks").write_bytes(data)
    listing = _keytool("-list", "-keystore", str(tmp_path / "e.jks"), "-storepass", "changeit")
    assert "mixed-case" in listing  # Java stores JKS aliases lower-cased


def test_pem_key_encrypted_with_password(keystore_entity):
    keystore_entity("pemuser", "PEM")
    result = enroll_keystore("pemuser", "foo123", key_alg="EC", key_spec="secp384r1", interface="rest")
    assert result.response_format == "PEM"
    text = result.keystore
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in text and b"BEGIN PRIVATE KEY" not in text
    key = serialization.load_pem_private_key(text, b"foo123")
    certs = x509.load_pem_x509_certificates(text[text.index(b"-----BEGIN CERTIFICATE"):])
    assert certs[0].public_key() == key.public_key() and len(certs) == 2
    with pytest.raises((ValueError, TypeError)):
        serialization.load_pem_private_key(text, b"wrong")


def test_bcfks_read_by_keytool_with_bouncy_castle(keystore_entity, tmp_path, settings):
    keystore_entity("bcuser", "BCFKS")
    result = enroll_keystore("bcuser", "foo123", key_alg="RSA", key_spec="2048", interface="rest")
    assert result.response_format == "BCFKS"
    path = tmp_path / "u.bcfks"
    path.write_bytes(result.keystore)
    listing = _keytool("-list", "-keystore", str(path), "-storepass", "foo123", "-storetype", "BCFKS",
                       "-providerpath", settings.PKI_BCFKS_PROVIDER_JAR,
                       "-providerclass", "org.bouncycastle.jce.provider.BouncyCastleProvider")
    assert "PrivateKeyEntry" in listing


def test_bcfks_without_tooling_refused_and_nothing_stored(keystore_entity, settings):
    settings.PKI_BCFKS_PROVIDER_JAR = "/nonexistent/bcprov.jar"
    keystore_entity("nobc", "BCFKS")
    with pytest.raises(ValidationError) as exc:
        enroll_keystore("nobc", "foo123", interface="rest")
    assert exc.value.field == "token" and "Bouncy Castle" in exc.value.message
    # built inside the issuing transaction: the certificate rolled back and the code is still usable
    assert not Certificate.objects.filter(username="nobc").exists()
    assert EndEntity.objects.get(username="nobc").status == EndEntityStatus.NEW


def test_wrong_password_no_keystore(keystore_entity):
    keystore_entity("p12b", "P12")
    with pytest.raises(EnrollmentDenied):
        enroll_keystore("p12b", "nope", interface="rest")
    assert EndEntity.objects.get(username="p12b").failed_login_count == 1


@pytest.mark.parametrize("alg, spec, field", [("RSA", "123", "key_spec"), ("DSA", "1024", "key_alg"),
                                              ("RSA", "1024", "key_spec"),  # not allowed by ENDUSER
                                              ("EC", "brainpoolXYZ", "key_spec")])
def test_bad_key_spec(keystore_entity, alg, spec, field):
    keystore_entity("p12c", "P12")
    with pytest.raises(ValidationError) as exc:
        enroll_keystore("p12c", "foo123", key_alg=alg, key_spec=spec, interface="rest")
    assert exc.value.field == field
    assert EndEntity.objects.get(username="p12c").status == EndEntityStatus.NEW


def test_ra_operator_keystore(keystore_entity, actor):
    keystore_entity("rauser", "P12")
    result = enroll_keystore("rauser", "foo123", interface="ra", actor=actor, with_ra=True)
    pkcs12.load_key_and_certificates(result.keystore, b"foo123")
    with pytest.raises(EnrollmentDenied):
        enroll_with_ra(actor, "rauser", public_key=result.issued.certificate.public_key(), server_key=True)


def test_helpers(root_ca):
    from cryptography.hazmat.primitives.asymmetric import ec

    assert keystore_filename("a/b c", TokenType.P12) == "a_b_c.p12"
    assert keystore_filename("x", TokenType.BCFKS) == "x.bcfks"
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValidationError):
        build_keystore(TokenType.USERGENERATED, key, root_ca.certificate, [], "pw")
    with pytest.raises(ValidationError):
        build_keystore(TokenType.P12, key, root_ca.certificate, [], "")
    with pytest.raises(ValueError):  # a key that does not belong to the certificate is never packed
        build_p12(key, root_ca.certificate, [], "pw")
