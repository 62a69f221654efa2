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

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import connection, transaction

from . import db
from .errors import PkiError, ValidationError
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


class Candidate(NamedTuple):
    """A certificate about to be stored: whose it is, its subject DN and its key's SHA-256 (hex)."""

    ca: CertificateAuthority
    username: str
    subject_dn: str
    public_key_hash: str


def check_unique(ca: CertificateAuthority, username: str, subject_dn: str, public_key_hash: str) -> None:
    """Refuse a certificate that would break the CA's uniqueness settings (a :class:`ValidationError` on
    ``public_key`` or ``subject_dn``). Call inside the transaction that inserts the certificate row.

    Does nothing, and queries nothing, when the CA enforces none of the rules.
    """
    refusal = refusals([Candidate(ca, username, subject_dn, public_key_hash)])[0]
    if refusal is not None:
        raise refusal


def refusals(candidates: list[Candidate]) -> list[ValidationError | None]:
    """For each candidate, in order, the :class:`ValidationError` that refuses it, or None. Candidates are
    checked against the stored certificates and against the earlier accepted candidates of the same call
    (which the caller stores in the same transaction): one lock statement and one query for all of them.
    Call inside the transaction that inserts the rows."""
    return refusals_and([], candidates)  # without ``first``: ValidationErrors only


def refusals_and(also: list[tuple[str, list]], candidates: list[Candidate],
                 first: Callable[[list[tuple]], list[PkiError | None]] | None = None) -> list[PkiError | None]:
    """:func:`refusals`, with the caller's own reads and refusals: ``also`` are queries ((sql, params) each: four
    columns, the first a text other than 'dn' and 'key') answered in the same round trip (PostgreSQL; one by one
    elsewhere) after the locks are held, and ``first(their rows)`` gives a refusal or None per candidate, decided
    before these rules (a candidate it refuses is not stored, so it holds nothing for the later ones)."""
    plans = []
    locks: list[tuple[int, str, str]] = []
    for c in candidates:
        check_key = c.ca.enforce_unique_public_keys and bool(c.public_key_hash)
        # A certificate without a subject (alt names only) has no DN to be unique about.
        check_dn = c.ca.enforce_unique_dn and bool(c.subject_dn)
        serials = dn_serial_numbers(c.subject_dn) if c.ca.enforce_unique_dn_serial_number and c.subject_dn else []
        plans.append((check_key, check_dn, serials))
        locks += ([(c.ca.pk, "key", c.public_key_hash)] if check_key else []) \
            + ([(c.ca.pk, "dn", c.subject_dn)] if check_dn else []) + [(c.ca.pk, "sn", s) for s in serials]
    results: list[PkiError | None] = [None] * len(candidates)
    if not locks and not also:
        return results
    # One query for the DN and key rules of every candidate, sent with the lock statement in one round trip. The
    # lock has to be a statement of its own: a READ COMMITTED statement sees the rows committed before it
    # started, not before a lock it waited for; the query after it starts once the locks are held.
    holders: dict[tuple[int, str, str], set[str]] = {}
    conn = transaction.get_connection()  # once: each use of the module's proxy is a thread-local look-up
    postgresql = conn.vendor == "postgresql"
    dns = [(c.ca.pk, c.subject_dn) for c, (_, check_dn, _) in zip(candidates, plans, strict=True) if check_dn]
    keys = [(c.ca.pk, c.public_key_hash) for c, (check_key, _, _) in zip(candidates, plans, strict=True)
            if check_key]
    statements = _lock_statements(locks) if postgresql else []  # SQLite: one writer at a time, no locks
    query = _holders_statement(dns, keys) if dns or keys else None
    if also and postgresql:
        sql = _union_all((query[1],) if query else (), tuple(q for q, _ in also))
        params = [v for _, p in also for v in p]
        query = (f"{query[0]}_and", sql, [*query[2], *params]) if query else ("unique_also", sql, params)
    if query is not None:
        statements.append(query)
    rows: list[tuple] = []
    with conn.cursor() as cur:
        db.execute_in_one(cur, statements)
        if query is not None:
            rows = cur.fetchall()
        if also and not postgresql:
            for sql, params in also:
                cur.execute(sql, params)
                rows += cur.fetchall()
    extra = []
    for row in rows:
        kind, ca_id, value, user = row
        if kind in ("dn", "key"):
            holders.setdefault((ca_id, kind, value), set()).add(user)
        else:
            extra.append(row)
    before = first(extra) if first is not None else [None] * len(candidates)
    for i, (c, (check_key, check_dn, serials)) in enumerate(zip(candidates, plans, strict=True)):
        refusal = before[i] or _refusal(c, check_key, check_dn, serials, holders)
        results[i] = refusal
        if refusal is None:  # stored with the others: later candidates must see it
            if check_dn:
                holders.setdefault((c.ca.pk, "dn", c.subject_dn), set()).add(c.username)
            if check_key:
                holders.setdefault((c.ca.pk, "key", c.public_key_hash), set()).add(c.username)
            for serial in serials:
                holders.setdefault((c.ca.pk, "sn", serial), set()).add(c.username)
    return results


