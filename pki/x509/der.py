"""Minimal DER writing for what must be fast at scale: the revoked-certificate entries of big CRLs.

asn1crypto and cryptography build one Python object per entry; for a million entries that costs
seconds and gigabytes. These helpers write the bytes directly; the result is parsed back by
``cryptography`` and ``openssl crl`` in the tests.
"""

from __future__ import annotations

import functools
from datetime import datetime


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:  # the short length form, nearly always: one bytes() for tag and length
        return bytes((tag, n)) + content
    return bytes([tag]) + length(n) + content


def sequence(content: bytes) -> bytes:
    return tlv(0x30, content)


def header(tag: int, content_length: int) -> bytes:
    """Tag and length alone, for content written separately (no copy of a large content)."""
    return bytes([tag]) + length(content_length)


def integer(value: int) -> bytes:
    if value == 0:
        return b"\x02\x01\x00"
    if value < 0:
        raise ValueError("negative integers are not needed here")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # leading zero when the top bit is set
    return tlv(0x02, body)


def integer_from_hex(serial_hex: str) -> bytes:
    """INTEGER for a positive hex serial without converting through int (the hot path of CRLs)."""
    if len(serial_hex) % 2:
        serial_hex = "0" + serial_hex
    body = bytes.fromhex(serial_hex)
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + length(len(body)) + body


def time(dt: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)."""
    if dt.year < 2050:
        return b"\x17\x0d" + dt.strftime("%y%m%d%H%M%SZ").encode()
    return b"\x18\x0f" + dt.strftime("%Y%m%d%H%M%SZ").encode()


MINUTE_SECOND = tuple(f"{m:02d}{s:02d}Z".encode() for m in range(60) for s in range(60))


class TimeEncoder:
    """:func:`time` for many values: the part up to the hour is formatted once per distinct hour and the
    minutes and seconds come from a table (strftime was most of the cost of a million-entry CRL)."""

    def __init__(self) -> None:
        self._up_to_hour: dict[int, bytes] = {}

    def __call__(self, dt: datetime) -> bytes:
        key = dt.toordinal() * 24 + dt.hour
        head = self._up_to_hour.get(key)
        if head is None:
            head = self._up_to_hour[key] = time(dt)[:-5]  # tag, length, date and hour (without "MMSSZ")
        return head + MINUTE_SECOND[dt.minute * 60 + dt.second]


def revoked_entry(serial_hex: str, revocation_time: bytes, extensions: bytes) -> bytes:
    """One revokedCertificates entry: SEQUENCE { INTEGER serial, Time, [crlEntryExtensions] }, with the
    time already encoded (:class:`TimeEncoder`) and the extensions already wrapped in their SEQUENCE."""
    if len(serial_hex) % 2:
        serial_hex = "0" + serial_hex
    number = bytes.fromhex(serial_hex)
    if number[0] & 0x80:
        number = b"\x00" + number
    size = len(number) + 2 + len(revocation_time) + len(extensions)
    if size < 0x80:  # always, for serials up to 100 bytes: the short length form, built in one call
        return b"\x30%c\x02%c%b%b%b" % (size, len(number), number, revocation_time, extensions)
    return sequence(tlv(0x02, number) + revocation_time + extensions)


@functools.lru_cache(maxsize=1024)  # a pure function of a small domain (the OIDs of profiles and requests)
def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def extension(oid_dotted: str, value_der: bytes, critical: bool = False) -> bytes:
    return sequence(oid(oid_dotted) + (b"\x01\x01\xff" if critical else b"") + tlv(0x04, value_der))


def bit_string(data: bytes) -> bytes:
    return tlv(0x03, b"\x00" + data)
