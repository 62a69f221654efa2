"""EJBCA's per-CA uniqueness rules, checked at issuance inside the storing transaction.

* Enforce unique public keys: a key that this CA has already certified for another end entity (username) is
  refused. Certificates of the same username never conflict, so renewals with the same key pass.
* Enforce unique DN: a subject DN that this CA has already certified for another end entity is refused.
* Enforce unique Subject DN SerialNumber: a subject DN serialNumber (SN=) value that this CA has already
  certified for another end entity is refused.

As in EJBCA, every certificate the CA has issued counts: revoked and expired ones too (the rule is about who
a key or a name belongs to, not about what is valid today). A request is refused only when the value is held
and the requesting username is not among its holders.

The checks read rows that concurrent transactions may be about to insert, so on PostgreSQL each value is
first locked with a transaction-scoped advisory lock: a second issuance of the same key or DN waits until the
first one commits or rolls back, then sees its row. SQLite allows one writer at a time, and the row insert
follows the check in the same transaction, so the check and the insert cannot interleave there the same way
(a concurrent writer fails with "database is locked" rather than passing the check).
"""

from __future__ import annotations

import hashlib
import logging

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import connection

from .errors import ValidationError
from .models import Certificate, CertificateAuthority
from .x509.dn import DNError, escape_value, parse_dn_pairs

logger = logging.getLogger("pki.uniqueness")

MAX_LISTED_USERS = 10


def public_key_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """Hex SHA-256 of the key's DER SubjectPublicKeyInfo: the value stored in ``Certificate.public_key_sha256``."""
    return hashlib.sha256(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def dn_serial_numbers(subject_dn: str) -> list[str]:
    """The values of the SN (serialNumber) attributes of a DN in EJBCA syntax."""
    try:
        rdns = parse_dn_pairs(subject_dn)
    except DNError:
        return []
    return [value for rdn in rdns for key, value in rdn if key.upper() in ("SN", "SERIALNUMBER")]


def check_unique(ca: CertificateAuthority, username: str, subject_dn: str, public_key_hash: str) -> None:
    """Refuse a certificate that would break the CA's uniqueness settings (a :class:`ValidationError` on
    ``public_key`` or ``subject_dn``). Call inside the transaction that inserts the certificate row.

    Does nothing, and queries nothing, when the CA enforces none of the rules.
    """
    check_key = ca.enforce_unique_public_keys and bool(public_key_hash)
    # A certificate without a subject (alt names only) has no DN to be unique about.
    check_dn = ca.enforce_unique_dn and bool(subject_dn)
    serials = dn_serial_numbers(subject_dn) if ca.enforce_unique_dn_serial_number and subject_dn else []
    if not (check_key or check_dn or serials):
        return
    _lock(ca.pk, ([("key", public_key_hash)] if check_key else []) + ([("dn", subject_dn)] if check_dn else [])
          + [("sn", s) for s in serials])
    # One query for both rules (a round trip saved on the hot path); the lock above had to be its own
    # statement: a READ COMMITTED statement sees the rows committed before it started, not before a lock
    # it waited for.
    holders: dict[str, set[str]] = {"dn": set(), "key": set()}
    if check_dn or check_key:
        for kind, user in _usernames(ca.pk, subject_dn if check_dn else None,
                                     public_key_hash if check_key else None):
            holders[kind].add(user)
    if holders["dn"] and username not in holders["dn"]:
        logger.info("CA %s: subject DN %r refused for user %r, held by %s", ca.name, subject_dn, username,
                    _listed(holders["dn"]))
        raise ValidationError(
            f"User '{username}' is not allowed to use same subject DN as the user(s) {_listed(holders['dn'])} "
            f"is/are using while issued by the same CA. See the setting 'Enforce unique DN' of CA "
            f"'{ca.name}'.", field="subject_dn")
    if holders["key"] and username not in holders["key"]:
        # EJBCA names the other users in the log only: who holds a key is not the requester's business.
        logger.info("CA %s: public key %s refused for user %r, held by %s", ca.name, public_key_hash,
                    username, _listed(holders["key"]))
        raise ValidationError(
            f"User '{username}' is not allowed to use same key as another user is using.", field="public_key")
    for serial in serials:
        # The LIKE (on the value as stored, escaped) narrows the rows; the parse makes "SN=12" not match
        # "SN=123". Off by default, so the scan it may cost is paid only by CAs that ask for the rule.
        candidates = Certificate.objects.filter(ca_id=ca.pk, subject_dn__contains=f"SN={escape_value(serial, 'SN')}")
        serial_holders = {user for user, dn in candidates.order_by().values_list("username", "subject_dn").distinct()
                          if serial in dn_serial_numbers(dn)}
        if serial_holders and username not in serial_holders:
            logger.info("CA %s: DN serialNumber %r refused for user %r, held by %s", ca.name, serial, username,
                        _listed(serial_holders))
            raise ValidationError(
                f"Subject DN serialNumber '{serial}' is already used by another user of CA '{ca.name}'. See the "
                f"setting 'Enforce unique Subject DN SerialNumber' of the CA.", field="subject_dn")


def _usernames(ca_id: int, subject_dn: str | None, key_hash: str | None) -> list[tuple[str, str]]:
    """("dn" or "key", username) of the CA's certificates with this subject DN or this key (None: not asked).

    Plain SQL over the model's own table and column names: the ORM spent more time building this UNION
    than PostgreSQL spent answering it, and issuance runs it for every certificate.
    """
    quote = connection.ops.quote_name
    meta = Certificate._meta
    table = quote(meta.db_table)
    ca_col, user_col = quote(meta.get_field("ca").column), quote(meta.get_field("username").column)
    selects, params = [], []
    for kind, column, value in (("dn", "subject_dn", subject_dn), ("key", "public_key_sha256", key_hash)):
        if value is not None:
            col = quote(meta.get_field(column).column)
            # kind is one of the two constants above; the values are parameters.
            selects.append(f"SELECT '{kind}', {user_col} FROM {table} WHERE {ca_col} = %s AND {col} = %s")  # noqa: S608
            params += [ca_id, value]
    with connection.cursor() as cur:
        cur.execute(" UNION ".join(selects), params)
        return cur.fetchall()


def _listed(users: set[str]) -> str:
    names = sorted(users)
    text = " ".join(f"'{u}'" for u in names[:MAX_LISTED_USERS])
    if len(names) > MAX_LISTED_USERS:
        text += f" and {len(names) - MAX_LISTED_USERS} more"
    return text


def lock_id(ca_id: int, kind: str, value: str) -> int:
    """The signed 64-bit advisory lock key of one (CA, kind, value)."""
    digest = hashlib.sha256(f"pki.uniqueness:{ca_id}:{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock(ca_id: int, values: list[tuple[str, str]]) -> None:
    """Take the advisory locks of ``values`` until the end of the transaction (PostgreSQL only).

    Locks are taken in ascending key order in one statement, so two transactions never wait on each other
    in a cycle.
    """
    if connection.vendor != "postgresql" or not values:
        return
    keys = sorted({lock_id(ca_id, kind, value) for kind, value in values})
    select = ", ".join(["pg_advisory_xact_lock(%s)"] * len(keys))
    with connection.cursor() as cur:
        cur.execute(f"SELECT {select}", keys)  # noqa: S608 - only placeholders are interpolated
