"""Enrollment codes at rest: a Django password hash always, a recoverable encrypted copy only when the
end entity profile keeps it (renewal with the password, batch generation)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from cryptotokens.secrets import SecretDecryptionError, decrypt_secret, encrypt_secret

# An enrollment code is checked on every enrollment (REST, SCEP, RA portal): Django's default of one
# million PBKDF2 rounds would cost ~0.25 s of CPU per request. Codes are one-time, rate limited by the
# failed-login counter and mostly generated, so fewer rounds keep enrollment fast at little risk.
DEFAULT_ITERATIONS = 100_000


class EnrollmentCodeHasher(PBKDF2PasswordHasher):
    """PBKDF2-SHA256 with the round count of ``PKI_ENROLLMENT_CODE_ITERATIONS``. Used directly (not through
    ``PASSWORD_HASHERS``): the stored string records its own rounds, so changing the setting keeps old
    hashes verifiable."""

    algorithm = "pbkdf2_sha256"

    @property
    def iterations(self) -> int:  # type: ignore[override]
        return int(getattr(settings, "PKI_ENROLLMENT_CODE_ITERATIONS", DEFAULT_ITERATIONS))


_hasher = EnrollmentCodeHasher()


def hash_password(password: str) -> str:
    """The stored form of an enrollment code (``pbkdf2_sha256$rounds$salt$hash``)."""
    return _hasher.encode(password, _hasher.salt())


def check_password(password: str | None, encoded: str) -> bool:
    """Whether ``password`` matches the stored hash; an end entity without a password matches nothing."""
    if not encoded or password is None:
        return False
    try:
        return _hasher.verify(password, encoded)
    except (ValueError, TypeError):  # a malformed stored value never matches
        return False


def _context(username: str) -> str:
    return f"endentity-password:{username}"


def encrypt_clear_password(username: str, password: str) -> str:
    """The recoverable copy, bound to the username (a copy moved to another row does not decrypt)."""
    return encrypt_secret(password, _context(username))


def decrypt_clear_password(username: str, stored: str) -> str | None:
    """The recoverable copy in clear, or None when there is none (or it cannot be decrypted)."""
    if not stored:
        return None
    try:
        return decrypt_secret(stored, _context(username)).decode()
    except (SecretDecryptionError, UnicodeDecodeError):
        return None


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
