"""Subject and issuer DNs in EJBCA's string syntax (``CN=User,O=Org,C=SE``).

The string lists the most specific RDN first, as RFC 4514 does, so the encoded RDN sequence is the
string reversed (C first). ``+`` joins the attributes of a multi-valued RDN; ``\\`` escapes a special
character; an attribute may be named by its dotted OID.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from .fields import BY_OID, DNField, field_for


class DNError(ValueError):
    """A DN string that cannot be parsed, or an attribute that is not allowed."""


_SPECIAL = set(',+"\\<>;=')
_OID_RE = re.compile(r"^(?:OID\.)?(\d+(?:\.\d+)+)$", re.IGNORECASE)


def _split(text: str, seps: str) -> list[tuple[str, str]]:
    """Split on unescaped separators, outside quotes. Returns (part, separator that ended it)."""
    parts: list[tuple[str, str]] = []
    buf: list[str] = []
    i, quoted = 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch in seps and not quoted:
            parts.append(("".join(buf), ch))
            buf = []
            i += 1
            continue
        buf.append(ch)
        i += 1
    if quoted:
        raise DNError("Unbalanced quotes in DN")
    parts.append(("".join(buf), ""))
    return parts


def _unescape(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        value = value[1:-1]
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            if re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3] or ""):
                # \XX hex pair (RFC 4514); collect consecutive pairs as UTF-8 bytes
                raw = bytearray()
                while i + 2 < len(value) + 1 and value[i] == "\\" and re.fullmatch(
                    r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3] or ""
                ):
                    raw.append(int(value[i + 1 : i + 3], 16))
                    i += 3
                out.append(raw.decode("utf-8", errors="replace"))
                continue
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def escape_value(value: str) -> str:
    """Escape a value for a DN string."""
    out = []
    for idx, ch in enumerate(value):
        if ch in _SPECIAL or (idx == 0 and ch in "# ") or (idx == len(value) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def parse_dn_pairs(dn: str) -> list[list[tuple[str, str]]]:
    """Parse into RDNs in string order; each RDN is a list of (attribute key or dotted OID, value)."""
    if dn is None or not dn.strip():
        return []
    rdns: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for part, sep in _split(dn, ",+"):
        if not part.strip():
            if sep == "" and not current and rdns:
                break  # trailing comma
            raise DNError(f"Empty RDN in DN '{dn}'")
        pieces = _split(part, "=")
        if len(pieces) < 2:
            raise DNError(f"Missing '=' in DN component '{part.strip()}'")
        key = pieces[0][0].strip()
        value = _unescape(part[len(pieces[0][0]) + 1 :])
        m = _OID_RE.match(key)
        if m:
            field = BY_OID.get(m.group(1))
            name = field.key if field else m.group(1)
        else:
            field = field_for(key)
            if field is None:
                raise DNError(f"Unknown DN attribute '{key}'")
            name = field.key
        current.append((name, value))
        if sep != "+":
            rdns.append(current)
            current = []
    return rdns


def _attribute(name: str, value: str) -> x509.NameAttribute:
    field: DNField | None = field_for(name)
    if field is None:
        return x509.NameAttribute(ObjectIdentifier(name), value)
    if field.max_length and len(value) > field.max_length:
        raise DNError(f"DN attribute {field.key} is longer than {field.max_length} characters")
    if not value:
        raise DNError(f"DN attribute {field.key} has an empty value")
    try:
        return x509.NameAttribute(field.oid, value, field.asn1_type)
    except ValueError as exc:
        raise DNError(f"DN attribute {field.key}: {exc}") from None


def parse_dn(dn: str) -> x509.Name:
    """Parse an EJBCA DN string into an ``x509.Name`` (encoded with the last string RDN first)."""
    rdns = parse_dn_pairs(dn)
    if not rdns:
        raise DNError("The DN is empty")
    return x509.Name([x509.RelativeDistinguishedName([_attribute(k, v) for k, v in rdn]) for rdn in reversed(rdns)])


def _attr_name(attr: x509.NameAttribute) -> str:
    field = BY_OID.get(attr.oid.dotted_string)
    return field.key if field else attr.oid.dotted_string


def format_dn(name: x509.Name) -> str:
    """An ``x509.Name`` as an EJBCA DN string (most specific RDN first)."""
    parts = []
    for rdn in reversed(list(name.rdns)):
        parts.append(
            "+".join(f"{_attr_name(a)}={escape_value(a.value if isinstance(a.value, str) else a.value.hex())}"
                     for a in rdn)
        )
    return ",".join(parts)


def normalize_dn(dn: str) -> str:
    """Canonical string form of a DN string (attribute names upper-case, values escaped the same way)."""
    return format_dn(parse_dn(dn))


def common_name(name: x509.Name) -> str | None:
    from cryptography.x509.oid import NameOID

    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None
