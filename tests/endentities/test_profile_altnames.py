"""Subject alternative name fields: every type encoded as its RFC says (read back with cryptography and
asn1crypto), the entity e-mail / CN options, the 100-name limit, SIM, FASC-N, permanentIdentifier."""

import hashlib
import ipaddress

import pytest
from asn1crypto import core
from asn1crypto import parser as asn1_parser
from asn1crypto import x509 as a509
from cryptography import x509

from endentities.subject import validate_alt_names, validate_subject_dn
from pki.errors import ValidationError
from pki.x509.altnames import format_altnames
from pki.x509.othernames import SIM, KRB5PrincipalName, PermanentIdentifier, compute_sim, verify_sim
from tests.endentities.profile_support import field, make_profile

ALL_TYPES = ["RFC822NAME", "DNSNAME", "IPADDRESS", "URI", "DIRECTORYNAME", "REGISTEREDID", "UPN", "GUID",
             "KRB5PRINCIPAL", "PERMANENTIDENTIFIER", "SUBJECTIDENTIFICATIONMETHOD", "FASCN", "XMPPADDR", "SRVNAME"]
FASCN_SEED = "0419d23210d8210c2c1a843085a16858300842108608823210c3e1"


def _profile(*alt, **kw):
    return make_profile([field("CN")], list(alt), **kw)


def _one(value_text: str, key: str):
    """Validate one alt name of type ``key``; return (normalized string, GeneralName, asn1crypto GeneralName)."""
    text, names = validate_alt_names(_profile(field(key)), value_text)
    assert len(names) == 1
    der = x509.SubjectAlternativeName(names).public_bytes()
    parsed = a509.GeneralNames.load(der)[0]
    return text, names[0], parsed


@pytest.mark.parametrize(
    ("text", "key", "gn_class", "asn1_name", "asn1_value"),
    [
        ("RFC822NAME=user@example.com", "RFC822NAME", x509.RFC822Name, "rfc822_name", "user@example.com"),
        ("DNSNAME=host.example.com", "DNSNAME", x509.DNSName, "dns_name", "host.example.com"),
        ("IPADDRESS=192.0.2.7", "IPADDRESS", x509.IPAddress, "ip_address", "192.0.2.7"),
        ("IPADDRESS=2001:DB8:85A3:0:0:8A2E:370:7334", "IPADDRESS", x509.IPAddress, "ip_address",
         "2001:db8:85a3::8a2e:370:7334"),
        ("URI=https://example.com/path?x=1", "URI", x509.UniformResourceIdentifier, "uniform_resource_identifier",
         "https://example.com/path?x=1"),
        ("REGISTEREDID=1.2.3.4.5", "REGISTEREDID", x509.RegisteredID, "registered_id", "1.2.3.4.5"),
    ],
)
def test_general_name_choices(text, key, gn_class, asn1_name, asn1_value):
    _, gn, parsed = _one(text, key)
    assert isinstance(gn, gn_class)
    assert parsed.name == asn1_name
    native = parsed.native
    if asn1_name == "ip_address":
        assert ipaddress.ip_address(native) == ipaddress.ip_address(asn1_value)
    else:
        assert native == asn1_value


def test_directory_name_is_ldap_escaped():
    text, gn, parsed = _one(r"DIRECTORYNAME=CN=Tomas\\\,Gustavsson\,O=PrimeKey\,C=SE", "DIRECTORYNAME")
    assert isinstance(gn, x509.DirectoryName)
    assert parsed.name == "directory_name"
    assert parsed.chosen.native == {"country_name": "SE", "organization_name": "PrimeKey",
                                    "common_name": "Tomas,Gustavsson"}
    assert validate_alt_names(_profile(field("DIRECTORYNAME")), text)[1] == [gn]  # round trip


def _other_name(parsed) -> tuple[str, bytes]:
    assert parsed.name == "other_name"
    class_, _, tag, _, contents, _ = asn1_parser.parse(parsed.chosen["value"].dump())  # [0] EXPLICIT wrapper
    assert (class_, tag) == (2, 0)
    return parsed.chosen["type_id"].dotted, contents


