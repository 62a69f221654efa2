"""Keystores for server-generated keys, protected by the end entity's password (EJBCA's token types).

* **P12** (PKCS#12, RFC 7292): private key and certificates encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC and a
  SHA-1 MAC, as the EJBCA documentation gives it (readable everywhere, including old Windows and Java 8);
  setting ``PKI_P12_ENCRYPTION = "AES256"`` switches to PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) with a
  SHA-256 MAC, which OpenSSL 1.1.1+/3, Java 11.0.12+ and Windows 10+ read.
* **JKS** (Sun's Java KeyStore): written here (the format is small and fixed; the one Python library for it
  is unmaintained). Readable by every Java ``keytool``/``KeyStore.getInstance("JKS")``.
* **PEM** (RFC 7468): the private key as encrypted PKCS#8 (PBES2, AES-256-CBC) under the end entity
  password, then the certificate and its chain. EJBCA writes the key unencrypted; this project never hands
  out an unprotected private key.
* **BCFKS** (Bouncy Castle's FIPS keystore: PBKDF2-HMAC-SHA512 and AES-CCM): no Python library writes it.
  It is produced by Java ``keytool`` with the Bouncy Castle provider jar (``PKI_BCFKS_PROVIDER_JAR``, default
  Debian's ``/usr/share/java/bcprov.jar``) converting the PKCS#12 built here; without Java and that jar a
  BCFKS request is refused with a clear error. BCFKS is read only by Java with a Bouncy Castle provider
  (``bcprov`` or ``bc-fips``); OpenSSL, Windows and browsers cannot read it.

The private key exists only in memory while the keystore is built; it is never stored.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from django.conf import settings

from pki.errors import ValidationError

from .choices import TokenType

P12_KDF_ROUNDS = 50_000
JKS_MAGIC = 0xFEEDFEED
JKS_VERSION = 2
# Sun's proprietary key protection algorithm (KeyProtector): SHA-1 keystream XOR, SHA-1 integrity check.
_SUN_KEY_PROTECTOR_OID_DER = bytes.fromhex("060a2b060104012a02110101")  # 1.3.6.1.4.1.42.2.17.1.1


class KeystoreError(ValidationError):
    """A keystore could not be built (unsupported token type, missing BCFKS tooling)."""


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def build_p12(key: PrivateKeyTypes, cert: x509.Certificate, chain: list[x509.Certificate], password: str,
              alias: str = "", encryption: str | None = None) -> bytes:
    """PKCS#12 with the key, the certificate (friendly name ``alias``) and the CA chain."""
    mode = (encryption or getattr(settings, "PKI_P12_ENCRYPTION", "3DES")).upper()
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(P12_KDF_ROUNDS)
    if mode == "AES256":
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    else:
        # EJBCA's documented P12 encryption; the MAC hash of that scheme is SHA-1.
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())  # noqa: S303
    return pkcs12.serialize_key_and_certificates(
        (alias or "").encode() or None, key, cert, [c for c in chain if c != cert] or None,
        builder.build(password.encode()),
    )


def build_pem(key: PrivateKeyTypes, cert: x509.Certificate, chain: list[x509.Certificate], password: str) -> bytes:
    """Encrypted PKCS#8 private key, then the certificate, then the chain (issuer first)."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(password.encode()))
    return key_pem + _pem(cert) + b"".join(_pem(c) for c in chain if c != cert)


# --- JKS ---------------------------------------------------------------------------------------------


def _java_utf(text: str) -> bytes:
    """Java's DataOutput.writeUTF: a 2-byte length and modified UTF-8 (NUL as C0 80)."""
    data = text.encode("utf-8").replace(b"\x00", b"\xc0\x80")
    if len(data) > 0xFFFF:
        raise KeystoreError("Keystore alias too long.", field="username")
    return struct.pack(">H", len(data)) + data


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def _jks_protect_key(pkcs8: bytes, password: str) -> bytes:
    """Sun's KeyProtector: salt || (key XOR SHA-1 keystream over password+salt) || SHA-1(password+key),
    wrapped in an EncryptedPrivateKeyInfo with its proprietary OID."""
    pw = password.encode("utf-16-be")
    salt = os.urandom(20)
    stream = bytearray()
    digest = salt
    while len(stream) < len(pkcs8):
        digest = hashlib.sha1(pw + digest).digest()  # noqa: S324 - the JKS format fixes SHA-1
        stream += digest
    encrypted = bytes(a ^ b for a, b in zip(pkcs8, stream, strict=False))
    check = hashlib.sha1(pw + pkcs8).digest()  # noqa: S324
    algorithm = _tlv(0x30, _SUN_KEY_PROTECTOR_OID_DER + b"\x05\x00")
    return _tlv(0x30, algorithm + _tlv(0x04, salt + encrypted + check))


