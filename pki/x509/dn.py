"""Subject and issuer DNs in EJBCA's string syntax (``CN=User,O=Org,C=SE``).

The string lists the most specific RDN first, as RFC 4514 does, so the encoded RDN sequence is the
string reversed (C first). ``+`` joins the attributes of a multi-valued RDN; ``\\`` escapes a special
character; an attribute may be named by its dotted OID.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from asn1crypto import core
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .fields import BY_OID, ENC_CERTIFICATION_ID, ENC_DER_OR_UTF8, DNField, field_for


class DNError(ValueError):
    """A DN string that cannot be parsed, or an attribute that is not allowed."""


_SPECIAL = set(',+"\\<>;=')
_OID_RE = re.compile(r"^(?:OID\.)?(\d+(?:\.\d+)+)$", re.IGNORECASE)


_PLAIN_SPLIT = {",+": re.compile(r"([,+])"), "=": re.compile(r"(=)")}
_NEEDS_ESCAPE = re.compile(r'[,+"\\<>;=]|^[# ]| $')


def _split(text: str, seps: str) -> list[tuple[str, str]]:
    """Split on unescaped separators, outside quotes. Returns (part, separator that ended it)."""
    if "\\" not in text and '"' not in text:  # the usual DN: nothing escaped or quoted, split at C speed
        pieces = _PLAIN_SPLIT[seps].split(text) if seps in _PLAIN_SPLIT else None
        if pieces is not None:
            pieces.append("")
            return [(pieces[i], pieces[i + 1]) for i in range(0, len(pieces) - 1, 2)]
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
    if "\\" not in value and '"' not in value:
        return value
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


def escape_value(value: str, key: str | None = None) -> str:
    """Escape a value for a DN string. A '#'-hex DER value of an attribute that takes one stays as is."""
    if key is not None and value.startswith("#"):
        field = field_for(key)
        if field is not None and field.encoding == ENC_DER_OR_UTF8:
            return "#" + escape_value(value[1:])
    if not _NEEDS_ESCAPE.search(value):
        return value
    out = []
    for idx, ch in enumerate(value):
        if ch in _SPECIAL or (idx == 0 and ch in "# ") or (idx == len(value) - 1 and ch == " "):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


# Any of the values needs escaping: a special character anywhere, or '#' / ' ' first or ' ' last in a value
# (the values joined by NULs, which none may hold for this test to be exact).
_ANY_NEEDS_ESCAPE = re.compile(r'[,+"\\<>;=]|(?:^|\x00)[# ]| (?:\x00|$)')


def needs_escape_any(values: list[str]) -> bool:
    """Whether :func:`escape_value` would change any of ``values`` (True when unsure: a value holds a NUL)."""
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1 and values:
        return True
    return _ANY_NEEDS_ESCAPE.search(joined) is not None


def _oid_key(raw_key: str) -> str:
    """The key of an attribute written as a dotted OID (its EJBCA name when it has one)."""
    key = raw_key.strip()
    m = _OID_RE.match(key)
    if not m:
        raise DNError(f"Unknown DN attribute '{key}'")
    field = BY_OID.get(m.group(1))
    return field.key if field else m.group(1)


#: The longest DN string a certificate or an end entity holds (the database columns are this wide).
MAX_DN_LENGTH = 2048


def check_dn_text(text: str) -> None:
    """DNError when a DN string (or one of its values) cannot be stored: a NUL character (PostgreSQL text
    cannot hold it, and it truncates names in C clients) or more than :data:`MAX_DN_LENGTH` characters."""
    if "\x00" in text:
        raise DNError("A DN value contains a NUL character")
    if len(text) > MAX_DN_LENGTH:
        raise DNError(f"The DN is longer than {MAX_DN_LENGTH} characters")


def parse_dn_pairs(dn: str) -> list[list[tuple[str, str]]]:
    """Parse into RDNs in string order; each RDN is a list of (attribute key or dotted OID, value)."""
    if dn is None or not dn.strip():
        return []
    if len(dn) > MAX_DN_LENGTH:
        raise DNError(f"The DN is longer than {MAX_DN_LENGTH} characters")
    rdns: list[list[tuple[str, str]]] = []
    if "\\" not in dn and '"' not in dn and "+" not in dn:  # the usual DN: split at every comma, key at '='
        parts = dn.split(",")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            raw_key, eq, value = part.partition("=")
            if not eq:
                if part.strip():
                    raise DNError(f"Missing '=' in DN component '{part.strip()}'")
                if i == last and rdns:
                    break  # trailing comma
                raise DNError(f"Empty RDN in DN '{dn}'")
            field = field_for(raw_key)
            rdns.append([(field.key if field is not None else _oid_key(raw_key), value.strip())])
        return rdns
    current: list[tuple[str, str]] = []
    for part, sep in _split(dn, ",+"):
        if not part.strip():
            if sep == "" and not current and rdns:
                break  # trailing comma
            raise DNError(f"Empty RDN in DN '{dn}'")
        if "\\" in part or '"' in part:
            pieces = _split(part, "=")
            if len(pieces) < 2:
                raise DNError(f"Missing '=' in DN component '{part.strip()}'")
            raw_key = pieces[0][0]
            value = _unescape(part[len(raw_key) + 1 :])
        else:  # nothing escaped: the key ends at the first '='
            raw_key, eq, value = part.partition("=")
            if not eq:
                raise DNError(f"Missing '=' in DN component '{part.strip()}'")
            value = value.strip()
        field = field_for(raw_key)
        current.append((field.key if field is not None else _oid_key(raw_key), value))
        if sep != "+":
            rdns.append(current)
            current = []
    return rdns


class _RawTag:
    """Stands in for cryptography's ``_ASN1Type`` so that an attribute value is written with any tag.

    cryptography writes a name attribute as ``tag`` + the UTF-8 bytes of its value; with this tag and the
    DER contents as the value, the attribute carries a value no string type can (PostalAddress's SEQUENCE,
    CertificationID). The contents must be valid UTF-8, which holds for short ASCII/UTF-8 structures.
    cryptography cannot *read* such a name back (``cert.subject`` raises): use :func:`format_subject_of`."""

    def __init__(self, tag: int):
        self.value = tag
        self.name = f"RAW_0x{tag:02X}"


_NameAttribute = x509.NameAttribute
# The attributes whose length cryptography's NameAttribute checks itself (C, CN, jurisdiction C).
_LENGTH_LIMITED = frozenset({NameOID.COUNTRY_NAME, NameOID.COMMON_NAME, NameOID.JURISDICTION_COUNTRY_NAME})
_PRINTABLE_RE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")
_STRING_TAGS = {t.value: t for t in _ASN1Type if t not in (_ASN1Type.BitString,)}
_CERTIFICATION_ID_RE = re.compile(r"BSI-K-TR-\d{4}-\d{4}")


def raw_attribute(oid: ObjectIdentifier, der: bytes) -> x509.NameAttribute:
    """A name attribute whose value is the given DER value, written as is."""
    try:
        value = core.load(der)
    except ValueError as exc:
        raise DNError(f"Attribute {oid.dotted_string}: not one DER value ({exc})") from None
    if value.dump() != der or (der[0] & 0x1F) == 0x1F:
        raise DNError(f"Attribute {oid.dotted_string}: not one DER value with a one-byte tag")
    tag, contents = der[0], value.contents
    if tag in _STRING_TAGS:  # a plain string type: let cryptography write (and read) it normally
        codec = {_ASN1Type.BMPString.value: "utf-16-be", _ASN1Type.UniversalString.value: "utf-32-be"}.get(
            tag, "utf-8")
        try:
            return x509.NameAttribute(oid, contents.decode(codec), _STRING_TAGS[tag])
        except (UnicodeDecodeError, ValueError) as exc:
            raise DNError(f"Attribute {oid.dotted_string}: {exc}") from None
    if tag == 0x03 and oid == NameOID.X500_UNIQUE_IDENTIFIER:
        return x509.NameAttribute(oid, contents, _ASN1Type.BitString)
    try:
        text = contents.decode("utf-8")
    except UnicodeDecodeError:
        raise DNError(
            f"Attribute {oid.dotted_string}: this DER value cannot be written (its contents are not UTF-8; "
            "keep each element shorter than 128 bytes)"
        ) from None
    attr = x509.NameAttribute(oid, "")
    attr._value = text  # see _RawTag
    attr._type = _RawTag(tag)  # type: ignore[assignment]
    return attr


def certification_id_der(value: str) -> bytes:
    """BSI TR-03145-5 CertificationID: SEQUENCE { version INTEGER (1), PrintableString (SIZE(18)) } for
    ``BSI-K-TR-NNNN-YYYY``."""
    if not _CERTIFICATION_ID_RE.fullmatch(value):
        raise DNError(f"CERTIFICATIONID '{value}' is not of the form BSI-K-TR-NNNN-YYYY (18 characters)")
    return core.Sequence(contents=core.Integer(1).dump() + core.PrintableString(value).dump()).dump()


# Name attributes are immutable values and DN parts repeat across requests (O, OU, C, L, ...): building one
# (field lookup, checks, cryptography's own validation) was a fifth of an end entity validation. The caches are
# small on purpose: the per-person parts (CN, serial number, e-mail) never hit, and with thousands of entries
# every miss evicted an entry long out of the CPU caches (slower than no cache); the repeating organization
# parts stay in a small one.
@functools.lru_cache(maxsize=256)
def _attribute(name: str, value: str) -> x509.NameAttribute:
    field: DNField | None = field_for(name)
    if field is None:
        try:
            return x509.NameAttribute(ObjectIdentifier(name), value)
        except ValueError as exc:
            raise DNError(f"DN attribute {name}: {exc}") from None
    if not value:
        raise DNError(f"DN attribute {field.key} has an empty value")
    if field.encoding == ENC_CERTIFICATION_ID:
        return raw_attribute(field.oid, certification_id_der(value))
    if field.encoding == ENC_DER_OR_UTF8:
        if value.startswith("#"):
            try:
                der = bytes.fromhex(value[1:])
            except ValueError:
                raise DNError(f"DN attribute {field.key}: '#' must be followed by hex-encoded DER") from None
            if not der:
                raise DNError(f"DN attribute {field.key}: '#' must be followed by hex-encoded DER")
            return raw_attribute(field.oid, der)
        return x509.NameAttribute(field.oid, value, _ASN1Type.UTF8String)
    if field.max_length and len(value) > field.max_length:
        raise DNError(f"DN attribute {field.key} is longer than {field.max_length} characters")
    # cryptography writes whatever it is given under the string tag: a value the type cannot hold would be
    # invalid DER, so it is refused here.
    if field.asn1_type == _ASN1Type.PrintableString and not _PRINTABLE_RE.fullmatch(value):
        raise DNError(f"DN attribute {field.key} is a PrintableString: A-Z a-z 0-9 space and ' ( ) + , - . / : = ? "
                      f"only, not '{value}'")
    if field.asn1_type == _ASN1Type.IA5String and not value.isascii():
        raise DNError(f"DN attribute {field.key} is an IA5String: ASCII characters only, not '{value}'")
    if field.oid not in _LENGTH_LIMITED and field.asn1_type is not _ASN1Type.BitString:
        # What NameAttribute() would check (types, the length of C and CN) holds here: build it directly.
        attr = _NameAttribute.__new__(_NameAttribute)
        attr._oid, attr._value, attr._type = field.oid, value, field.asn1_type
        return attr
    try:
        return x509.NameAttribute(field.oid, value, field.asn1_type)
    except ValueError as exc:
        raise DNError(f"DN attribute {field.key}: {exc}") from None


@functools.lru_cache(maxsize=256)
def _rdn(pairs: tuple[tuple[str, str], ...]) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([_attribute(k, v) for k, v in pairs])


@functools.lru_cache(maxsize=256)
def _single_rdn(name: str, value: str) -> x509.RelativeDistinguishedName:
    """The RDN of one attribute (nearly every RDN): one cache level, no tuple of pairs to build and hash; what
    RelativeDistinguishedName() checks (non-empty, attribute types, no duplicates) holds for one attribute."""
    attr = _attribute.__wrapped__(name, value)
    rdn = x509.RelativeDistinguishedName.__new__(x509.RelativeDistinguishedName)
    rdn._attributes, rdn._attribute_set = [attr], frozenset((attr,))
    return rdn


def name_from_pairs(rdns: list[list[tuple[str, str]]]) -> x509.Name:
    """An ``x509.Name`` from parsed RDNs in string order (as :func:`parse_dn_pairs` returns them)."""
    try:
        parts = [_single_rdn(*rdn[0]) if len(rdn) == 1 else _rdn(tuple(rdn)) for rdn in reversed(rdns)]
        # Every part is an RDN made here: what Name() would check of them (their types) holds already.
        name = x509.Name.__new__(x509.Name)
        name._attributes = parts
        return name
    except ValueError as exc:  # e.g. the same attribute twice in one multi-valued RDN
        if isinstance(exc, DNError):
            raise
        raise DNError(f"Invalid DN: {exc}") from None


def parse_dn(dn: str) -> x509.Name:
    """Parse an EJBCA DN string into an ``x509.Name`` (encoded with the last string RDN first)."""
    # The NUL check is here and not in parse_dn_pairs: the end entity layer refuses it there first, as one of
    # its (configurable) forbidden characters, with its own message.
    if dn:
        check_dn_text(dn)
    rdns = parse_dn_pairs(dn)
    if not rdns:
        raise DNError("The DN is empty")
    return name_from_pairs(rdns)


def _attr_name(attr: x509.NameAttribute) -> str:
    field = BY_OID.get(attr.oid.dotted_string)
    return field.key if field else attr.oid.dotted_string


def _value_text(attr: x509.NameAttribute) -> str:
    """The string form of a value: text, or '#' + hex DER for a BIT STRING or a raw (:class:`_RawTag`) value;
    a CertificationID shows its 18 characters."""
    if isinstance(attr._type, _RawTag):
        der = core.load(bytes([attr._type.value]) + _length(len(attr.value.encode())) + attr.value.encode())
        field = BY_OID.get(attr.oid.dotted_string)
        if field is not None and field.encoding == ENC_CERTIFICATION_ID:
            try:
                return escape_value(str(core.Sequence.load(der.dump())[1].native))
            except (ValueError, KeyError, IndexError):
                pass
        return "#" + der.dump().hex()
    if isinstance(attr.value, bytes):  # BIT STRING: the contents hold the unused-bits byte
        return "#" + (b"\x03" + _length(len(attr.value)) + attr.value).hex()
    return escape_value(attr.value)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def format_dn(name: x509.Name) -> str:
    """An ``x509.Name`` as an EJBCA DN string (most specific RDN first)."""
    parts = []
    for rdn in reversed(list(name.rdns)):
        parts.append("+".join(f"{_attr_name(a)}={_value_text(a)}" for a in rdn))
    return ",".join(parts)


def checked_dn(name: x509.Name) -> str:
    """The DN string of a name read from a request (a CSR's subject), after the checks :func:`parse_dn` makes
    of a DN string: no NUL, each known attribute within its maximum length, the whole within
    :data:`MAX_DN_LENGTH`. DNError otherwise, so a request is refused before it reaches the database."""
    for attr in name:
        value = attr.value
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            raise DNError(f"DN attribute {_attr_name(attr)} contains a NUL character")
        field = BY_OID.get(attr.oid.dotted_string)
        if field is not None and field.max_length and len(value) > field.max_length:
            raise DNError(f"DN attribute {field.key} is longer than {field.max_length} characters")
    text = format_dn(name)
    check_dn_text(text)
    return text


def normalize_dn(dn: str) -> str:
    """Canonical string form of a DN string (attribute names upper-case, values escaped the same way)."""
    return format_dn(parse_dn(dn))


def common_name(name: x509.Name) -> str | None:
    from cryptography.x509.oid import NameOID

    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def format_der_name(der: bytes) -> str:
    """An EJBCA DN string from a DER Name, through asn1crypto: works for values cryptography cannot read
    (SEQUENCE-valued PostalAddress, CertificationID), which are shown as '#' + hex DER."""
    from asn1crypto import x509 as a509

    parts = []
    for rdn in reversed(list(a509.Name.load(der).chosen)):
        attrs = []
        for atv in rdn:
            oid = atv["type"].dotted
            field = BY_OID.get(oid)
            raw = atv["value"]
            native = None
            if raw.dump()[:1] in (b"\x0c", b"\x13", b"\x16", b"\x14", b"\x1a", b"\x1e", b"\x1c", b"\x12"):
                try:
                    native = core.load(raw.dump()).native
                except ValueError:
                    native = None
            if native is None and field is not None and field.encoding == ENC_CERTIFICATION_ID:
                try:
                    native = str(core.Sequence.load(raw.dump())[1].native)
                except (ValueError, KeyError, IndexError):
                    native = None
            text = escape_value(native) if isinstance(native, str) else "#" + raw.dump().hex()
            attrs.append(f"{field.key if field else oid}={text}")
        parts.append("+".join(attrs))
    return ",".join(parts)


def _format_name(read: Callable[[], x509.Name], name_der: Callable[[], bytes]) -> str:
    """``read()`` formatted, or, when cryptography cannot read the name back (see :class:`_RawTag`), the
    name's DER (``name_der()``, located by asn1crypto) formatted instead."""
    try:
        return format_dn(read())
    except (KeyError, ValueError):
        return format_der_name(name_der())


def _format_name_of(cert: x509.Certificate, which: str) -> str:
    def name_der() -> bytes:
        from asn1crypto import x509 as a509
        from cryptography.hazmat.primitives.serialization import Encoding

        return a509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"][which].dump()

    return _format_name(lambda: getattr(cert, which), name_der)


def format_csr_subject(csr: x509.CertificateSigningRequest) -> str:
    """The subject DN string of a CSR, also when cryptography cannot read it."""
    def name_der() -> bytes:
        from asn1crypto import csr as a_csr

        return a_csr.CertificationRequestInfo.load(csr.tbs_certrequest_bytes)["subject"].dump()

    return _format_name(lambda: csr.subject, name_der)


def format_subject_of(cert: x509.Certificate) -> str:
    """The subject DN string of a certificate, also when cryptography cannot read it (see :class:`_RawTag`)."""
    return _format_name_of(cert, "subject")


def format_issuer_of(cert: x509.Certificate) -> str:
    """The issuer DN string of a certificate, also when cryptography cannot read it (a CA with such a DN)."""
    return _format_name_of(cert, "issuer")
