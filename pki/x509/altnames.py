"""Subject alternative names in EJBCA's string syntax:
``DNSNAME=host.example.com, RFC822NAME=a@example.com, IPADDRESS=10.0.0.1, URI=https://x, UPN=a@corp``."""

from __future__ import annotations

import ipaddress

from asn1crypto import core
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from .dn import DNError, format_dn, parse_dn

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")

ALT_NAME_KEYS = {
    "DNSNAME": "DNSNAME", "DNS": "DNSNAME",
    "RFC822NAME": "RFC822NAME", "EMAIL": "RFC822NAME",
    "IPADDRESS": "IPADDRESS", "IP": "IPADDRESS",
    "URI": "URI", "UNIFORMRESOURCEIDENTIFIER": "URI", "UNIFORMRESOURCEID": "URI",
    "UPN": "UPN",
    "DIRECTORYNAME": "DIRECTORYNAME",
    "REGISTEREDID": "REGISTEREDID",
}


class AltNameError(ValueError):
    """An alt name string that cannot be parsed or encoded."""


def parse_altname_pairs(text: str) -> list[tuple[str, str]]:
    """(KEY, value) pairs in order. A comma inside a directoryName value belongs to that value."""
    pairs: list[tuple[str, str]] = []
    if not text or not text.strip():
        return pairs
    for chunk in text.split(","):
        key, sep, value = chunk.partition("=")
        norm = ALT_NAME_KEYS.get(key.strip().upper()) if sep else None
        if norm is None:
            if pairs and pairs[-1][0] == "DIRECTORYNAME":
                pairs[-1] = (pairs[-1][0], pairs[-1][1] + "," + chunk)
                continue
            raise AltNameError(f"Unknown subject alternative name '{chunk.strip()}'")
        pairs.append((norm, value.strip()))
    return pairs


def _general_name(key: str, value: str) -> x509.GeneralName:
    if not value:
        raise AltNameError(f"{key} has an empty value")
    try:
        if key == "DNSNAME":
            return x509.DNSName(value)
        if key == "RFC822NAME":
            if "@" not in value:
                raise AltNameError(f"RFC822NAME '{value}' is not an e-mail address")
            return x509.RFC822Name(value)
        if key == "IPADDRESS":
            return x509.IPAddress(ipaddress.ip_address(value))
        if key == "URI":
            return x509.UniformResourceIdentifier(value)
        if key == "UPN":
            return x509.OtherName(UPN_OID, core.UTF8String(value).dump())
        if key == "DIRECTORYNAME":
            return x509.DirectoryName(parse_dn(value))
        if key == "REGISTEREDID":
            return x509.RegisteredID(ObjectIdentifier(value))
    except (ValueError, DNError) as exc:
        raise AltNameError(f"{key}={value}: {exc}") from None
    raise AltNameError(f"Unsupported subject alternative name {key}")


def parse_altnames(text: str) -> list[x509.GeneralName]:
    return [_general_name(k, v) for k, v in parse_altname_pairs(text)]


def format_altnames(names) -> str:
    """General names (e.g. a SubjectAlternativeName value) as an EJBCA alt name string."""
    parts = []
    for gn in names:
        if isinstance(gn, x509.DNSName):
            parts.append(f"DNSNAME={gn.value}")
        elif isinstance(gn, x509.RFC822Name):
            parts.append(f"RFC822NAME={gn.value}")
        elif isinstance(gn, x509.IPAddress):
            parts.append(f"IPADDRESS={gn.value}")
        elif isinstance(gn, x509.UniformResourceIdentifier):
            parts.append(f"URI={gn.value}")
        elif isinstance(gn, x509.DirectoryName):
            parts.append(f"DIRECTORYNAME={format_dn(gn.value)}")
        elif isinstance(gn, x509.RegisteredID):
            parts.append(f"REGISTEREDID={gn.value.dotted_string}")
        elif isinstance(gn, x509.OtherName) and gn.type_id == UPN_OID:
            try:
                parts.append(f"UPN={core.load(gn.value).native}")
            except ValueError:
                parts.append(f"OTHERNAME={gn.type_id.dotted_string}")
        elif isinstance(gn, x509.OtherName):
            parts.append(f"OTHERNAME={gn.type_id.dotted_string}")
    return ", ".join(parts)
