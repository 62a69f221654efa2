"""The end entity profile field table: every subject DN attribute and subject alternative name type a
profile can hold, as data.

The rows come from the encoding tables of the CA core (``pki.x509.fields.DN_FIELDS`` and
``ALT_NAME_FIELDS``: OID, ASN.1 encoding, built-in format), so parsing, encoding, profile validation, the
profile editor and the REST schema all read the same table. This module adds what only profiles need:
the kind (DN or alt name), the profile options a type offers and a JSON-able schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pki.x509.fields import (
    ALT_NAME_FIELDS,
    DN_FIELDS,
    DN_RANK,
    ENC_CERTIFICATION_ID,
    ENC_DER_OR_UTF8,
    AltNameField,
    DNField,
    alt_field_for,
    field_for,
)

Kind = Literal["dn", "altname"]

# Profile options a field type may offer besides required/modifiable/validation/value.
OPTION_USE_ENTITY_EMAIL = "use_entity_email"  # RFC822NAME: the end entity's e-mail address
OPTION_USE_ENTITY_CN = "use_entity_cn"  # DNSNAME: the subject DN's CN


@dataclass(frozen=True)
class FieldType:
    """One row of the table."""

    key: str  # the type key in profiles and in EJBCA DN / alt-name strings: "OU", "DNSNAME"
    kind: Kind
    label: str
    ejbca_name: str  # EJBCA's profile field name, used in error messages: "ORGANIZATIONALUNIT"
    oid: str | None  # attribute type OID (DN) or OtherName type-id (alt name); None for plain GeneralNames
    encoding: str  # human-readable ASN.1 encoding of the value
    repeatable: bool
    max_length: int | None
    pattern: str | None  # built-in format check (full match), applied besides the profile's own regex
    hint: str
    options: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (REST schema, profile editor)."""
        return {
            "key": self.key, "kind": self.kind, "label": self.label, "ejbca_name": self.ejbca_name,
            "oid": self.oid, "encoding": self.encoding, "repeatable": self.repeatable,
            "max_length": self.max_length, "pattern": self.pattern, "hint": self.hint, "options": list(self.options),
        }


def _dn_encoding(f: DNField) -> str:
    if f.encoding == ENC_DER_OR_UTF8:
        return "'#'+hex DER as given, else UTF8String"
    if f.encoding == ENC_CERTIFICATION_ID:
        return "SEQUENCE { INTEGER version, PrintableString (SIZE(18)) } (BSI TR-03145-5)"
    return f.asn1_type.name


def _alt_encoding(f: AltNameField) -> str:
    return {
        "rfc822Name": "rfc822Name IA5String", "dNSName": "dNSName IA5String",
        "uniformResourceIdentifier": "uniformResourceIdentifier IA5String", "iPAddress": "iPAddress OCTET STRING",
        "directoryName": "directoryName Name", "registeredID": "registeredID OBJECT IDENTIFIER",
    }.get(f.general_name) or {
        "UPN": "otherName UTF8String", "GUID": "otherName OCTET STRING (16 bytes)",
        "KRB5PRINCIPAL": "otherName KRB5PrincipalName (RFC 4556)",
        "PERMANENTIDENTIFIER": "otherName PermanentIdentifier (RFC 4043)",
        "SUBJECTIDENTIFICATIONMETHOD": "otherName SIM (RFC 4683)", "FASCN": "otherName OCTET STRING",
        "XMPPADDR": "otherName UTF8String (RFC 6120)", "SRVNAME": "otherName IA5String (RFC 4985)",
    }[f.key]


DN_FIELD_TYPES: tuple[FieldType, ...] = tuple(
    FieldType(
        key=f.key, kind="dn", label=f.label, ejbca_name=f.ejbca_name or f.key, oid=f.oid.dotted_string,
        encoding=_dn_encoding(f), repeatable=f.repeatable, max_length=f.max_length, pattern=f.pattern, hint=f.hint,
    )
    for f in sorted(DN_FIELDS, key=lambda f: DN_RANK.get(f.key, len(DN_RANK)))
)
ALT_NAME_FIELD_TYPES: tuple[FieldType, ...] = tuple(
    FieldType(
        key=f.key, kind="altname", label=f.label, ejbca_name=f.key, oid=f.other_name_oid, encoding=_alt_encoding(f),
        repeatable=f.repeatable, max_length=f.max_length, pattern=f.pattern, hint=f.hint,
        options={"RFC822NAME": (OPTION_USE_ENTITY_EMAIL,), "DNSNAME": (OPTION_USE_ENTITY_CN,)}.get(f.key, ()),
    )
    for f in ALT_NAME_FIELDS
)
FIELD_TYPES: tuple[FieldType, ...] = DN_FIELD_TYPES + ALT_NAME_FIELD_TYPES
DN_TYPES: dict[str, FieldType] = {t.key: t for t in DN_FIELD_TYPES}
ALT_NAME_TYPES: dict[str, FieldType] = {t.key: t for t in ALT_NAME_FIELD_TYPES}

# At most this many subject alternative names per end entity (EJBCA's limit).
MAX_ALT_NAMES = 100


def field_type(key: str, kind: Kind | None = None) -> FieldType | None:
    """The row for a type key or one of its aliases (``GN``, ``EMAIL``, ``DNS``...), any case.

    Without ``kind`` a DN attribute wins over an alt name of the same spelling (``EMAIL`` is the DN's E)."""
    if kind in (None, "dn"):
        f = field_for(key)
        if f is not None:
            return DN_TYPES[f.key]
    if kind in (None, "altname"):
        a = alt_field_for(key)
        if a is not None:
            return ALT_NAME_TYPES[a.key]
    return None


def schema() -> dict[str, list[dict[str, Any]]]:
    """The whole table as JSON (the REST API's and the profile editor's field catalogue)."""
    return {"subject_dn": [t.as_dict() for t in DN_FIELD_TYPES],
            "subject_alt_name": [t.as_dict() for t in ALT_NAME_FIELD_TYPES]}


def choices(kind: Kind) -> list[tuple[str, str]]:
    """(key, label) pairs for a form's type selector."""
    rows = DN_FIELD_TYPES if kind == "dn" else ALT_NAME_FIELD_TYPES
    return [(t.key, f"{t.label} ({t.key})") for t in rows]
