"""Reading one page of a CRL's revoked-certificate entries straight from its DER.

The counterpart of :mod:`pki.x509.der` for reading: a CRL of a million entries is walked by its tag and
length headers alone, and only the entries of the page asked for are decoded, so a page costs a skip over
the bytes before it, not a million parsed objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asn1crypto import crl as asn1_crl

SEQUENCE, INTEGER, UTC_TIME, GENERALIZED_TIME = 0x30, 0x02, 0x17, 0x18


class CrlFormatError(ValueError):
    """The bytes are not a DER CRL this reader can walk."""


@dataclass(frozen=True)
class CrlEntry:
    """One revoked certificate as listed: serial (lower-case hex), revocation date, reason code (None: none
    given) and the invalidity date when the entry has one."""

    serial: str
    revoked_at: datetime
    reason: int | None
    invalidity_date: datetime | None = None


def _header(der: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the element at ``pos``; it must lie within ``end``."""
    if pos + 2 > end:
        raise CrlFormatError("truncated element")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise CrlFormatError("bad length")
        size = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + size > end:
        raise CrlFormatError("element longer than its container")
    return tag, pos, pos + size


def _revoked_span(der: bytes) -> tuple[int, int] | None:
    """Where the revokedCertificates SEQUENCE's content lies, or None when the CRL has no entries."""
    tag, start, end = _header(der, 0, len(der))
    if tag != SEQUENCE:
        raise CrlFormatError("not a SEQUENCE")
    tag, pos, tbs_end = _header(der, start, end)
    if tag != SEQUENCE:
        raise CrlFormatError("no tbsCertList")
    tag, _, nxt = _header(der, pos, tbs_end)
    if tag == INTEGER:  # version
        pos = nxt
    for _ in range(2):  # signature algorithm, issuer
        tag, _, pos = _header(der, pos, tbs_end)
        if tag != SEQUENCE:
            raise CrlFormatError("bad signature or issuer")
    tag, _, pos = _header(der, pos, tbs_end)  # thisUpdate
    if tag not in (UTC_TIME, GENERALIZED_TIME):
        raise CrlFormatError("bad thisUpdate")
    if pos >= tbs_end:
        return None
    tag, content, nxt = _header(der, pos, tbs_end)
    if tag in (UTC_TIME, GENERALIZED_TIME):  # nextUpdate
        if nxt >= tbs_end:
            return None
        tag, content, nxt = _header(der, nxt, tbs_end)
    return (content, nxt) if tag == SEQUENCE else None


def crl_entries(der: bytes, offset: int = 0, limit: int = 50) -> list[CrlEntry]:
    """Entries ``offset`` to ``offset + limit`` of the DER CRL ``der``, in the CRL's order."""
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    der = bytes(der)
    span = _revoked_span(der)
    if span is None:
        return []
    pos, end = span
    for _ in range(offset):
        if pos >= end:
            return []
        if pos + 1 < end and der[pos + 1] < 0x80:  # nearly every entry: short length form, skipped inline
            pos += 2 + der[pos + 1]
        else:
            _, _, pos = _header(der, pos, end)
    if pos > end:
        raise CrlFormatError("entry longer than the list")
    found: list[CrlEntry] = []
    while pos < end and len(found) < limit:
        tag, _, nxt = _header(der, pos, end)
        if tag != SEQUENCE:
            raise CrlFormatError("bad entry")
        found.append(_decode(der[pos:nxt]))
        pos = nxt
    return found


def _decode(entry_der: bytes) -> CrlEntry:
    """One revokedCertificates entry, decoded."""
    try:
        entry = asn1_crl.RevokedCertificate.load(entry_der)
        serial = format(entry["user_certificate"].native, "x")
        revoked_at = entry["revocation_date"].native
        reason = invalidity = None
        for ext in entry["crl_entry_extensions"] or ():
            name = ext["extn_id"].native
            if name == "crl_reason":
                reason = int.from_bytes(ext["extn_value"].parsed.contents, "big")
            elif name == "invalidity_date":
                invalidity = ext["extn_value"].parsed.native
    except (ValueError, TypeError, KeyError) as exc:
        raise CrlFormatError(f"bad entry: {exc}") from None
    return CrlEntry(serial, revoked_at, reason, invalidity)
