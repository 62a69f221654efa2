"""Storing what :mod:`pki.issuance` signed: the statements that write a certificate and its audit event.

Inside the issuing transaction, for each signed item: the role member check and the CA's uniqueness rules (under
their advisory locks, one round trip for all of a batch), the certificate row (its INSERT confirming the signing
token's state), the layer above's ``on_stored`` hook, and the HMAC-chained CERT_CREATION event, the INSERT and the
audit append in one statement where nothing runs between them. Kept apart from the pipeline so that each stays
readable: the pipeline decides and signs, this module writes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from cryptotokens.services import tokens_unchanged_sql

from . import audit
from .db import ConditionFailed, insert_rows, insert_statement, inserted
from .errors import PkiError
from .models import Certificate
from .uniqueness import Candidate, refusals_and


class TokenChanged(Exception):
    """The CA's token was deactivated or changed (by any process) after this process opened the key that signed:
    the certificate is discarded and signed again with the key read afresh (which refuses an offline token)."""



@dataclass
class Signed:
    """A signed certificate and its row, on its way to the database."""

    req: Any  # the pki.issuance.IssuanceRequest (not imported: that module imports this one)
    row: Certificate
    cert: x509.Certificate
    token: tuple[int, int] | None = None  # (token id, version) of the signing key, confirmed by the INSERT
    member_subject: x509.Name | None = None  # role member check made by store (PostgreSQL) for this subject
    refusal: PkiError | None = None
    # Group commit: the waiting caller's wake-up, whether it leads the next batch, and what storing gave.
    wake: threading.Event | None = None
    leads: bool = False
    outcome: bool | BaseException | None = None


def member_checks(items: list[Signed]) -> tuple[list[tuple[str, list]], Callable[[list[tuple]], list]]:
    """The role member check of each item (see ``pki.issuance._prepare``) as queries for
    :func:`pki.uniqueness.refusals_and` and the function that turns their rows into each item's refusal or None."""
    from .auth.clientcert import member_match_query, member_refusal

    queries = []
    for n, item in enumerate(items):
        if item.member_subject is not None and item.member_subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            sql, params = member_match_query(item.req.ca.pk, item.member_subject)
            queries.append((_tagged(sql), [n, *params]))

    def refused(rows: list[tuple]) -> list:
        roles: dict[int, list[tuple[int, str]]] = {}
        for _, n, name, role_id in rows:
            roles.setdefault(int(n), []).append((int(role_id), name))
        return [member_refusal(item.req.actor, item.req.ca, roles[n]) if n in roles else None
                for n, item in enumerate(items)]

    return queries, refused


@functools.lru_cache(maxsize=16)  # one text (so one statement name, found without a digest) per query
def _tagged(sql: str) -> str:
    """The member query ``sql`` with its rows tagged by the item's index: ('role', index, role name, role id)."""
    return f"SELECT 'role', CAST(%s AS bigint), m.name, CAST(m.id AS text) FROM ({sql}) AS m"  # noqa: S608


def store(items: list[Signed]) -> None:
    """Inside a transaction: the role member and CA uniqueness checks, the rows, the layer above's ``on_stored``
    hooks and one CERT_CREATION event per certificate, for every item not refused (``item.refusal``)."""
    also, first = member_checks(items)
    found = refusals_and(also, [Candidate(i.req.ca, i.req.username, i.row.subject_dn, i.row.public_key_sha256)
                                for i in items], first)
    accepted = []
    for item, refusal in zip(items, found, strict=True):
        item.refusal = refusal
        if refusal is None:
            accepted.append(item)
    if not accepted:
        return
    versions = {i.token for i in accepted if i.token is not None}
    condition = tokens_unchanged_sql(versions) if versions else None
    rows = [i.row for i in accepted]
    # Held instead when the caller combines its events (audit.combined), as enrollment does.
    entries = [audit.Entry("CERT_CREATION", i.req.actor.name, "certificate", i.row.serial, audit_details(i))
               for i in accepted]
    try:
        if any(i.req.hooks.on_stored for i in accepted):
            insert_rows(rows, condition=condition)
            for item in accepted:
                if item.req.hooks.on_stored:
                    item.req.hooks.on_stored(item.req, item.row)
            audit.record_many(entries)
        else:  # the INSERT and the audit append in one round trip
            inserted(rows, audit.record_many_along(insert_statement(rows, condition=condition), entries),
                     condition=condition)
    except ConditionFailed:
        raise TokenChanged() from None


def audit_details(item: Signed) -> dict[str, Any]:
    req = item.req
    return {"ca": req.ca.name, "subject": audit.REDACTED if req.redact_subject else item.row.subject_dn,
            "profile": req.profile.name, "username": req.username, **req.audit_details}
