"""Values the REST API reads from requests: CA references, serial numbers, reasons, dates and flags.

Each parser turns bad input into a ``ValidationError`` (400) or ``NotFoundError`` (404), so no request
value reaches a service unchecked and none ends in a 500.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import NoReturn

from cryptography import x509
from django.utils.dateparse import parse_datetime

from ..auth.access import Actor
from ..choices import RevocationReason
from ..errors import AuthorizationDenied, NotFoundError, ValidationError
from ..ids import is_db_id, looks_numeric, parse_decimal
from ..models import CertificateAuthority, CertificateProfile
from ..services.cas import get_ca
from ..services.profiles import get_profile
from ..x509.dn import DNError, parse_dn

# EJBCA's REST names of the revocation reasons (RevocationReasons.getStringValue in EJBCA).
EJBCA_REASON_NAMES: dict[RevocationReason, str] = {
    reason: ("PRIVILEGES_WITHDRAWN" if reason == RevocationReason.PRIVILEGE_WITHDRAWN else reason.name)
    for reason in RevocationReason
}
NOT_REVOKED = "NOT_REVOKED"
_SERIAL_RE = re.compile(r"^(?:0x)?[0-9a-f]+$", re.IGNORECASE)
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
logger = logging.getLogger("pki.api")


def _usable_ref(ref: str, what: str) -> str:
    """Refuse references the services would read as an id that cannot exist (and the database rejects)."""
    if looks_numeric(ref) and not is_db_id(ref):
        raise NotFoundError(f"{what} '{ref}' does not exist.")
    return ref


def iso(dt: datetime | None) -> str | None:
    """A UTC timestamp as EJBCA's REST API writes it (``2018-06-15T14:07:09Z``)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def service_revision() -> str:
    """What the status endpoints report as ``revision`` (EJBCA reports its own version there)."""
    try:
        return f"pki {metadata.version('pki')}"
    except metadata.PackageNotFoundError:
        return "pki"


def status_payload() -> dict[str, str]:
    """EJBCA's resource status body: ``{"status": "OK", "version": "1.0", "revision": ...}``."""
    return {"status": "OK", "version": "1.0", "revision": service_revision()}


def _rdn_key(name: x509.Name) -> frozenset:
    return frozenset(frozenset((a.oid.dotted_string, a.value) for a in rdn) for rdn in name.rdns)


def resolve_ca(ref: str) -> CertificateAuthority:
    """The CA named by ``ref``: its id, its name or its subject DN.

    EJBCA normalizes the order of a DN's attributes before looking a CA up, so ``C=SE,O=Org,CN=CA``
    finds ``CN=CA,O=Org,C=SE`` there; this does the same when the exact forms do not match.
    """
    try:
        return get_ca(_usable_ref(ref, "CA"))
    except NotFoundError:
        try:
            wanted = _rdn_key(parse_dn(ref))
        except DNError:
            raise NotFoundError(f"CA '{ref}' does not exist.") from None
        for ca in CertificateAuthority.objects.select_related("crypto_token", "signed_by"):
            try:
                if _rdn_key(parse_dn(ca.subject_dn)) == wanted:
                    return ca
            except DNError:
                continue
        raise


def resolve_profile(ref: str) -> CertificateProfile:
    """A certificate profile by name (or id)."""
    return get_profile(_usable_ref(ref, "Certificate profile"))


def authorized_ca(actor: Actor, ref: str) -> CertificateAuthority:
    """The CA named by ``ref`` when ``actor`` may use it (rule ``/ca/<id>``).

    A CA the caller may not use answers exactly as a missing one would, so the reply is no oracle for
    which CAs exist or their ids: a caller holding ``/ca`` (every CA, so existence is no secret to it)
    gets 404 for both, any other caller a 403 for ``/ca`` that names no CA. The refusal is logged."""
    try:
        ca = resolve_ca(ref)
    except NotFoundError:
        _unseen_ca(actor, ref)
    if not actor.is_allowed(f"/ca/{ca.pk}"):
        logger.info("%s asked for CA %s without /ca/%s: answered as for a missing CA", actor.name, ca.pk, ca.pk)
        _unseen_ca(actor, ref)
    return ca


