"""The table of subject DN attributes: EJBCA name, OID and ASN.1 string type.

One table drives parsing, formatting, validation and (later) the profile editor and REST schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier


@dataclass(frozen=True)
class DNField:
    key: str  # EJBCA's attribute name in DN strings
    oid: ObjectIdentifier
    label: str
    asn1_type: _ASN1Type = _ASN1Type.UTF8String
    max_length: int | None = None


DN_FIELDS: tuple[DNField, ...] = (
    DNField("E", NameOID.EMAIL_ADDRESS, "E-mail address (in DN)", _ASN1Type.IA5String, 255),
    DNField("UID", NameOID.USER_ID, "UID"),
    DNField("CN", NameOID.COMMON_NAME, "Common name", max_length=64),
    DNField("SN", NameOID.SERIAL_NUMBER, "Serial number (in DN)", _ASN1Type.PrintableString, 64),
    DNField("GIVENNAME", NameOID.GIVEN_NAME, "Given name"),
    DNField("INITIALS", NameOID.INITIALS, "Initials"),
    DNField("SURNAME", NameOID.SURNAME, "Surname"),
    DNField("T", NameOID.TITLE, "Title"),
    DNField("OU", NameOID.ORGANIZATIONAL_UNIT_NAME, "Organizational unit", max_length=64),
    DNField("O", NameOID.ORGANIZATION_NAME, "Organization", max_length=64),
    DNField("L", NameOID.LOCALITY_NAME, "Locality", max_length=128),
    DNField("ST", NameOID.STATE_OR_PROVINCE_NAME, "State or province", max_length=128),
    DNField("DC", NameOID.DOMAIN_COMPONENT, "Domain component", _ASN1Type.IA5String),
    DNField("C", NameOID.COUNTRY_NAME, "Country (ISO 3166)", _ASN1Type.PrintableString, 2),
    DNField("STREET", NameOID.STREET_ADDRESS, "Street address"),
    DNField("POSTALCODE", NameOID.POSTAL_CODE, "Postal code"),
    DNField("PSEUDONYM", NameOID.PSEUDONYM, "Pseudonym"),
    DNField("DN", NameOID.DN_QUALIFIER, "DN qualifier", _ASN1Type.PrintableString),
    DNField("NAME", ObjectIdentifier("2.5.4.41"), "Name"),
    DNField("DESCRIPTION", ObjectIdentifier("2.5.4.13"), "Description"),
    DNField("ROLE", ObjectIdentifier("2.5.4.72"), "Role"),
    DNField("TELEPHONENUMBER", ObjectIdentifier("2.5.4.20"), "Telephone number", _ASN1Type.PrintableString),
    DNField("BUSINESSCATEGORY", NameOID.BUSINESS_CATEGORY, "Business category"),
    DNField("POSTALADDRESS", ObjectIdentifier("2.5.4.16"), "Postal address"),
    DNField("UNIQUEIDENTIFIER", NameOID.X500_UNIQUE_IDENTIFIER, "Unique identifier"),
    DNField("ORGANIZATIONIDENTIFIER", NameOID.ORGANIZATION_IDENTIFIER, "Organization identifier"),
    DNField("JURISDICTIONLOCALITY", NameOID.JURISDICTION_LOCALITY_NAME, "Jurisdiction locality"),
    DNField("JURISDICTIONSTATE", NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME, "Jurisdiction state or province"),
    DNField(
        "JURISDICTIONCOUNTRY", NameOID.JURISDICTION_COUNTRY_NAME, "Jurisdiction country",
        _ASN1Type.PrintableString, 2,
    ),
    DNField("CERTIFICATIONID", ObjectIdentifier("0.4.0.127.0.7.3.10.1.2"), "Certification ID (BSI TR-03145-5)"),
    DNField("VID", ObjectIdentifier("1.3.6.1.4.1.37244.2.1"), "Matter vendor id"),
    DNField("PID", ObjectIdentifier("1.3.6.1.4.1.37244.2.2"), "Matter product id"),
)

BY_KEY: dict[str, DNField] = {f.key: f for f in DN_FIELDS}
BY_OID: dict[str, DNField] = {f.oid.dotted_string: f for f in DN_FIELDS}

# Other spellings accepted on input (EJBCA and RFC 4514 names).
ALIASES = {
    "EMAILADDRESS": "E",
    "EMAIL": "E",
    "SERIALNUMBER": "SN",
    "GN": "GIVENNAME",
    "TITLE": "T",
    "S": "ST",
    "STREETADDRESS": "STREET",
    "ORGANIZATIONIDENTIFIER": "ORGANIZATIONIDENTIFIER",
    "DNQUALIFIER": "DN",
    "USERID": "UID",
}


def field_for(key: str) -> DNField | None:
    k = key.strip().upper()
    k = ALIASES.get(k, k)
    return BY_KEY.get(k)