def build_jks(key: PrivateKeyTypes, cert: x509.Certificate, chain: list[x509.Certificate], password: str,
              alias: str = "key") -> bytes:
    """A JKS keystore with one private key entry (alias lower-cased, as Java stores it)."""
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    certs = [cert, *[c for c in chain if c != cert]]
    body = struct.pack(">III", JKS_MAGIC, JKS_VERSION, 1)
    protected = _jks_protect_key(pkcs8, password)
    body += struct.pack(">I", 1) + _java_utf((alias or "key").lower()) + struct.pack(">q", int(time.time() * 1000))
    body += struct.pack(">I", len(protected)) + protected + struct.pack(">I", len(certs))
    for c in certs:
        der = c.public_bytes(serialization.Encoding.DER)
        body += _java_utf("X.509") + struct.pack(">I", len(der)) + der
    mac = hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()  # noqa: S324
    return body + mac


# --- BCFKS -------------------------------------------------------------------------------------------


def bcfks_tooling() -> tuple[str, str] | None:
    """(keytool path, Bouncy Castle provider jar) when BCFKS keystores can be made here, else None."""
    keytool = shutil.which("keytool")
    jar = getattr(settings, "PKI_BCFKS_PROVIDER_JAR", "/usr/share/java/bcprov.jar")
    if keytool and jar and Path(jar).exists():
        return keytool, jar
    return None


def build_bcfks(key: PrivateKeyTypes, cert: x509.Certificate, chain: list[x509.Certificate], password: str,
                alias: str = "key") -> bytes:
    """BCFKS through keytool + Bouncy Castle: the PKCS#12 built here, converted entry by entry."""
    tooling = bcfks_tooling()
    if tooling is None:
        raise KeystoreError("BCFKS keystores need Java keytool and the Bouncy Castle provider jar on the server "
                            "(PKI_BCFKS_PROVIDER_JAR); use P12 instead.", field="token")
    keytool, jar = tooling
    with tempfile.TemporaryDirectory(prefix="pki-bcfks-") as tmp:
        src, dest = Path(tmp) / "in.p12", Path(tmp) / "out.bcfks"
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(build_p12(key, cert, chain, password, alias, encryption="AES256"))
        env = {**os.environ, "PKI_KS_PASS": password}
        proc = subprocess.run(  # noqa: S603 - fixed argument list, password through the environment
            [keytool, "-importkeystore", "-noprompt", "-srckeystore", str(src), "-srcstoretype", "PKCS12",
             "-srcstorepass:env", "PKI_KS_PASS", "-destkeystore", str(dest), "-deststoretype", "BCFKS",
             "-deststorepass:env", "PKI_KS_PASS", "-providerpath", jar,
             "-providerclass", "org.bouncycastle.jce.provider.BouncyCastleProvider"],
            capture_output=True, text=True, env=env, timeout=120,
        )
        if proc.returncode != 0 or not dest.exists():
            raise KeystoreError("The BCFKS keystore could not be made (keytool failed; see the server log).",
                                field="token")
        return dest.read_bytes()


def build_keystore(token_type: TokenType | int, key: PrivateKeyTypes, cert: x509.Certificate,
                   chain: list[x509.Certificate], password: str, alias: str = "") -> bytes:
    """The keystore of ``token_type`` (P12, JKS, PEM, BCFKS) protected by ``password``."""
    kind = TokenType(token_type)
    if not password:
        raise KeystoreError("A keystore needs the end entity's password.", field="password")
    if kind == TokenType.P12:
        return build_p12(key, cert, chain, password, alias)
    if kind == TokenType.JKS:
        return build_jks(key, cert, chain, password, alias or "key")
    if kind == TokenType.PEM:
        return build_pem(key, cert, chain, password)
    if kind == TokenType.BCFKS:
        return build_bcfks(key, cert, chain, password, alias or "key")
    raise KeystoreError("User generated tokens have no server-side keystore.", field="token")


def keystore_filename(username: str, token_type: TokenType | int) -> str:
    """A download name like EJBCA's: ``<username>.p12`` / ``.jks`` / ``.pem`` / ``.bcfks``."""
    ext = {TokenType.P12: "p12", TokenType.JKS: "jks", TokenType.PEM: "pem", TokenType.BCFKS: "bcfks"}
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in username) or "keystore"
    return f"{safe}.{ext.get(TokenType(token_type), 'bin')}"


def content_type(token_type: TokenType | int) -> str:
    return {TokenType.P12: "application/x-pkcs12", TokenType.JKS: "application/octet-stream",
            TokenType.PEM: "application/x-pem-file", TokenType.BCFKS: "application/octet-stream",
            }.get(TokenType(token_type), "application/octet-stream")
