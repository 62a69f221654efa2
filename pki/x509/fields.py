"""The tables of subject DN attributes and subject alternative name types.

DN attributes: EJBCA name, OID, ASN.1 string type, EJBCA's profile field name, whether a profile may hold
several instances, the value encoding and a built-in format check. Alt names: EJBCA name, the GeneralName
choice (and OtherName type-id), encoding and format check. These tables drive parsing, formatting,
encoding, end entity profile validation, the profile editor and the REST schema (``endentities.fields``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

# How a DN attribute value is encoded (DNField.encoding).
ENC_STRING = "string"  # the string type of ``asn1_type``
ENC_DER_OR_UTF8 = "der-or-utf8"  # '#' + hex DER is written as given, anything else as UTF8String
ENC_CERTIFICATION_ID = "certification-id"  # BSI TR-03145-5: SEQUENCE { version INTEGER, PrintableString }


@dataclass(frozen=True)
class DNField:
    key: str  # EJBCA's attribute name in DN strings
    oid: ObjectIdentifier
    label: str
    asn1_type: _ASN1Type = _ASN1Type.UTF8String
    max_length: int | None = None
    ejbca_name: str = ""  # EJBCA's profile field name (its error messages use it): ORGANIZATIONALUNIT
    repeatable: bool = True  # a profile may hold several instances
    encoding: str = ENC_STRING
    pattern: str | None = None  # built-in format (full match), checked besides a profile's own regex
    hint: str = ""  # input format help for forms


DN_FIELDS: tuple[DNField, ...] = (
    DNField("E", NameOID.EMAIL_ADDRESS, "E-mail address (in DN)", _ASN1Type.IA5String, 255, "EMAILADDRESS"),
    DNField("UID", NameOID.USER_ID, "UID", ejbca_name="UID"),
    DNField("CN", NameOID.COMMON_NAME, "Common name", max_length=64, ejbca_name="COMMONNAME"),
    DNField("SN", NameOID.SERIAL_NUMBER, "Serial number (in DN)", _ASN1Type.PrintableString, 64, "SERIALNUMBER",
            False),
    DNField("GIVENNAME", NameOID.GIVEN_NAME, "Given name", ejbca_name="GIVENNAME"),
    DNField("INITIALS", NameOID.INITIALS, "Initials", ejbca_name="INITIALS"),
    DNField("SURNAME", NameOID.SURNAME, "Surname", ejbca_name="SURNAME"),
    DNField("T", NameOID.TITLE, "Title", ejbca_name="TITLE"),
    DNField("OU", NameOID.ORGANIZATIONAL_UNIT_NAME, "Organizational unit", max_length=64,
            ejbca_name="ORGANIZATIONALUNIT"),
    DNField("O", NameOID.ORGANIZATION_NAME, "Organization", max_length=64, ejbca_name="ORGANIZATION"),
    DNField("L", NameOID.LOCALITY_NAME, "Locality", max_length=128, ejbca_name="LOCALITY"),
    DNField("ST", NameOID.STATE_OR_PROVINCE_NAME, "State or province", max_length=128, ejbca_name="STATEORPROVINCE"),
    DNField("DC", NameOID.DOMAIN_COMPONENT, "Domain component", _ASN1Type.IA5String, ejbca_name="DOMAINCOMPONENT"),
    DNField("C", NameOID.COUNTRY_NAME, "Country (ISO 3166)", _ASN1Type.PrintableString, 2, "COUNTRY", False,
            pattern="[A-Za-z]{2}", hint="Two letters, e.g. SE"),
    DNField("STREET", NameOID.STREET_ADDRESS, "Street address", ejbca_name="STREETADDRESS"),
    DNField("POSTALCODE", NameOID.POSTAL_CODE, "Postal code", ejbca_name="POSTALCODE"),
    DNField("PSEUDONYM", NameOID.PSEUDONYM, "Pseudonym", ejbca_name="PSEUDONYM"),
    DNField("DN", NameOID.DN_QUALIFIER, "DN qualifier", _ASN1Type.PrintableString, ejbca_name="DNQUALIFIER"),
    DNField("NAME", ObjectIdentifier("2.5.4.41"), "Name", ejbca_name="NAME"),
    DNField("DESCRIPTION", ObjectIdentifier("2.5.4.13"), "Description", ejbca_name="DESCRIPTION"),
    DNField("ROLE", ObjectIdentifier("2.5.4.72"), "Role", ejbca_name="ROLE"),
    DNField("TELEPHONENUMBER", ObjectIdentifier("2.5.4.20"), "Telephone number", _ASN1Type.PrintableString,
            ejbca_name="TELEPHONENUMBER"),
    DNField("BUSINESSCATEGORY", NameOID.BUSINESS_CATEGORY, "Business category", ejbca_name="BUSINESSCATEGORY"),
    DNField("POSTALADDRESS", ObjectIdentifier("2.5.4.16"), "Postal address", ejbca_name="POSTALADDRESS",
            encoding=ENC_DER_OR_UTF8, hint="'#' + hex of the DER PostalAddress (#30...); plain text is UTF8String"),
    DNField("UNIQUEIDENTIFIER", NameOID.X500_UNIQUE_IDENTIFIER, "Unique identifier", ejbca_name="UNIQUEIDENTIFIER",
            repeatable=False, encoding=ENC_DER_OR_UTF8,
            hint="'#' + hex of the DER value (#03... for a BIT STRING); plain text is UTF8String"),
    DNField("ORGANIZATIONIDENTIFIER", NameOID.ORGANIZATION_IDENTIFIER, "Organization identifier",
            ejbca_name="ORGANIZATIONIDENTIFIER", repeatable=False),
    DNField("JURISDICTIONLOCALITY", NameOID.JURISDICTION_LOCALITY_NAME, "Jurisdiction locality",
            ejbca_name="JURISDICTIONLOCALITY", repeatable=False),
    DNField("JURISDICTIONSTATE", NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME, "Jurisdiction state or province",
            ejbca_name="JURISDICTIONSTATE", repeatable=False),
    DNField(
        "JURISDICTIONCOUNTRY", NameOID.JURISDICTION_COUNTRY_NAME, "Jurisdiction country",
        _ASN1Type.PrintableString, 2, "JURISDICTIONCOUNTRY", False, pattern="[A-Za-z]{2}",
    ),
    DNField("CERTIFICATIONID", ObjectIdentifier("0.4.0.127.0.7.3.10.1.2"), "Certification ID (BSI TR-03145-5)",
            ejbca_name="CERTIFICATIONID", repeatable=False, encoding=ENC_CERTIFICATION_ID,
            pattern=r"BSI-K-TR-\d{4}-\d{4}", hint="BSI-K-TR-NNNN-YYYY (18 characters)"),
    DNField("UNSTRUCTUREDNAME", ObjectIdentifier("1.2.840.113549.1.9.2"), "Unstructured name (PKCS#9)",
            _ASN1Type.IA5String, ejbca_name="UNSTRUCTUREDNAME"),
    DNField("UNSTRUCTUREDADDRESS", ObjectIdentifier("1.2.840.113549.1.9.8"), "Unstructured address (PKCS#9)",
            ejbca_name="UNSTRUCTUREDADDRESS"),
    DNField("VID", ObjectIdentifier("1.3.6.1.4.1.37244.2.1"), "Matter vendor id", ejbca_name="VID", repeatable=False),
    DNField("PID", ObjectIdentifier("1.3.6.1.4.1.37244.2.2"), "Matter product id", ejbca_name="PID", repeatable=False),
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
    "COMMONNAME": "CN",
    "ORGANIZATIONALUNIT": "OU",
    "ORGANIZATION": "O",
    "LOCALITY": "L",
    "STATEORPROVINCE": "ST",
    "COUNTRY": "C",
    "DOMAINCOMPONENT": "DC",
    "SURNAME": "SURNAME",
    "JURISDICTIONSTATEORPROVINCE": "JURISDICTIONSTATE",
}

# EJBCA's order of DN attributes, most specific first (its DnComponents order): end entity DNs are written
# in this order whatever order they were given in; an attribute not listed keeps its place after these.
DN_ORDER: tuple[str, ...] = (
    "STREET", "PSEUDONYM", "TELEPHONENUMBER", "POSTALADDRESS", "BUSINESSCATEGORY", "POSTALCODE",
    "UNSTRUCTUREDADDRESS", "UNSTRUCTUREDNAME", "E", "DN", "UNIQUEIDENTIFIER", "UID", "PID", "VID", "CN", "NAME",
    "SN", "GIVENNAME", "INITIALS", "SURNAME", "T", "ROLE", "DESCRIPTION", "OU", "ORGANIZATIONIDENTIFIER",
    "CERTIFICATIONID", "O", "L", "ST", "DC", "C", "JURISDICTIONLOCALITY", "JURISDICTIONSTATE", "JURISDICTIONCOUNTRY",
)
DN_RANK: dict[str, int] = {key: i for i, key in enumerate(DN_ORDER)}


_FIELD_FOR: dict[str, DNField | None] = {}


def field_for(key: str) -> DNField | None:
    """The DN attribute for a key or alias (any case); remembered per spelling (DN parsing is hot)."""
    try:
        return _FIELD_FOR[key]
    except KeyError:
        pass
    k = key.strip().upper()
    k = ALIASES.get(k, k)
    found = BY_KEY.get(k)
    if len(_FIELD_FOR) < 4096:  # bounded: keys come from input
        _FIELD_FOR[key] = found
    return found


@dataclass(frozen=True)
class AltNameField:
    """A subject alternative name type. ``general_name`` is the GeneralName choice (RFC 5280); OtherNames
    carry their type-id in ``other_name_oid``. The encoder lives in ``pki.x509.altnames`` by ``key``."""

    key: str  # EJBCA's name in alt-name strings
    label: str
    general_name: str
    other_name_oid: str | None = None
    aliases: tuple[str, ...] = ()
    max_length: int | None = None  # in characters of the string form
    pattern: str | None = None  # built-in format (full match)
    hint: str = ""
    repeatable: bool = True


ALT_NAME_FIELDS: tuple[AltNameField, ...] = (
    AltNameField("RFC822NAME", "RFC 822 name (e-mail address)", "rfc822Name", aliases=("EMAIL", "MAIL"),
                 hint="user@example.com"),
    AltNameField("DNSNAME", "DNS name", "dNSName", aliases=("DNS",), hint="host.example.com"),
    AltNameField("IPADDRESS", "IP address", "iPAddress", aliases=("IP",), hint="192.0.2.1 or 2001:DB8::1"),
    AltNameField("URI", "Uniform resource identifier", "uniformResourceIdentifier",
                 aliases=("UNIFORMRESOURCEIDENTIFIER", "UNIFORMRESOURCEID"), hint="https://example.com/"),
    AltNameField("DIRECTORYNAME", "Directory name", "directoryName", hint="LDAP-escaped DN: CN=x\\,y,O=Org"),
    AltNameField("REGISTEREDID", "Registered ID", "registeredID", hint="dotted OID"),
    AltNameField("UPN", "MS UPN (user principal name)", "otherName", "1.3.6.1.4.1.311.20.2.3",
                 hint="user@corp.example.com"),
    AltNameField("GUID", "MS GUID (globally unique id)", "otherName", "1.3.6.1.4.1.311.25.1",
                 pattern="[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}",
                 hint="32 hex digits (16 bytes)"),
    AltNameField("KRB5PRINCIPAL", "Kerberos 5 principal name", "otherName", "1.3.6.1.5.2.2",
                 hint="principal1/principal2@REALM, e.g. krbtgt/EXAMPLE.COM@EXAMPLE.COM"),
    AltNameField("PERMANENTIDENTIFIER", "Permanent identifier (RFC 4043)", "otherName", "1.3.6.1.5.5.7.8.3",
                 hint="identifierValue/assignerOID; escape '/' in the value as '\\/'"),
    AltNameField("SUBJECTIDENTIFICATIONMETHOD", "Subject identification method (RFC 4683)", "otherName",
                 "1.3.6.1.5.5.7.8.6",
                 hint="enter hashOID::password::SIItypeOID::SIIvalue; stored as hashOID::authorityRandom::PEPSI"),
    AltNameField("FASCN", "FASC-N (FIPS 201-2)", "otherName", "2.16.840.1.101.3.6.6",
                 pattern="(0419)?[0-9A-Fa-f]{2,50}", hint="hex, at most 25 bytes"),
    AltNameField("XMPPADDR", "XMPP address (RFC 6120)", "otherName", "1.3.6.1.5.5.7.8.5",
                 hint="user@xmpp.example.com"),
    AltNameField("SRVNAME", "Service name (RFC 4985)", "otherName", "1.3.6.1.5.5.7.8.7",
                 pattern=r"_[^.\s]+\.[^\s]+", hint="_Service.Name, e.g. _xmpp-client.example.com"),
)

ALT_BY_KEY: dict[str, AltNameField] = {f.key: f for f in ALT_NAME_FIELDS}
ALT_BY_OTHER_NAME_OID: dict[str, AltNameField] = {f.other_name_oid: f for f in ALT_NAME_FIELDS if f.other_name_oid}
ALT_ALIASES: dict[str, str] = {a: f.key for f in ALT_NAME_FIELDS for a in (f.key, *f.aliases)}


def alt_field_for(key: str) -> AltNameField | None:
    """The alt-name type for a key or alias (any case)."""
    k = ALT_ALIASES.get(key.strip().upper())
    return ALT_BY_KEY.get(k) if k else None
