"""Full and delta CRLs, numbered per CA from one increasing sequence.

The TBSCertList is written with :mod:`pki.x509.der` so a CA with a million revoked certificates gets its
CRL in seconds and without a million Python objects; it is signed through the CA's crypto token like any
other signature.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from . import audit
from .auth.access import Actor
from .choices import CAStatus, CertificateStatus, RevocationReason
from .dbcopy import copy_insert, prefer_fast_compression
from .errors import CAOfflineError, ValidationError
from .issuance import _signing_key
from .models import CRL, Certificate, CertificateAuthority
from .x509 import der
from .x509.algorithms import signature_algorithm

logger = logging.getLogger("pki.crl")

OID_CRL_NUMBER = "2.5.29.20"
OID_DELTA_CRL_INDICATOR = "2.5.29.27"
OID_AUTHORITY_KEY_ID = "2.5.29.35"
OID_REASON_CODE = "2.5.29.21"
OID_FRESHEST_CRL = "2.5.29.46"

# crlEntryExtensions for each reason code, built once (unspecified gets none, as RFC 5280 recommends).
_REASON_EXT = {
    int(r): der.sequence(der.extension(OID_REASON_CODE, der.tlv(0x0A, bytes([int(r)]))))
    for r in RevocationReason if r != RevocationReason.UNSPECIFIED
}
CHUNK = 20_000
COPY_THRESHOLD = 1 << 20  # bytes of CRL from which it is stored with binary COPY (PostgreSQL)

ProgressCallback = Callable[[int], None]


def _issuer_key_id(ca_cert: x509.Certificate) -> bytes:
    try:
        return ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key()).digest


def _entries(rows, progress: ProgressCallback | None, out: bytearray | None = None) -> tuple[bytearray, int]:
    """Append the revokedCertificates entries of ``rows`` (serial hex, revocation datetime, reason) to ``out``
    (SQLite, and the few removeFromCRL entries of a delta CRL; PostgreSQL streams with :func:`_copy_entries`)."""
    out = bytearray() if out is None else out
    count = 0
    reason_ext = _REASON_EXT
    entry = der.revoked_entry
    encode_time = der.TimeEncoder()
    for serial, revoked_at, reason in rows:
        out += entry(serial, encode_time(revoked_at), reason_ext.get(reason, b""))
        count += 1
        if progress and count % CHUNK == 0:
            progress(count)
    return out, count


# What PostgreSQL sends per revoked certificate, as text COPY: the serial as stored (hex), the hour since the epoch
# and the second within that hour, and the reason code. Only cheap float and integer arithmetic on the server
# (date_part, not extract, whose numeric result cost the server more than the scan); the time's bytes come from
# two tables here and the reason's extension from a third. floor() keeps times before 1970 right.
_ENTRY_SQL = """
SELECT serial, floor(date_part('epoch', revoked_at) / 3600)::bigint,
       floor(date_part('epoch', revoked_at))::bigint - floor(date_part('epoch', revoked_at) / 3600)::bigint * 3600,
       revocation_reason
FROM ({revoked}) AS revoked (serial, revoked_at, revocation_reason)
"""
# SEQUENCE and INTEGER headers by (serial bytes << 6 | bytes after the serial): every length is below 128 (the
# serial column holds at most 64 hex digits) and takes the short form.
_ENTRY_HEADERS = [bytes((0x30, (i >> 6) + (i & 63) + 2, 0x02, i >> 6)) for i in range(48 << 6)]


class _HourHeads(dict):
    """Hour since the epoch (its digits, as COPY sends them) -> the time's tag, length and digits up to the hour."""

    def __missing__(self, hour: bytes) -> bytes:
        head = self[hour] = der.time(datetime.fromtimestamp(int(hour) * 3600, UTC))[:-5]
        return head


class _ReasonExtensions(dict):
    """Reason code as COPY sends it (digits and the line's end) -> crlEntryExtensions; none for other codes."""

    def __init__(self) -> None:
        super().__init__({b"%d\n" % code: _REASON_EXT.get(int(code), b"") for code in RevocationReason})

    def __missing__(self, code: bytes) -> bytes:
        return b""


_SECOND_OF_HOUR = {str(i).encode(): tail for i, tail in enumerate(der.MINUTE_SECOND)}


def entry_copy_sql(revoked, raw_cursor) -> str:
    """The COPY statement that sends :func:`copy_entries` its rows for the certificates of ``revoked`` (COPY takes
    no parameters: the queryset's values are quoted into the text by psycopg2's ``mogrify``)."""
    inner, params = revoked.values_list("serial", "revoked_at", "revocation_reason").order_by().query.sql_with_params()
    return f"COPY ({_ENTRY_SQL.format(revoked=raw_cursor.mogrify(inner, params).decode())}) TO STDOUT"


