"""Pure X.509 helpers: DN, alt names, validity expressions, signature algorithms."""

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.x509.algorithms import signature_algorithm
from pki.x509.altnames import AltNameError, format_altnames, parse_altnames
from pki.x509.dn import DNError, format_dn, parse_dn
from pki.x509.validity import ValidityError, parse_validity

START = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("CN=User Usersson,O=Org,C=SE", "CN=User Usersson,O=Org,C=SE"),
        ("cn=a, o=b , c=SE", "CN=a,O=b,C=SE"),
        ("CN=Foo\\, Inc,O=Bar", "CN=Foo\\, Inc,O=Bar"),
        ('CN="Quoted, Name",O=X', "CN=Quoted\\, Name,O=X"),
        ("CN=Foo,OU=Bar1,OU=Bar2,O=Org", "CN=Foo,OU=Bar1,OU=Bar2,O=Org"),
        ("CN=a+UID=42,O=b", "CN=a+UID=42,O=b"),
        ("EMAILADDRESS=a@b.se,CN=x", "E=a@b.se,CN=x"),
        ("SERIALNUMBER=123,CN=router", "SN=123,CN=router"),
        ("2.5.4.3=oidname,O=x", "CN=oidname,O=x"),
        ("CN=x,1.2.3.4=custom", "CN=x,1.2.3.4=custom"),
        ("SURNAME=Svensson,GIVENNAME=Sven,CN=Sven Svensson", "SURNAME=Svensson,GIVENNAME=Sven,CN=Sven Svensson"),
    ],
)
def test_dn_round_trip(text, normalized):
    assert format_dn(parse_dn(text)) == normalized


def test_dn_encoding_order_is_string_reversed():
    name = parse_dn("CN=User,O=Org,C=SE")
    # The first RDN of the encoding is the last of the string (C), as in LDAP/RFC 4514 strings.
    assert name.rdns[0].get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "SE"
    assert name.rfc4514_string() == "CN=User,O=Org,C=SE"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("CN=", "empty value"),
        ("FOO=bar", "Unknown DN attribute 'FOO'"),
        ("CN=a,,O=b", "Empty RDN"),
        ("CN", "Missing '='"),
        ("C=SWE", "C"),
        ('CN="unbalanced', "Unbalanced quotes"),
    ],
)
def test_dn_errors(text, message):
    with pytest.raises(DNError, match=message):
        parse_dn(text)


def test_country_is_printable_string():
    name = parse_dn("CN=a,C=SE")
    attr = name.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0]
    assert attr._type.name == "PrintableString"


@pytest.mark.parametrize(
    ("text", "expected_types"),
    [
        ("DNSNAME=a.example.com", [x509.DNSName]),
        ("dnsName=a.example.com, IPADDRESS=10.0.0.1", [x509.DNSName, x509.IPAddress]),
        ("IPADDRESS=2001:db8::1", [x509.IPAddress]),
        ("RFC822NAME=user@example.com,URI=https://example.com/x", [x509.RFC822Name, x509.UniformResourceIdentifier]),
        ("UPN=user@corp.example", [x509.OtherName]),
        ("DIRECTORYNAME=CN=Dir,O=Org,DNSNAME=b.example", [x509.DirectoryName, x509.DNSName]),
        ("REGISTEREDID=1.2.3.4", [x509.RegisteredID]),
    ],
)
def test_altnames_parse(text, expected_types):
    names = parse_altnames(text)
    assert [type(n) for n in names] == expected_types
    # formatting and parsing again gives the same names
    assert parse_altnames(format_altnames(names)) == names


@pytest.mark.parametrize("text", ["FOO=bar", "IPADDRESS=999.1.1.1", "RFC822NAME=nobody", "DNSNAME="])
def test_altname_errors(text):
    with pytest.raises(AltNameError):
        parse_altnames(text)


@pytest.mark.parametrize(
    ("expr", "end"),
    [
        ("30", datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
        ("1y", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
        ("1mo", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),  # end of a shorter month
        ("1y 6mo", datetime(2027, 7, 31, 12, 0, tzinfo=UTC)),
        ("2d 3h 4m 5s", datetime(2026, 2, 2, 15, 4, 5, tzinfo=UTC)),
        ("10y", datetime(2036, 1, 31, 12, 0, tzinfo=UTC)),
        ("2030-12-31", datetime(2030, 12, 31, 0, 0, tzinfo=UTC)),
        ("2030-12-31 23:59:59", datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_validity_expressions(expr, end):
    assert parse_validity(expr, START) == end


@pytest.mark.parametrize("expr", ["", "0", "1x", "y1", "2020-01-01", "1y junk"])
def test_validity_errors(expr):
    with pytest.raises(ValidityError):
        parse_validity(expr, START)


@pytest.mark.parametrize(
    ("name", "key_algorithm", "pss"),
    [
        ("SHA256WithRSA", "RSA", False),
        ("sha256withrsa", "RSA", False),
        ("SHA384withRSAandMGF1", "RSA", True),
        ("SHA256withECDSA", "EC", False),
        ("Ed25519", "Ed25519", False),
    ],
)
def test_signature_algorithms(name, key_algorithm, pss):
    alg = signature_algorithm(name)
    assert alg.key_algorithm == key_algorithm
    assert alg.pss is pss


def test_unknown_signature_algorithm():
    with pytest.raises(ValueError, match="Unknown signature algorithm"):
        signature_algorithm("MD5WithRSA")
