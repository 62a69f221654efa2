"""Secrets at rest: encryption and key derivation under PKI_MASTER_KEY.

The master key comes from the PKI_MASTER_KEY environment variable. Without it, a random key is
generated once into ``$PKI_VAR_DIR/master.key`` with mode 0600 (the zero-configuration start); every
process on the host then reads the same file. Sub-keys for separate purposes (audit chain HMAC, Django
signing, secret encryption) are derived with HKDF so one purpose's key never serves another.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "enc1:"


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted (wrong master key or tampered data)."""


def _var_dir() -> Path:
    base = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("PKI_VAR_DIR", base / "var"))


def master_key_path() -> Path:
    """Where the generated master key lives when PKI_MASTER_KEY is not set."""
    return _var_dir() / "master.key"


@functools.cache
def master_key() -> bytes:
    """The raw master key bytes (from the environment, or the generated local file)."""
    env = os.environ.get("PKI_MASTER_KEY")
    if env:
        return env.encode()
    path = master_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: when two processes start at once, one creates the file and the other reads it.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


@functools.cache
def derive_subkey(purpose: bytes, length: int = 32) -> bytes:
    """A key for one purpose, derived from the master key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"pki-master-key-v1", info=purpose).derive(
        master_key()
    )


def encrypt_secret(plaintext: str | bytes, context: str = "") -> str:
    """Encrypt a secret for storage; ``context`` binds it to where it is stored (AES-GCM associated data)."""
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    nonce = os.urandom(12)
    ct = AESGCM(derive_subkey(b"secret-encryption")).encrypt(nonce, data, context.encode())
    return _PREFIX + base64.b64encode(nonce + ct).decode()


def decrypt_secret(token: str, context: str = "") -> bytes:
    """Decrypt what :func:`encrypt_secret` produced with the same context."""
    if not token.startswith(_PREFIX):
        raise SecretDecryptionError("not an encrypted secret")
    raw = base64.b64decode(token[len(_PREFIX) :])
    try:
        return AESGCM(derive_subkey(b"secret-encryption")).decrypt(raw[:12], raw[12:], context.encode())
    except Exception as exc:  # InvalidTag: wrong key or altered ciphertext
        raise SecretDecryptionError("stored secret cannot be decrypted with this master key") from exc