def copy_entries(revoked, progress: ProgressCallback | None = None) -> tuple[bytearray, int]:
    """PostgreSQL: the revokedCertificates entries of ``revoked``, encoded while the rows stream in (one COPY):
    the server's scan and this process's encoding run at the same time, and no row becomes a Python tuple."""
    out = bytearray()
    count = 0
    heads, seconds, reasons = _HourHeads(), _SECOND_OF_HOUR, _ReasonExtensions()
    headers, unhex = _ENTRY_HEADERS, binascii.unhexlify

    def write(line: bytes) -> None:  # one row: the hot loop of a million-entry CRL, kept to a few C calls
        nonlocal out, count
        serial, hour, second, reason = line.split(b"\t")
        number = unhex(serial) if not len(serial) & 1 else unhex(b"0" + serial)
        if number[0] & 0x80:
            number = b"\x00" + number
        rest = heads[hour] + seconds[second] + reasons[reason]
        out += headers[len(number) << 6 | len(rest)]
        out += number
        out += rest
        count += 1
        if progress and count % CHUNK == 0:
            progress(count)

    sink = type("_Sink", (), {"write": staticmethod(write)})()
    with connection.cursor() as cur:
        cur.cursor.copy_expert(entry_copy_sql(revoked, cur.cursor), sink)
    return out, count


def build_crl_der(ca: CertificateAuthority, number: int, this_update, next_update, entries_der: bytes | bytearray,
                  base_crl_number: int | None = None) -> bytes:
    """Sign a CRL for ``ca`` over pre-encoded revokedCertificates entries."""
    ca_cert = ca.certificate
    if ca_cert is None:
        raise CAOfflineError(f"CA '{ca.name}' has no certificate.")
    sig_alg = signature_algorithm(ca.signature_algorithm)
    alg_id = sig_alg.algorithm_identifier().dump()
    exts = der.extension(OID_AUTHORITY_KEY_ID, der.sequence(der.tlv(0x80, _issuer_key_id(ca_cert))))
    exts += der.extension(OID_CRL_NUMBER, der.integer(number))
    if base_crl_number is not None:
        exts += der.extension(OID_DELTA_CRL_INDICATOR, der.integer(base_crl_number), critical=True)
    elif ca.delta_crl_period and ca.crl_distribution_point:
        # Tell relying parties where the delta CRLs are (RFC 5280 5.2.6).
        url = ca.crl_distribution_point + ("&" if "?" in ca.crl_distribution_point else "?") + "delta=true"
        dp = der.sequence(der.sequence(
            der.tlv(0xA0, der.tlv(0xA0, der.tlv(0x86, url.encode())))
        ))
        exts += der.extension(OID_FRESHEST_CRL, dp)
    # The entries can be tens of megabytes: they are copied once into the TBSCertList and once into the
    # CRL, never through intermediate concatenations.
    head = (der.integer(1) + alg_id + ca_cert.subject.public_bytes()
            + der.time(this_update) + der.time(next_update))
    revoked_header = der.header(0x30, len(entries_der)) if entries_der else b""
    tail = der.tlv(0xA0, der.sequence(exts))
    tbs_size = len(head) + len(revoked_header) + len(entries_der) + len(tail)
    tbs = b"".join((der.header(0x30, tbs_size), head, revoked_header, entries_der, tail))
    key = _signing_key(ca, ca.key_alias)
    try:
        signature = sig_alg.sign(key, tbs)
    except Exception as exc:
        logger.exception("CRL signing failed for CA %s", ca.name)
        raise CAOfflineError(f"CA '{ca.name}' could not sign its CRL: {exc.__class__.__name__}") from None
    signature_part = alg_id + der.bit_string(signature)
    return b"".join((der.header(0x30, len(tbs) + len(signature_part)), tbs, signature_part))


def latest_crl(ca: CertificateAuthority, delta: bool = False) -> CRL | None:
    return CRL.objects.filter(ca=ca, is_delta=delta).order_by("-crl_number").first()