@pytest.mark.parametrize(
    ("text", "key", "type_id", "value_der"),
    [
        ("UPN=user@corp.example.com", "UPN", "1.3.6.1.4.1.311.20.2.3", core.UTF8String("user@corp.example.com").dump()),
        ("GUID=f81d4fae7dec11d0a76500a0c91e6bf6", "GUID", "1.3.6.1.4.1.311.25.1",
         core.OctetString(bytes.fromhex("f81d4fae7dec11d0a76500a0c91e6bf6")).dump()),
        ("XMPPADDR=tomas@xmpp.domain.com", "XMPPADDR", "1.3.6.1.5.5.7.8.5",
         core.UTF8String("tomas@xmpp.domain.com").dump()),
        ("SRVNAME=_Service.Name", "SRVNAME", "1.3.6.1.5.5.7.8.7", core.IA5String("_Service.Name").dump()),
        # the seed's example is the whole DER OCTET STRING (04 19 + 25 bytes): written as given
        (f"FASCN={FASCN_SEED}", "FASCN", "2.16.840.1.101.3.6.6", bytes.fromhex(FASCN_SEED)),
        ("FASCN=d23210d8210c2c1a843085a16858300842108608823210c3e1", "FASCN", "2.16.840.1.101.3.6.6",
         bytes.fromhex(FASCN_SEED)),
    ],
)
def test_other_names(text, key, type_id, value_der):
    _, gn, parsed = _one(text, key)
    assert isinstance(gn, x509.OtherName) and gn.type_id.dotted_string == type_id
    # OtherName value is [0] EXPLICIT: asn1crypto gives the inner value's DER
    got_type, got = _other_name(parsed)
    assert got_type == type_id
    assert core.load(got).dump() == value_der


@pytest.mark.parametrize(
    ("value", "realm", "names"),
    [
        ("user@PRIMEKEY.COM", "PRIMEKEY.COM", ["user"]),
        ("krbtgt/PRIMEKEY.COM@PRIMEKEY.COM", "PRIMEKEY.COM", ["krbtgt", "PRIMEKEY.COM"]),
    ],
)
def test_krb5_principal_name(value, realm, names):
    _, gn, parsed = _one(f"KRB5PRINCIPAL={value}", "KRB5PRINCIPAL")
    type_id, der = _other_name(parsed)
    assert type_id == "1.3.6.1.5.2.2"
    principal = KRB5PrincipalName.load(der)
    assert principal["realm"].native == realm
    assert principal["principal_name"]["name_string"].native == names
    assert principal["principal_name"]["name_type"].native == 1
    assert isinstance(principal["realm"], core.GeneralString)
    assert format_altnames([gn]) == f"KRB5PRINCIPAL={value}"


@pytest.mark.parametrize(
    ("value", "identifier", "assigner"),
    [
        ("123456789/1.2.3.4", "123456789", "1.2.3.4"),
        (r"ab\/cd/1.2.3.4", "ab/cd", "1.2.3.4"),  # a '/' in the value is escaped
        ("123456789/", "123456789", None),
        ("/1.2.3.4", None, "1.2.3.4"),
        ("123456789", "123456789", None),
    ],
)
def test_permanent_identifier(value, identifier, assigner):
    _, gn, parsed = _one(f"PERMANENTIDENTIFIER={value}", "PERMANENTIDENTIFIER")
    type_id, der = _other_name(parsed)
    assert type_id == "1.3.6.1.5.5.7.8.3"
    pid = PermanentIdentifier.load(der)
    assert pid["identifier_value"].native == identifier
    assert pid["assigner"].native == assigner


def test_permanent_identifier_unescaped_slash_is_refused():
    with pytest.raises(ValidationError, match=r"escape '/'"):
        validate_alt_names(_profile(field("PERMANENTIDENTIFIER")), "PERMANENTIDENTIFIER=a/b/1.2.3")


SHA256 = "2.16.840.1.101.3.4.2.1"