def _refusal(c: Candidate, check_key: bool, check_dn: bool, serials: list[str],
             holders: dict[tuple[int, str, str], set[str]]) -> ValidationError | None:
    """Why ``c`` is refused, or None. ``holders``: (CA id, kind, value) -> usernames, from the stored
    certificates (DN and key) and the earlier accepted candidates (all three kinds)."""
    ca, username = c.ca, c.username
    dn_holders = holders.get((ca.pk, "dn", c.subject_dn), set()) if check_dn else set()
    key_holders = holders.get((ca.pk, "key", c.public_key_hash), set()) if check_key else set()
    if dn_holders and username not in dn_holders:
        logger.info("CA %s: subject DN %r refused for user %r, held by %s", ca.name, c.subject_dn, username,
                    _listed(dn_holders))
        return ValidationError(
            f"User '{username}' is not allowed to use same subject DN as the user(s) {_listed(dn_holders)} "
            f"is/are using while issued by the same CA. See the setting 'Enforce unique DN' of CA "
            f"'{ca.name}'.", field="subject_dn")
    if key_holders and username not in key_holders:
        # EJBCA names the other users in the log only: who holds a key is not the requester's business.
        logger.info("CA %s: public key %s refused for user %r, held by %s", ca.name, c.public_key_hash,
                    username, _listed(key_holders))
        return ValidationError(
            f"User '{username}' is not allowed to use same key as another user is using.", field="public_key")
    for serial in serials:
        # The LIKE (on the value as stored, escaped) narrows the rows; the parse makes "SN=12" not match
        # "SN=123". Off by default, so the scan it may cost is paid only by CAs that ask for the rule.
        candidates = Certificate.objects.filter(ca_id=ca.pk, subject_dn__contains=f"SN={escape_value(serial, 'SN')}")
        serial_holders = {user for user, dn in candidates.order_by().values_list("username", "subject_dn").distinct()
                          if serial in dn_serial_numbers(dn)}
        serial_holders |= holders.get((ca.pk, "sn", serial), set())
        if serial_holders and username not in serial_holders:
            logger.info("CA %s: DN serialNumber %r refused for user %r, held by %s", ca.name, serial, username,
                        _listed(serial_holders))
            return ValidationError(
                f"Subject DN serialNumber '{serial}' is already used by another user of CA '{ca.name}'. See the "
                f"setting 'Enforce unique Subject DN SerialNumber' of the CA.", field="subject_dn")
    return None


def _holders_statement(dns: list[tuple[int, str]], keys: list[tuple[int, str]]) -> tuple[str, str, list]:
    """The query (for :func:`pki.db.execute_in_one`) whose rows are ("dn" or "key", CA id, value, username) of the
    certificates with one of these subject DNs or key hashes, of any CA: the caller keys the rows by (CA id, kind,
    value), so another CA's rows are never counted.

    The CA is not in the WHERE clause on purpose: with it, PostgreSQL's plan for the prepared statement (made
    before the table has statistics, then kept) ANDed the DN index with an index on ``ca_id`` and so read an index
    entry for every certificate of the CA on every issuance (0.6-1.3 ms of the server's CPU per certificate at a
    few thousand certificates, growing with the CA). A DN or key held under other CAs costs a few rows at most.

    Plain SQL over the model's own table and column names: the ORM spent more time building this UNION
    than PostgreSQL spent answering it, and issuance runs it for every certificate.
    """
    dn_values, key_values = sorted({value for _, value in dns}), sorted({value for _, value in keys})
    return "unique_holders", _holders_sql(len(dn_values), len(key_values)), [*dn_values, *key_values]


@functools.lru_cache(maxsize=64)
def _holders_sql(dn_count: int, key_count: int) -> str:
    """The text of :func:`_holders_statement` for so many DNs and keys (built once per shape, not per call)."""
    quote = connection.ops.quote_name
    meta = Certificate._meta
    table = quote(meta.db_table)
    ca_col, user_col = quote(meta.get_field("ca").column), quote(meta.get_field("username").column)
    selects = []
    for kind, column, count in (("dn", "subject_dn", dn_count), ("key", "public_key_sha256", key_count)):
        if count:
            col = quote(meta.get_field(column).column)
            # kind is one of the two constants above; the values are parameters.
            selects.append(f"SELECT '{kind}', {ca_col}, {col}, {user_col} FROM {table} "  # noqa: S608
                           f"WHERE {col} IN ({', '.join(['%s'] * count)})")
    return " UNION ".join(selects)


@functools.lru_cache(maxsize=256)  # the same texts for every certificate: one text object, its digest cached
def _union_all(holders: tuple[str, ...], also: tuple[str, ...]) -> str:
    """The holders query (if any) and the caller's queries as one UNION ALL."""
    return " UNION ALL ".join(f"({q})" for q in (*holders, *also))


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


def _lock_statements(values: list[tuple[int, str, str]]) -> list[tuple[str, str, list]]:
    """The statement (for :func:`pki.db.execute_in_one`; PostgreSQL only) that takes the advisory locks of
    ``values`` ((CA id, kind, value) each) until the end of the transaction.

    Locks are taken in ascending key order in one statement, so two transactions never wait on each other
    in a cycle.
    """
    if not values:
        return []
    keys = sorted({lock_id(ca_id, kind, value) for ca_id, kind, value in values})
    select = ", ".join(["pg_advisory_xact_lock(%s)"] * len(keys))
    return [("unique_lock", f"SELECT {select}", keys)]  # noqa: S608 - only placeholders are interpolated