def _unseen_ca(actor: Actor, ref: str) -> NoReturn:
    if actor.is_allowed("/ca"):
        raise NotFoundError(f"CA '{ref}' does not exist.")
    raise AuthorizationDenied("/ca", actor.name)


# End entity profile names by id, for the ``end_entity_profile`` of certificate responses: the end entity app
# (above the core) registers the lookup at start-up.
_profile_names: list[Callable[[set[int]], dict[int, str]]] = []


def register_end_entity_profile_names(lookup: Callable[[set[int]], dict[int, str]]) -> None:
    """Called by the end entity app (``EndEntitiesConfig.ready``): ids -> names of end entity profiles."""
    _profile_names[:] = [lookup]


_profile_resolver: list[Callable[[Actor, str], int | None]] = []


def register_end_entity_profile_resolver(resolve: Callable[[Actor, str], int | None]) -> None:
    """Called by the end entity app: (actor, profile name) -> its id when it exists and the actor may view its
    end entities, else None."""
    _profile_resolver[:] = [resolve]


def end_entity_profile_id(actor: Actor, name: str) -> int | None:
    """The id of the end entity profile ``name`` for ``actor`` (None: unknown to it, or no end entity app)."""
    return _profile_resolver[0](actor, name) if _profile_resolver else None


def end_entity_profile_names(ids: set[int]) -> dict[int, str]:
    """The names of the end entity profiles ``ids`` that still exist (none without the end entity app)."""
    ids = {i for i in ids if i is not None}
    return _profile_names[0](ids) if ids and _profile_names else {}


def parse_serial(value: str) -> str:
    """A hex serial number (``0x`` prefix and ``:`` separators allowed) as stored: lower case, no leading zeros."""
    text = value.strip().replace(":", "")
    if not _SERIAL_RE.match(text):
        raise ValidationError(
            f"Invalid serial number '{value}'. Should be HEX encoded (optionally with '0x' prefix), "
            "e.g. '0x10782a83eef170d4'.", field="certificate_serial_number")
    return format(int(text, 16), "x")


def parse_fingerprint(value: str) -> str:
    """A SHA-256 fingerprint in hex (``:`` separators allowed), lower case."""
    text = value.strip().replace(":", "").lower()
    if not _FINGERPRINT_RE.match(text):
        raise ValidationError(f"'{value}' is not a SHA-256 fingerprint (64 hex digits).", field="fingerprint")
    return text


def parse_reason(value: str | None) -> RevocationReason:
    """A revocation reason by EJBCA's REST name (``KEY_COMPROMISE``), RFC 5280 name or code.

    EJBCA's ``NOT_REVOKED`` asks to take a certificate off hold, as ``REMOVE_FROM_CRL`` does.
    """
    if value is None or not value.strip():
        return RevocationReason.UNSPECIFIED
    if value.strip().upper() == NOT_REVOKED:
        return RevocationReason.REMOVE_FROM_CRL
    try:
        return RevocationReason.parse(value)
    except ValueError:
        names = ", ".join(EJBCA_REASON_NAMES.values())
        raise ValidationError(f"Invalid revocation reason '{value}'. Use one of {names}.", field="reason") from None


def parse_date(value: str, field: str) -> datetime:
    """An ISO 8601 date and time (``2018-06-15T14:07:09Z``); one without a time zone is taken as UTC."""
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValidationError(f"'{value}' is not an ISO 8601 date, e.g. '2018-06-15T14:07:09Z'.", field=field)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_flag(params, *names: str) -> bool:
    """A boolean query parameter under any of ``names`` (JAX-RS reads anything but ``true`` as false)."""
    for name in names:
        if name in params:
            return params[name].strip().lower() in {"true", "1", "yes"}
    return False


def parse_int(params, name: str, default: int = 0, minimum: int = 0) -> int:
    """A whole-number query parameter, at least ``minimum``; ``default`` when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    number = parse_decimal(raw, signed=True)
    if number is None:
        raise ValidationError(f"{name} must be a whole number, not '{raw}'.", field=name)
    if number < minimum:
        raise ValidationError(f"{name} must be {minimum} or more.", field=name)
    return number