def test_subject_identification_method_is_computed_and_stored():
    params = f"{SHA256}::password123::1.2.410.200004.10.1.1.10.1::SIIValue"
    text, names = validate_alt_names(_profile(field("SUBJECTIDENTIFICATIONMETHOD")),
                                     f"SUBJECTIDENTIFICATIONMETHOD={params}")
    stored = text.split("=", 1)[1]
    hash_oid, r_hex, pepsi_hex = stored.split("::")
    assert hash_oid == SHA256 and len(bytes.fromhex(r_hex)) == 32 and len(bytes.fromhex(pepsi_hex)) == 32
    assert "password123" not in text  # the password is never stored
    # PEPSI = H(H(P || R || SIItype || SII)), RFC 4683
    inner = hashlib.sha256(b"password123" + bytes.fromhex(r_hex)
                           + core.ObjectIdentifier("1.2.410.200004.10.1.1.10.1").dump() + b"SIIValue").digest()
    assert hashlib.sha256(inner).hexdigest() == pepsi_hex
    assert verify_sim(stored, "password123", "1.2.410.200004.10.1.1.10.1", "SIIValue")
    assert not verify_sim(stored, "wrong", "1.2.410.200004.10.1.1.10.1", "SIIValue")
    # encoded as the SIM SEQUENCE
    parsed = a509.GeneralNames.load(x509.SubjectAlternativeName(names).public_bytes())[0]
    type_id, der = _other_name(parsed)
    sim = SIM.load(der)
    assert type_id == "1.3.6.1.5.5.7.8.6"
    assert sim["hash_alg"]["algorithm"].dotted == SHA256
    assert sim["authority_random"].native.hex() == r_hex and sim["pepsi"].native.hex() == pepsi_hex
    # a different value every time (random R); the stored form is accepted again as it is (edits)
    assert compute_sim(params) != compute_sim(params)
    assert validate_alt_names(_profile(field("SUBJECTIDENTIFICATIONMETHOD")), text)[0] == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.2.3::pw::1.2.3::x", "hash algorithm"),
        (f"{SHA256}::pässword::1.2.3::x", "printable"),
        (f"{SHA256}::pw::notanoid::x", "SII type"),
        (f"{SHA256}::pw::1.2.3::", "SII value"),
    ],
)
def test_sim_parameter_errors(value, message):
    with pytest.raises(ValidationError) as exc:
        validate_alt_names(_profile(field("SUBJECTIDENTIFICATIONMETHOD")), f"SUBJECTIDENTIFICATIONMETHOD={value}")
    assert exc.value.field == "subject_alt_name" and message in exc.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FASCN=" + "00" * 26, "at most 25"),
        ("FASCN=xyz", "is not of the form hex"),
        ("GUID=1234", "16 bytes"),
        ("SRVNAME=Service.Name", "_Service.Name"),
        ("KRB5PRINCIPAL=nouser", "principal1/principal2@REALM"),
        ("IPADDRESS=999.1.1.1", "IPADDRESS"),
        ("RFC822NAME=nobody", "not an e-mail"),
    ],
)
def test_alt_name_format_errors(text, message):
    key = text.split("=")[0]
    with pytest.raises(ValidationError) as exc:
        validate_alt_names(_profile(field(key)), text)
    assert exc.value.field == "subject_alt_name" and message in exc.value.message


def test_every_alt_name_type_round_trips_through_a_san_extension():
    values = {
        "RFC822NAME": "a@example.com", "DNSNAME": "a.example.com", "IPADDRESS": "10.1.2.3", "URI": "urn:x:y",
        "DIRECTORYNAME": r"CN=Dir\,O=Org", "REGISTEREDID": "1.2.3", "UPN": "a@corp", "GUID": "00" * 16,
        "KRB5PRINCIPAL": "a/b@R", "PERMANENTIDENTIFIER": "v/1.2.3",
        "SUBJECTIDENTIFICATIONMETHOD": f"{SHA256}::{'00' * 32}::{'11' * 32}", "FASCN": "ab" * 25,
        "XMPPADDR": "a@xmpp", "SRVNAME": "_xmpp.example.com",
    }
    assert set(values) == set(ALL_TYPES)
    profile = _profile(*[field(k) for k in ALL_TYPES])
    text = ", ".join(f"{k}={v}" for k, v in values.items())
    normalized, names = validate_alt_names(profile, text)
    ext = x509.SubjectAlternativeName(names)
    assert format_altnames(ext) == normalized
    assert len(a509.GeneralNames.load(ext.public_bytes())) == len(ALL_TYPES)


