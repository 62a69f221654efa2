"""Domain errors of the CA core. Interfaces map each kind to their own reply
(form error, HTTP status with a JSON body, CLI exit code, SCEP failInfo)."""

from __future__ import annotations

from cryptotokens.errors import CryptoTokenError, CryptoTokenOfflineError


class PkiError(Exception):
    """Base class of refusals the caller can act on. ``http_status`` is what the REST API answers."""

    http_status = 400
    error_code = "BAD_REQUEST"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(PkiError):
    """The request breaks a rule of a profile or of the protocol."""


class NotFoundError(PkiError):
    http_status = 404
    error_code = "NOT_FOUND"


class ConflictError(PkiError):
    """The request conflicts with existing state (a name taken, a certificate already revoked)."""

    http_status = 409
    error_code = "CONFLICT"


class AuthorizationDenied(PkiError):
    http_status = 403
    error_code = "ACCESS_DENIED"

    def __init__(self, resource: str, actor: str = ""):
        super().__init__(f"Not authorized to resource {resource}.")
        self.resource = resource
        self.actor = actor


class RoleMemberMatchDenied(AuthorizationDenied):
    """A certificate whose subject would log in as a client-certificate role member, asked for by a caller who
    may not edit that role (issuing it would be joining the role)."""

    def __init__(self, message: str, actor: str = ""):
        PkiError.__init__(self, message)
        self.resource = "/system_functionality/edit_administrator_privileges"
        self.actor = actor


class CAOfflineError(PkiError):
    http_status = 503
    error_code = "CA_OFFLINE"


def as_pki_error(exc: Exception) -> PkiError:
    """Translate an error of a lower layer into the core's typed errors."""
    if isinstance(exc, PkiError):
        return exc
    if isinstance(exc, CryptoTokenOfflineError):
        return CAOfflineError(str(exc))
    if isinstance(exc, CryptoTokenError):
        return ValidationError(str(exc))
    raise exc
