"""The few DER rules OCSP messages need, read and written directly (pure: bytes in, bytes out).

The responder reads one small, fixed structure per request and writes one per answer. asn1crypto's
general-purpose object tree cost several times the signature for each (about 0.9 ms to read a one-certificate
request), so protocols.ocsp.messages walks the bytes with :func:`elements` and writes with :func:`tlv`
(pki.x509.der's).
Reading is strict: definite lengths only, in their shortest form, every element inside its parent, nothing
after the last one; anything else raises :class:`DerError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from pki.x509.der import length, tlv  # the writing half, shared with the CRL and SCEP encoders

__all__ = ["DerError", "children", "content", "elements", "generalized_time", "length", "only", "tlv"]

SEQUENCE = 0x30
OCTET_STRING = 0x04
INTEGER = 0x02
BOOLEAN = 0x01
OID = 0x06
BIT_STRING = 0x03
ENUMERATED = 0x0A
GENERALIZED_TIME = 0x18


class DerError(ValueError):
    """Bytes that are not the DER this reader expects."""


def elements(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """The elements one after another in ``data[start:end]``, each as (tag, content start, content end)."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 2:
            raise DerError("truncated element")
        tag = data[pos]
        if tag & 0x1F == 0x1F:
            raise DerError("high tag numbers do not occur in OCSP requests")
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            size = first & 0x7F
            if size == 0:
                raise DerError("indefinite length")
            if size > 4 or pos + size > end:
                raise DerError("bad length")
            length = int.from_bytes(data[pos:pos + size], "big")
            if length < 0x80 or data[pos] == 0:
                raise DerError("length not in its shortest form")
            pos += size
        if pos + length > end:
            raise DerError("element longer than its parent")
        yield tag, pos, pos + length
        pos += length


def children(data: bytes, parent: tuple[int, int, int], tag: int) -> list[tuple[int, int, int]]:
    """The elements inside ``parent``, which must carry ``tag``."""
    if parent[0] != tag:
        raise DerError(f"expected tag {tag:#04x}, found {parent[0]:#04x}")
    return list(elements(data, parent[1], parent[2]))


def only(data: bytes, start: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """The one element in ``data[start:end]``."""
    found = list(elements(data, start, end))
    if len(found) != 1:
        raise DerError("expected exactly one element")
    return found[0]


def content(data: bytes, element: tuple[int, int, int], tag: int) -> bytes:
    """The content bytes of ``element``, which must carry ``tag``."""
    if element[0] != tag:
        raise DerError(f"expected tag {tag:#04x}, found {element[0]:#04x}")
    return data[element[1]:element[2]]


def generalized_time(value: datetime) -> bytes:
    """GeneralizedTime in UTC, whole seconds (``YYYYMMDDHHMMSSZ``), as RFC 5280 profiles it."""
    if value.tzinfo is None:
        raise ValueError("a time without a time zone")
    return b"\x18\x0f" + value.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode()
