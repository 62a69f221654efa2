"""Full and delta CRLs, numbered per CA from one increasing sequence.

The TBSCertList is written with :mod:`pki.x509.der` so a CA with a million revoked certificates gets its
CRL in seconds and without a million Python objects; it is signed through the CA's crypto token like any
other signature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.db import connection, transaction
from django.db.models import BigIntegerField, Max
from django.db.models.functions import Cast, Extract, Floor
from django.utils import timezone

from . import audit
from .auth.access import Actor
from .choices import CAStatus, CertificateStatus, RevocationReason
from .dbcopy import copy_insert
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


def _entries(rows, progress: ProgressCallback | None, out: bytearray | None = None,
             epoch: bool = False) -> tuple[bytearray, int]:
    """Append the revokedCertificates entries of ``rows`` (serial hex, revocation time, reason) to ``out``; the
    times are datetimes, or POSIX seconds with ``epoch``."""
    out = bytearray() if out is None else out
    count = 0
    reason_ext = _REASON_EXT
    entry = der.revoked_entry
    encode_time = der.EpochTimeEncoder() if epoch else der.TimeEncoder()
    for serial, revoked_at, reason in rows:
        out += entry(serial, encode_time(revoked_at), reason_ext.get(reason, b""))
        count += 1
        if progress and count % CHUNK == 0:
            progress(count)
    return out, count


def entry_rows(revoked) -> tuple[Iterator[tuple], bool]:
    """(serial, revocation time, reason) of the certificates of ``revoked``, streamed in chunks; the flag says
    whether the times are POSIX seconds (PostgreSQL: a bigint reads in about half the time of a timezone-aware
    datetime, and an entry wants whole seconds anyway) rather than datetimes."""
    epoch = connection.vendor == "postgresql"
    if epoch:
        revoked = revoked.annotate(revoked_epoch=Cast(Floor(Extract("revoked_at", "epoch")), BigIntegerField()))
    rows = revoked.values_list("serial", "revoked_epoch" if epoch else "revoked_at",
                               "revocation_reason").order_by().iterator(chunk_size=CHUNK)
    return rows, epoch


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
            rows, epoch = entry_rows(revoked)
            entries_der, count = _entries(rows, progress, epoch=epoch)
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
            if epoch and len(crl_der) > COPY_THRESHOLD:
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

