"""Subject alternative names in EJBCA's string syntax:
``DNSNAME=host.example.com, RFC822NAME=a@example.com, IPADDRESS=10.0.0.1, URI=https://x, UPN=a@corp``.

Every type of ``pki.x509.fields.ALT_NAME_FIELDS`` is understood: the GeneralName choices and the
OtherNames of ``pki.x509.othernames`` (GUID, KRB5PRINCIPAL, PERMANENTIDENTIFIER, SUBJECTIDENTIFICATIONMETHOD,
FASCN, XMPPADDR, SRVNAME). A comma inside a value is written ``\\,``; a directoryName value may also
keep its DN's commas unescaped (what follows that is not an alt-name key belongs to the DN).
"""

from __future__ import annotations

import functools
import ipaddress
import re

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from .dn import DNError, format_dn, parse_dn
from .fields import ALT_ALIASES, ALT_BY_KEY, ALT_BY_OTHER_NAME_OID
from .othernames import CODECS, OtherNameError

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")

# Every accepted spelling (upper case) -> EJBCA's key.
ALT_NAME_KEYS: dict[str, str] = dict(ALT_ALIASES)

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
# An address of dot-separated atoms: what cryptography's check (email.utils.parseaddr, the costliest part
# of an end entity's validation) accepts unchanged, so it is built without running that parser again.
_PLAIN_EMAIL = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
# OtherName type ids by EJBCA key, made once (an ObjectIdentifier parses its dotted string).
_OTHER_NAME_OIDS: dict[str, ObjectIdentifier] = {
    k: ObjectIdentifier(f.other_name_oid) for k, f in ALT_BY_KEY.items() if getattr(f, "other_name_oid", None)
}


class AltNameError(ValueError):
    """An alt name string that cannot be parsed or encoded."""


def parse_altname_pairs(text: str) -> list[tuple[str, str]]:
    """(KEY, value) pairs in order; an empty value (``OU=``-style placeholder) is kept as "".
    ``\\,`` is a comma inside a value; a comma inside a directoryName value may also be unescaped. A
    directoryName's value comes back as a plain DN string (``CN=a\\,b,O=Org``)."""
    pairs: list[tuple[str, str]] = []
    if not text or not text.strip():
        return pairs
    if "\x00" in text:  # no alt name holds one, PostgreSQL text cannot, and C clients would cut the name there
        raise AltNameError("A subject alternative name contains a NUL character")
    directory = False
    for chunk in _UNESCAPED_COMMA.split(text) if "\\" in text else text.split(","):
        key, sep, value = chunk.partition("=")
        norm = (_KEY_SPELLINGS.get(key) or _key_of(key)) if sep else None
        if norm is None:
            if pairs and pairs[-1][0] == "DIRECTORYNAME":
                pairs[-1] = (pairs[-1][0], pairs[-1][1] + "," + chunk.strip())
                continue
            raise AltNameError(f"Unknown subject alternative name '{chunk.strip()}'")
        value = value.strip()
        if norm == "DIRECTORYNAME":
            directory = True
        elif "\\" in value:
            value = value.replace("\\,", ",")
        pairs.append((norm, value))
    if not directory:
        return pairs
    # a directoryName value is its DN string, one level of escaping undone
    return [(k, _unescape_once(v) if k == "DIRECTORYNAME" else v) for k, v in pairs]


_KEY_SPELLINGS: dict[str, str] = {}  # a key as written ("DNSNAME", " dnsName") -> EJBCA's key


def _key_of(written: str) -> str | None:
    """EJBCA's key for an alt-name key as written (None: unknown), remembered per spelling (bounded)."""
    norm = ALT_NAME_KEYS.get(written.strip().upper())
    if len(_KEY_SPELLINGS) < 1024 and norm is not None:
        _KEY_SPELLINGS[written] = norm
    return norm


def escape_altname_value(key: str, value: str) -> str:
    """A value as written in an alt-name string: commas escaped; a directoryName is LDAP-escaped once more
    (``CN=a\\,b,O=Org`` -> ``CN=a\\\\\\,b\\,O=Org``)."""
    if key == "DIRECTORYNAME":
        return value.replace("\\", "\\\\").replace(",", "\\,")
    return value.replace(",", "\\,")


