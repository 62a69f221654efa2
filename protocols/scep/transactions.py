"""SCEP transaction state (RFC 8894 section 3.3.1): replays, re-sent requests and who may poll.

A PKCSReq claims its transactionID for its request key (the CSR's public key) in the transaction that issues the
certificate, and records its senderNonce in the same statement:

* the same senderNonce again within :data:`NONCE_WINDOW` is a replay of a message already processed (the same
  bytes, however they were encoded over GET): refused with badRequest;
* the same transactionID and key with a fresh nonce is the client re-sending after a lost reply: it gets the
  certificate issued the first time ("the CA MUST respond with the same answer"), also when the copies arrive
  concurrently: the unique constraint makes the later ones wait for the first one's commit, then they read its
  answer (never read-then-write);
* the same transactionID with another key is refused.

A CertPoll (GetCertInitial) is answered only for a transaction whose request key signed the poll.

Both tables are unique-constraint tables with a time column; :func:`purge` (a Celery beat task) removes nonces
past the window and transactions past :data:`RETENTION`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.db import connection
from django.utils import timezone

from pki import db

from . import messages as m
from .models import ScepAlias, ScepNonce, ScepTransaction

#: A senderNonce seen within this time is a replay.
NONCE_WINDOW = dt.timedelta(seconds=int(getattr(settings, "PKI_SCEP_NONCE_WINDOW_SECONDS", 600)))
#: How long a transaction's answer is kept for re-sent requests and polls.
RETENTION = dt.timedelta(days=int(getattr(settings, "PKI_SCEP_TRANSACTION_DAYS", 30)))


def key_hash(public_key) -> str:
    """The request key's identity: SHA-256 (hex) of its SubjectPublicKeyInfo."""
    return hashlib.sha256(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def csr_key_hash(csr_der: bytes) -> str | None:
    """:func:`key_hash` of a PKCSReq payload's public key; None when it cannot be read (the enrollment then
    refuses it with its own failInfo)."""
    try:
        return key_hash(x509.load_der_x509_csr(csr_der).public_key())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def request_identity(message: m.PkiMessage, csr_der: bytes) -> tuple[str, str] | None:
    """(key hash, request digest) of a PKCSReq, None when its CSR cannot be read.

    The digest covers the CSR's signed part (not its signature: ECDSA signs differently each time) and, unless
    the message is signed by a self-signed certificate (which clients make anew for each attempt), the signer
    certificate: a renewal signed by an issued certificate is a new request even with the same key and CSR."""
    try:
        csr = x509.load_der_x509_csr(csr_der)
        key = key_hash(csr.public_key())
        digest = hashlib.sha256(csr.tbs_certrequest_bytes)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    signer = message.signer_certificate
    if signer is not None and signer.issuer != signer.subject:
        digest.update(signer.public_bytes(Encoding.DER))
    return key, digest.hexdigest()


def signer_key_hash(message: m.PkiMessage) -> str | None:
    """:func:`key_hash` of the key that signed ``message`` (None when its certificate's key cannot be read)."""
    try:
        return key_hash(message.signer_certificate.public_key())
    except (ValueError, TypeError, AttributeError, UnsupportedAlgorithm):
        return None


@dataclass
class Claim:
    """A transaction row as a PKCSReq found or created it (locked by the caller's transaction). ``answer_id``:
    the certificate to answer this request with (a copy of the request that got it), else None."""

    pk: int
    new: bool
    answer_id: int | None = None


def _tables() -> tuple[str, str]:
    q = connection.ops.quote_name
    return q(ScepNonce._meta.db_table), q(ScepTransaction._meta.db_table)


def _claim_sql() -> str:
    nonces, txns = _tables()
    # One statement: the nonce (a row older than the window is taken over, a younger one means a replay) and,
    # only for a fresh nonce, the transaction row.
    return (
        f"WITH n AS (INSERT INTO {nonces} (digest, created_at) VALUES (%s, %s) "  # noqa: S608 - model names
        f"ON CONFLICT (digest) DO UPDATE SET created_at = EXCLUDED.created_at WHERE {nonces}.created_at < %s "
        f"RETURNING 1), "
        f"t AS (INSERT INTO {txns} (alias_id, transaction_id, request_key, request_digest, certificate_id, "
        f"created_at) SELECT %s, %s, %s, %s, NULL, %s WHERE EXISTS (SELECT 1 FROM n) "
        f"ON CONFLICT (alias_id, transaction_id) DO NOTHING RETURNING id) "
        f"SELECT EXISTS (SELECT 1 FROM n), (SELECT id FROM t)"
    )


def _fresh_nonce(cur, digest: bytes, now: dt.datetime) -> bool:
    """The nonce statement alone: on other databases than PostgreSQL (no INSERT in WITH), and for
    :func:`spend_nonce`."""
    nonces, _ = _tables()
    cur.execute(
        f"INSERT INTO {nonces} (digest, created_at) VALUES (%s, %s) ON CONFLICT (digest) "  # noqa: S608
        f"DO UPDATE SET created_at = excluded.created_at WHERE {nonces}.created_at < %s RETURNING 1",
        [digest, now, now - NONCE_WINDOW])
    return cur.fetchone() is not None


def claim(alias: ScepAlias, transaction_id: str, sender_nonce: bytes, request_key: str, request_digest: str) -> Claim:
    """Inside the caller's (issuing) transaction: record the senderNonce and claim ``transaction_id`` for
    ``request_key``, or find (and lock) the transaction's row when it exists (see :class:`Claim`).

    Raises BadRequest for a senderNonce seen within the window and for a transaction of another key. A
    concurrent claim of the same transaction waits here until the first one's transaction ends."""
    now = timezone.now()
    digest = hashlib.sha256(sender_nonce).digest()
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            db.execute(cur, "scep_claim", _claim_sql(),
                       [digest, now, now - NONCE_WINDOW, alias.pk, transaction_id, request_key, request_digest, now])
            fresh, pk = cur.fetchone()
        else:
            fresh, pk = _fresh_nonce(cur, digest, now), None
            if fresh:
                _, txns = _tables()
                cur.execute(f"INSERT INTO {txns} (alias_id, transaction_id, request_key, request_digest, "  # noqa: S608
                            f"certificate_id, created_at) VALUES (%s, %s, %s, %s, NULL, %s) ON CONFLICT "
                            f"(alias_id, transaction_id) DO NOTHING RETURNING id",
                            [alias.pk, transaction_id, request_key, request_digest, now])
                row = cur.fetchone()
                pk = row[0] if row else None
    if not fresh:
        raise m.BadRequest("This senderNonce was used before: the message is a replay.")
    if pk is not None:
        return Claim(pk, True)
    row = locked(alias, transaction_id)
    if row is None:  # removed between the two statements (purged): nothing to answer from, try again
        raise m.BadRequest("The transaction changed meanwhile; send the request again.")
    if row.request_key != request_key:
        raise m.BadRequest("This transactionID belongs to a request for another key.")
    return Claim(row.pk, False, row.certificate_id if row.request_digest == request_digest else None)


def spend_nonce(sender_nonce: bytes) -> None:
    """Record ``sender_nonce`` as seen (a statement of its own), for a request whose refusal rolled back the
    :func:`claim` that recorded it."""
    now = timezone.now()
    with connection.cursor() as cur:
        _fresh_nonce(cur, hashlib.sha256(sender_nonce).digest(), now)


def locked(alias: ScepAlias, transaction_id: str) -> ScepTransaction | None:
    """The transaction's row, locked until the caller's transaction ends (None when there is none)."""
    return (ScepTransaction.objects.select_for_update(of=("self",)).select_related("certificate")
            .filter(alias=alias, transaction_id=transaction_id).first())


def record(transaction_pk: int, certificate: x509.Certificate, request_digest: str | None = None) -> None:
    """The transaction's answer is ``certificate`` (stored by the same transaction: found by fingerprint), for
    the request ``request_digest`` (None: the one it was claimed for)."""
    from pki.models import Certificate

    q = connection.ops.quote_name
    _, txns = _tables()
    sql = (f"UPDATE {txns} SET certificate_id = (SELECT id FROM {q(Certificate._meta.db_table)} "  # noqa: S608
           f"WHERE fingerprint_sha256 = %s), request_digest = COALESCE(%s, request_digest) WHERE id = %s")
    with connection.cursor() as cur:
        db.execute(cur, "scep_answer", sql,
                   [certificate.fingerprint(hashes.SHA256()).hex(), request_digest, transaction_pk])


def answer(found: Claim) -> x509.Certificate:
    """The certificate a copy of this request was answered with."""
    from pki.models import Certificate

    return Certificate.objects.only("der").get(pk=found.answer_id).certificate


def release(transaction_pk: int) -> None:
    """Forget a claim whose request was refused: the client may correct the cause and send it again (EJBCA: a
    failed issuance is retried with a new PKCSReq); its nonce stays used."""
    ScepTransaction.objects.filter(pk=transaction_pk).delete()


def purge(now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete nonces older than the window and transactions older than the retention; returns both counts."""
    now = now or timezone.now()
    nonces, _ = ScepNonce.objects.filter(created_at__lt=now - NONCE_WINDOW).delete()
    txns, _ = ScepTransaction.objects.filter(created_at__lt=now - RETENTION).delete()
    return nonces, txns
