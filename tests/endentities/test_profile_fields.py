"""The one table of profile field types: every DN attribute and alt-name type EJBCA supports."""

import json

import pytest
from cryptography.x509.oid import ObjectIdentifier

from endentities.fields import ALT_NAME_TYPES, DN_TYPES, FIELD_TYPES, choices, field_type, schema
from endentities.models import normalize_field_instance

DN_OIDS = {
    "CN": "2.5.4.3", "SN": "2.5.4.5", "GIVENNAME": "2.5.4.42", "SURNAME": "2.5.4.4", "INITIALS": "2.5.4.43",
    "T": "2.5.4.12", "O": "2.5.4.10", "OU": "2.5.4.11", "L": "2.5.4.7", "ST": "2.5.4.8", "C": "2.5.4.6",
    "DC": "0.9.2342.19200300.100.1.25", "STREET": "2.5.4.9", "POSTALCODE": "2.5.4.17", "PSEUDONYM": "2.5.4.65",
    "UID": "0.9.2342.19200300.100.1.1", "ORGANIZATIONIDENTIFIER": "2.5.4.97", "DESCRIPTION": "2.5.4.13",
    "BUSINESSCATEGORY": "2.5.4.15", "JURISDICTIONLOCALITY": "1.3.6.1.4.1.311.60.2.1.1",
    "JURISDICTIONSTATE": "1.3.6.1.4.1.311.60.2.1.2", "JURISDICTIONCOUNTRY": "1.3.6.1.4.1.311.60.2.1.3",
    "POSTALADDRESS": "2.5.4.16", "UNIQUEIDENTIFIER": "2.5.4.45", "CERTIFICATIONID": "0.4.0.127.0.7.3.10.1.2",
    "NAME": "2.5.4.41", "DN": "2.5.4.46", "ROLE": "2.5.4.72", "E": "1.2.840.113549.1.9.1",
    "TELEPHONENUMBER": "2.5.4.20", "UNSTRUCTUREDNAME": "1.2.840.113549.1.9.2",
    "UNSTRUCTUREDADDRESS": "1.2.840.113549.1.9.8",
}
OTHER_NAME_OIDS = {
    "UPN": "1.3.6.1.4.1.311.20.2.3", "GUID": "1.3.6.1.4.1.311.25.1", "KRB5PRINCIPAL": "1.3.6.1.5.2.2",
    "PERMANENTIDENTIFIER": "1.3.6.1.5.5.7.8.3", "SUBJECTIDENTIFICATIONMETHOD": "1.3.6.1.5.5.7.8.6",
    "FASCN": "2.16.840.1.101.3.6.6", "XMPPADDR": "1.3.6.1.5.5.7.8.5", "SRVNAME": "1.3.6.1.5.5.7.8.7",
}


@pytest.mark.parametrize(("key", "oid"), sorted(DN_OIDS.items()))
def test_every_dn_attribute_with_its_oid(key, oid):
    assert DN_TYPES[key].oid == oid and DN_TYPES[key].kind == "dn"
    ObjectIdentifier(oid)


@pytest.mark.parametrize(("key", "oid"), sorted(OTHER_NAME_OIDS.items()))
def test_every_other_name_with_its_type_id(key, oid):
    assert ALT_NAME_TYPES[key].oid == oid and ALT_NAME_TYPES[key].kind == "altname"


def test_plain_general_names_present():
    for key in ("RFC822NAME", "DNSNAME", "IPADDRESS", "URI", "DIRECTORYNAME", "REGISTEREDID"):
        assert key in ALT_NAME_TYPES and ALT_NAME_TYPES[key].oid is None
    assert ALT_NAME_TYPES["RFC822NAME"].options == ("use_entity_email",)
    assert ALT_NAME_TYPES["DNSNAME"].options == ("use_entity_cn",)


@pytest.mark.parametrize(
    ("alias", "kind", "key"),
    [("gn", None, "GIVENNAME"), ("serialNumber", None, "SN"), ("commonName", "dn", "CN"),
     ("ORGANIZATIONALUNIT", "dn", "OU"), ("EMAIL", None, "E"), ("EMAIL", "altname", "RFC822NAME"),
     ("dns", "altname", "DNSNAME"), ("uniformResourceId", None, "URI"), ("ip", "altname", "IPADDRESS"),
     ("businessCategory", None, "BUSINESSCATEGORY"), ("nosuch", None, None)],
)
def test_aliases(alias, kind, key):
    found = field_type(alias, kind)
    assert (found.key if found else None) == key


def test_error_names_are_ejbcas():
    assert DN_TYPES["OU"].ejbca_name == "ORGANIZATIONALUNIT"
    assert DN_TYPES["CN"].ejbca_name == "COMMONNAME"


def test_schema_is_json_and_covers_the_table():
    data = json.loads(json.dumps(schema()))
    assert len(data["subject_dn"]) + len(data["subject_alt_name"]) == len(FIELD_TYPES)
    cert_id = next(r for r in data["subject_dn"] if r["key"] == "CERTIFICATIONID")
    assert "PrintableString" in cert_id["encoding"] and cert_id["pattern"]
    assert choices("altname")[0][0] == "RFC822NAME"


def test_field_instance_normalized():
    assert normalize_field_instance({"type": "gn"}, "dn") == {
        "type": "GIVENNAME", "required": False, "modifiable": True, "validation": "", "value": "",
        "use_entity_email": False, "use_entity_cn": False,
    }
    assert normalize_field_instance({"type": "dns", "use_entity_cn": True}, "altname")["use_entity_cn"] is True
    with pytest.raises(ValueError, match="Unknown field type"):
        normalize_field_instance({"type": "FOO"}, "dn")