def create_crl(actor: Actor, ca: CertificateAuthority, delta: bool = False,
               progress: ProgressCallback | None = None) -> CRL:
    """Build, sign and store the next CRL (full, or delta against the latest full CRL)."""
    actor.require(f"/ca/{ca.pk}")
    actor.require("/ca_functionality/create_crl")
    if ca.status == CAStatus.EXTERNAL:
        raise CAOfflineError(f"CA '{ca.name}' is external: it has no key to sign CRLs here.")
    started = timezone.now()
    try:
        with transaction.atomic():
            # The CA row lock serializes CRL numbering between processes.
            locked = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
            number = (CRL.objects.filter(ca=locked).aggregate(m=Max("crl_number"))["m"] or 0) + 1
            this_update = timezone.now().replace(microsecond=0)
            base = None
            if delta:
                base = latest_crl(locked, delta=False)
                if base is None:
                    # A request the CA cannot serve in its present state (400), not a missing resource.
                    raise ValidationError(f"CA '{locked.name}' has no full CRL yet to base a delta CRL on.",
                                          field="delta")
                period = locked.delta_crl_period or locked.crl_period
            else:
                period = locked.crl_period
            next_update = this_update + period
            revoked = Certificate.objects.filter(ca=locked).exclude(status=CertificateStatus.ACTIVE)
            # Expired certificates leave the CRL (RFC 5280 3.3): they are invalid anyway.
            revoked = revoked.filter(not_after__gt=this_update)
            if base is not None:
                # What was recorded since the base (a minute's slack for the base's truncated thisUpdate), not
                # what states a date since then: a revocation backdated before the base belongs here too.
                since = base.this_update - timedelta(minutes=1)
                revoked = revoked.filter(revocation_recorded_at__gte=since)
            if connection.vendor == "postgresql":
                entries_der, count = copy_entries(revoked, progress)
            else:
                entries_der, count = _entries(revoked.values_list(
                    "serial", "revoked_at", "revocation_reason").order_by().iterator(chunk_size=CHUNK), progress)
            if base is not None:
                # Taken off hold since the base: listed once with removeFromCRL.
                off_hold = Certificate.objects.filter(
                    ca=locked, status=CertificateStatus.ACTIVE, unrevoked_at__gte=since
                ).values_list("serial", "unrevoked_at")
                _, n = _entries(((s, at, int(RevocationReason.REMOVE_FROM_CRL)) for s, at in off_hold), None,
                                entries_der)
                count += n
            crl_der = build_crl_der(locked, number, this_update, next_update, entries_der,
                                    base.crl_number if base else None)
            del entries_der  # before the store, which needs a hex-escaped copy of the CRL twice its size
            crl = CRL(
                ca=locked, crl_number=number, is_delta=delta, base_crl_number=base.crl_number if base else None,
                this_update=this_update, next_update=next_update, entries=count, der=crl_der,
                created_at=timezone.now(),
            )
            if connection.vendor == "postgresql":
                prefer_fast_compression()
            if connection.vendor == "postgresql" and len(crl_der) > COPY_THRESHOLD:
                # A big CRL goes in as bytes (binary COPY) instead of hex text the server parses back.
                copy_insert(crl)
                crl.pk = CRL.objects.filter(ca=locked, crl_number=number).values_list("pk", flat=True).get()
            else:
                crl.save(force_insert=True)
            audit.record("CRL_CREATION", actor.name, object_type="ca", object_id=ca.pk,
                         details={"crl_number": number, "delta": delta, "entries": count,
                                  "seconds": round((timezone.now() - started).total_seconds(), 3)},
                         in_transaction=True)
    except (CAOfflineError, ValidationError) as exc:
        audit.record_failure("CRL_CREATION", actor.name, exc.message, object_type="ca", object_id=ca.pk)
        raise
    logger.info("CRL #%s (%s) for %s: %s entries", number, "delta" if delta else "full", ca.name, count)
    return crl


def crl_pem(crl: CRL) -> bytes:
    return x509.load_der_x509_crl(bytes(crl.der)).public_bytes(serialization.Encoding.PEM)


def due_crls(now=None) -> list[tuple[CertificateAuthority, bool]]:
    """The (CA, delta) pairs whose latest CRL is within its overlap of expiring, or missing."""
    now = now or timezone.now()
    due: list[tuple[CertificateAuthority, bool]] = []
    for ca in CertificateAuthority.objects.filter(status=CAStatus.ACTIVE).exclude(crypto_token=None):
        full = latest_crl(ca)
        if full is None or full.next_update - ca.crl_overlap <= now:
            due.append((ca, False))
            continue
        if ca.delta_crl_period:
            last_delta = CRL.objects.filter(ca=ca, is_delta=True, crl_number__gt=full.crl_number).order_by(
                "-crl_number").first()
            if last_delta is None or last_delta.next_update - min(ca.crl_overlap, ca.delta_crl_period / 2) <= now:
                due.append((ca, True))
    return due