def _unescape_once(value: str) -> str:
    """Undo one level of LDAP escaping of a directoryName value (``\\,`` -> ``,``, ``\\\\`` -> ``\\``)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in ",\\":
            out.append(value[i + 1])
            i += 2
            continue
        out.append(value[i])
        i += 1
    return "".join(out)


# A pure function of its text (GeneralNames are immutable values); small for the reason given in pki.x509.dn.
@functools.lru_cache(maxsize=256)
def general_name(key: str, value: str) -> x509.GeneralName:
    """One alt name of EJBCA type ``key`` (any accepted spelling) as a ``cryptography`` GeneralName."""
    key = ALT_NAME_KEYS.get(key.strip().upper(), key)
    if not value:
        raise AltNameError(f"{key} has an empty value")
    try:
        if key == "DNSNAME":
            return x509.DNSName(value)
        if key == "RFC822NAME":
            if "@" not in value:
                raise AltNameError(f"RFC822NAME '{value}' is not an e-mail address")
            if _PLAIN_EMAIL.fullmatch(value):
                return x509.RFC822Name._init_without_validation(value)
            return x509.RFC822Name(value)
        if key == "IPADDRESS":
            return x509.IPAddress(_ip_address(value))
        if key == "URI":
            return x509.UniformResourceIdentifier(value)
        if key == "DIRECTORYNAME":
            return x509.DirectoryName(parse_dn(value))
        if key == "REGISTEREDID":
            return x509.RegisteredID(ObjectIdentifier(value))
        codec = CODECS.get(key)
        if codec is not None:
            type_id = _OTHER_NAME_OIDS.get(key) or ObjectIdentifier(ALT_BY_KEY[key].other_name_oid)
            return x509.OtherName(type_id, codec[0](value))
    except (ValueError, DNError, OtherNameError) as exc:
        if isinstance(exc, AltNameError):
            raise
        raise AltNameError(f"{key}={value}: {exc}") from None
    raise AltNameError(f"Unsupported subject alternative name {key}")


_general_name = general_name  # the name it had before


def _plain_email(value: str) -> x509.RFC822Name | None:
    return x509.RFC822Name._init_without_validation(value) if _PLAIN_EMAIL.fullmatch(value) else None


def _other_name_builder(key: str):
    type_id, encode = _OTHER_NAME_OIDS[key], CODECS[key][0]
    return lambda value: x509.OtherName(type_id, encode(value))


# EJBCA key -> the GeneralName of a value, for quick_general_name.
_QUICK_BUILDERS = {
    "DNSNAME": x509.DNSName, "URI": x509.UniformResourceIdentifier, "RFC822NAME": _plain_email,
    "IPADDRESS": lambda value: x509.IPAddress(_ip_address(value)),
    **{key: _other_name_builder(key) for key in CODECS if key in _OTHER_NAME_OIDS},
}


def quick_general_name(key: str, value: str) -> x509.GeneralName:
    """:func:`general_name` for a key as :func:`parse_altname_pairs` returns it, built directly: the per-person
    values of a stream of end entities never repeat, so the cache was only cost for them. Anything that does
    not build goes through :func:`general_name`, which raises the precise error."""
    build = _QUICK_BUILDERS.get(key)
    if build is not None and value:
        try:
            gn = build(value)
        except (ValueError, TypeError):
            gn = None
        if gn is not None:
            return gn
    return general_name(key, value)


def _ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address`` without first trying IPv4 on an IPv6 address (a raised and caught error per
    address); anything that fails goes through ``ip_address`` itself, for its error message."""
    try:
        return ipaddress.IPv6Address(value) if ":" in value else ipaddress.IPv4Address(value)
    except ValueError:
        return ipaddress.ip_address(value)


def parse_altnames(text: str) -> list[x509.GeneralName]:
    return [general_name(k, v) for k, v in parse_altname_pairs(text)]


def altname_pair(gn: x509.GeneralName) -> tuple[str, str]:
    """(EJBCA key, string value) of one GeneralName; an OtherName of no known type is ``OTHERNAME``."""
    if isinstance(gn, x509.DNSName):
        return "DNSNAME", gn.value
    if isinstance(gn, x509.RFC822Name):
        return "RFC822NAME", gn.value
    if isinstance(gn, x509.IPAddress):
        return "IPADDRESS", str(gn.value)
    if isinstance(gn, x509.UniformResourceIdentifier):
        return "URI", gn.value
    if isinstance(gn, x509.DirectoryName):
        return "DIRECTORYNAME", format_dn(gn.value)
    if isinstance(gn, x509.RegisteredID):
        return "REGISTEREDID", gn.value.dotted_string
    if isinstance(gn, x509.OtherName):
        field = ALT_BY_OTHER_NAME_OID.get(gn.type_id.dotted_string)
        if field is not None:
            try:
                return field.key, CODECS[field.key][1](gn.value)
            except (ValueError, KeyError, TypeError):
                pass
        return "OTHERNAME", gn.type_id.dotted_string
    return "OTHERNAME", ""


def canonical_altname_value(key: str, value: str, gn: x509.GeneralName) -> str:
    """The string form :func:`altname_pair` would give for ``gn``, without decoding its DER when the input
    string already is that form (what the validation of many end entities needs to be quick)."""
    if key == "IPADDRESS" and isinstance(gn.value, ipaddress.IPv4Address):
        return value  # an accepted IPv4 string is its canonical form (no leading zeros, nothing else)
    if key in ("IPADDRESS", "DIRECTORYNAME", "FASCN", "GUID"):
        return altname_pair(gn)[1]
    return value


def format_altnames(names) -> str:
    """General names (e.g. a SubjectAlternativeName value) as an EJBCA alt name string."""
    return ", ".join(f"{k}={escape_altname_value(k, v)}" for k, v in (altname_pair(gn) for gn in names))


# How EJBCA writes each key in the alt name strings it returns (its DnComponents names): "dNSName=host".
EJBCA_ALT_NAME_SPELLING: dict[str, str] = {
    "RFC822NAME": "rfc822name", "DNSNAME": "dNSName", "IPADDRESS": "iPAddress", "URI": "uniformResourceIdentifier",
    "DIRECTORYNAME": "directoryName", "REGISTEREDID": "registeredID", "UPN": "upn", "GUID": "guid",
    "KRB5PRINCIPAL": "krb5principal", "PERMANENTIDENTIFIER": "permanentIdentifier",
    "SUBJECTIDENTIFICATIONMETHOD": "subjectIdentificationMethod", "FASCN": "fascN", "XMPPADDR": "xmppAddr",
    "SRVNAME": "srvName",
}


def ejbca_spelling(text: str) -> str:
    """An alt name string as EJBCA's REST API returns it (``dNSName=a.example, iPAddress=10.0.0.1``); a string
    that does not parse is returned as it is."""
    try:
        pairs = parse_altname_pairs(text)
    except AltNameError:
        return text
    return ", ".join(f"{EJBCA_ALT_NAME_SPELLING.get(k, k)}={escape_altname_value(k, v)}" for k, v in pairs)