# --- profile options -------------------------------------------------------------------------------------------

def test_use_entity_email_and_cn():
    profile = _profile(field("RFC822NAME", use_entity_email=True, required=True),
                       field("DNSNAME", use_entity_cn=True), field("DNSNAME"))
    subject = validate_subject_dn(profile, "CN=www.example.com")[1]
    text, _ = validate_alt_names(profile, "DNSNAME=other.example.com", email="me@example.com", subject=subject)
    assert text == "RFC822NAME=me@example.com, DNSNAME=www.example.com, DNSNAME=other.example.com"
    # giving the same values explicitly is fine; a different e-mail is not
    assert validate_alt_names(profile, "RFC822NAME=me@example.com, DNSNAME=www.example.com",
                              email="me@example.com", subject=subject)[0] == \
        "RFC822NAME=me@example.com, DNSNAME=www.example.com"
    with pytest.raises(ValidationError, match="Wrong number of RFC822NAME"):
        validate_alt_names(profile, "RFC822NAME=other@example.com", email="me@example.com", subject=subject)
    # required and taken from the e-mail: no e-mail, no alt name
    with pytest.raises(ValidationError, match="'RFC822NAME' must exist"):
        validate_alt_names(profile, "", email="", subject=subject)


def test_rfc822_name_domain_and_fixed_address():
    profile = _profile(field("RFC822NAME", "example.com"))
    assert validate_alt_names(profile, "RFC822NAME=alice")[0] == "RFC822NAME=alice@example.com"
    assert validate_alt_names(profile, "RFC822NAME=alice@other.org")[0] == "RFC822NAME=alice@other.org"
    fixed = _profile(field("RFC822NAME", "info@example.com", modifiable=False))
    assert validate_alt_names(fixed, "RFC822NAME=info@example.com")[0] == "RFC822NAME=info@example.com"
    with pytest.raises(ValidationError, match="not modifiable"):
        validate_alt_names(fixed, "RFC822NAME=alice@example.com")


def test_alt_name_required_regex_and_placeholders():
    profile = _profile(field("DNSNAME", required=True, validation=r"([a-z0-9-]+\.)?example\.com"),
                       field("DNSNAME"), field("IPADDRESS"))
    assert validate_alt_names(profile, "DNSNAME=www.example.com, DNSNAME=, IPADDRESS=10.0.0.1")[0] == \
        "DNSNAME=www.example.com, IPADDRESS=10.0.0.1"
    with pytest.raises(ValidationError, match="validation regex"):
        validate_alt_names(profile, "DNSNAME=www.example.org")
    with pytest.raises(ValidationError, match="'DNSNAME' must exist"):
        validate_alt_names(profile, "IPADDRESS=10.0.0.1")
    with pytest.raises(ValidationError, match="not allowed by the end entity profile"):
        validate_alt_names(profile, "DNSNAME=a.example.com, URI=http://x")


def test_at_most_100_alt_names():
    profile = _profile(*[field("DNSNAME") for _ in range(101)])
    ok = ", ".join(f"DNSNAME=h{i}.example.com" for i in range(100))
    assert len(validate_alt_names(profile, ok)[1]) == 100
    with pytest.raises(ValidationError) as exc:
        validate_alt_names(profile, ok + ", DNSNAME=h100.example.com")
    assert exc.value.field == "subject_alt_name" and "At most 100" in exc.value.message


def test_forbidden_characters_in_alt_names_but_not_uris():
    profile = _profile(field("DNSNAME"), field("URI"))
    with pytest.raises(ValidationError, match="forbidden character"):
        validate_alt_names(profile, "DNSNAME=a$b.example.com")
    assert validate_alt_names(profile, "URI=https://x.example/?q=1%202")[0] == "URI=https://x.example/?q=1%202"


def test_commas_in_values_are_escaped():
    profile = _profile(field("URI"))
    text, names = validate_alt_names(profile, r"URI=urn:a\,b")
    assert text == r"URI=urn:a\,b" and names[0].value == "urn:a,b"
