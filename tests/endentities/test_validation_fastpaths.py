"""The quick paths of end entity validation (issue 4) give what the general code gives: the precompiled
per-profile rules (TypeRules) against match_instances, their cache against a profile whose fields are
replaced, and the directly built GeneralNames and DN parts against the checked constructors."""

import ipaddress
import random

import pytest
from cryptography import x509

from endentities.fields import DN_TYPES
from endentities.profilerules import TypeRules, match_instances
from endentities.subject import validate_alt_names, validate_subject_dn_pairs
from pki.errors import ValidationError
from pki.x509.altnames import AltNameError, general_name, parse_altname_pairs, quick_general_name
from pki.x509.dn import DNError, escape_value, name_from_pairs, needs_escape_any, parse_dn, parse_dn_pairs
from tests.endentities.profile_support import field, make_profile


def _outcome(fn):
    try:
        return ("ok", fn())
    except ValidationError as exc:
        return ("error", str(exc), exc.field)


OU_INSTANCES = [field("OU", "Engineering", required=True, modifiable=False), field("OU", validation="[A-Z][a-z]+"),
                field("OU"), field("OU", "Sales;Support", modifiable=False)]


@pytest.mark.parametrize("reverse", [False, True])
def test_type_rules_agree_with_match_instances(reverse):
    """Every outcome (values kept, or the exact error) of the precompiled rules is match_instances'."""
    ftype = DN_TYPES["OU"]
    rules = TypeRules(ftype, OU_INSTANCES)
    rng = random.Random(4)
    pool = ["", "Engineering", "Platform", "platform", "Sales", "Support", "x" * 70, "Other"]
    for _ in range(3000):
        values = [rng.choice(pool) for _ in range(rng.randint(0, 5))]
        expected = _outcome(lambda: match_instances(ftype, OU_INSTANCES, values, reverse=reverse, field="subject_dn"))
        assert _outcome(lambda: rules.check(values, reverse, "subject_dn")) == expected, values


def test_type_rules_with_a_broken_regex_use_the_general_path():
    ftype = DN_TYPES["CN"]
    instances = [field("CN", validation="[a-z")]
    rules = TypeRules(ftype, instances)
    assert rules.rules is None
    with pytest.raises(ValidationError, match="invalid regular expression"):
        rules.check(["abc"], False, "subject_dn")


def test_profile_rules_follow_replaced_fields():
    """The compiled rules are kept on the profile instance; replacing its field list takes effect at once."""
    profile = make_profile([field("CN", validation="[a-z]+")], [field("DNSNAME")])
    assert validate_subject_dn_pairs(profile, "CN=abc")[0] == "CN=abc"
    profile.subject_dn_fields = [field("CN", validation="[0-9]+")]
    with pytest.raises(ValidationError, match="does not match the validation regex"):
        validate_subject_dn_pairs(profile, "CN=abc")
    assert validate_alt_names(profile, "DNSNAME=a.example.com")[0] == "DNSNAME=a.example.com"
    profile.subject_alt_name_fields = [field("DNSNAME", required=True), field("DNSNAME")]
    with pytest.raises(ValidationError, match="must exist"):
        validate_alt_names(profile, "")


def test_dn_outside_the_profile_and_any_dn():
    profile = make_profile([field("CN"), field("O", required=True)])
    with pytest.raises(ValidationError, match="'ORGANIZATION' must exist"):
        validate_subject_dn_pairs(profile, "CN=a")
    with pytest.raises(ValidationError, match="not allowed by the end entity profile"):
        validate_subject_dn_pairs(profile, "CN=a,O=b,L=c")
    with pytest.raises(ValidationError, match="Subject DN attribute 1.2.3.4 is not allowed"):
        validate_subject_dn_pairs(profile, "CN=a,O=b,1.2.3.4=x")
    any_dn = make_profile([field("O", required=True)], any_dn=True)
    assert validate_subject_dn_pairs(any_dn, "CN=a,O=b,L=c,1.2.3.4=x")[0] == "CN=a,O=b,L=c,1.2.3.4=x"
    with pytest.raises(ValidationError, match="'ORGANIZATION' must exist"):
        validate_subject_dn_pairs(any_dn, "CN=a")


# --- DN parts --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("dn", "expected"),
    [
        ("CN=a,O=b", [[("CN", "a")], [("O", "b")]]),
        (" cn = a , o=b ,", [[("CN", "a")], [("O", "b")]]),  # spaces and a trailing comma
        ("CN=a,OID.2.5.4.10=b,1.2.3.4=c", [[("CN", "a")], [("O", "b")], [("1.2.3.4", "c")]]),
        ("CN=a,OU=", [[("CN", "a")], [("OU", "")]]),
        ("CN=a=b", [[("CN", "a=b")]]),
    ],
)
def test_plain_dn_parsing(dn, expected):
    assert parse_dn_pairs(dn) == expected


@pytest.mark.parametrize(
    ("dn", "message"),
    [("CN=a,,O=b", "Empty RDN in DN 'CN=a,,O=b'"), (",CN=a", "Empty RDN"),
     ("CN=a,foo", "Missing '=' in DN component 'foo'"), ("CN=a,FOO=b", "Unknown DN attribute 'FOO'"),
     ("CN=a,=b", "Unknown DN attribute ''"), (",", "Empty RDN")],
)
def test_plain_dn_parsing_errors(dn, message):
    with pytest.raises(DNError, match=message):
        parse_dn_pairs(dn)


def test_needs_escape_any_agrees_with_escape_value():
    rng = random.Random(7)
    alphabet = 'a ,#+"\\<>;=\x00'
    for _ in range(20000):
        values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(0, 4))]
        if any(escape_value(v) != v for v in values):
            assert needs_escape_any(values), values
    assert not needs_escape_any(["Alice", "Example AB", "SE"])


def test_name_parts_built_directly_encode_like_the_checked_constructors():
    dn = "CN=Alice,SN=123,E=a@example.com,OU=Unit,O=Org,L=Town,DC=example,C=SE,UID=alice"
    name = name_from_pairs(parse_dn_pairs(dn))
    checked = x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(a.oid, a.value, a._type)])
                         for rdn in name.rdns for a in rdn])
    assert name == checked and name.public_bytes() == checked.public_bytes()
    assert hash(name) == hash(checked)
    with pytest.raises(DNError, match="length must be"):
        parse_dn("CN=a,C=S")  # below C's length: cryptography's own check, still run for C
    with pytest.raises(DNError, match="PrintableString"):
        parse_dn("SN=12_3")


# --- GeneralNames ----------------------------------------------------------------------------------------------

GOOD = [
    ("DNSNAME", "a.example.com"), ("RFC822NAME", "a.b+c@example.com"), ("RFC822NAME", '"a b"@example.com'),
    ("IPADDRESS", "192.0.2.1"), ("IPADDRESS", "2001:DB8:0::1"),
    ("IPADDRESS", "::ffff:192.0.2.1"), ("URI", "https://example.com/a"), ("UPN", "a@corp.example.com"),
    ("PERMANENTIDENTIFIER", "123/1.2.3.4"), ("PERMANENTIDENTIFIER", "123/"), ("KRB5PRINCIPAL", "a/b@EXAMPLE.COM"),
    ("XMPPADDR", "a@example.com"), ("SRVNAME", "_ldap.example.com"), ("GUID", "00112233445566778899aabbccddeeff"),
]
BAD = [
    ("DNSNAME", "ä.example.com"), ("RFC822NAME", "nobody"), ("RFC822NAME", "Alice <a@example.com>"),
    ("IPADDRESS", "192.0.2.256"), ("IPADDRESS", "01.2.3.4"), ("IPADDRESS", "2001:db8::g"), ("URI", "https://ä"),
    ("PERMANENTIDENTIFIER", "1/2/3"), ("PERMANENTIDENTIFIER", "1/x.y"), ("KRB5PRINCIPAL", "nobody"),
    ("SRVNAME", "ldap"), ("DNSNAME", ""),
]


@pytest.mark.parametrize(("key", "value"), GOOD)
def test_quick_general_names_equal_the_checked_ones(key, value):
    quick = quick_general_name(key, value)
    assert quick == general_name.__wrapped__(key, value)
    assert type(quick) is type(general_name.__wrapped__(key, value))


@pytest.mark.parametrize(("key", "value"), BAD)
def test_quick_general_names_refuse_with_the_same_message(key, value):
    with pytest.raises(AltNameError) as quick:
        quick_general_name(key, value)
    with pytest.raises(AltNameError) as checked:
        general_name.__wrapped__(key, value)
    assert str(quick.value) == str(checked.value)


def test_plain_email_fast_path_matches_parseaddr():
    """An address the quick path builds without cryptography's parseaddr check is one that check accepts."""
    rng = random.Random(3)
    alphabet = "aZ09_+-.@"

    def outcome(fn, value):
        try:
            return fn("RFC822NAME", value)
        except AltNameError as exc:
            return str(exc)

    for _ in range(20000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        assert outcome(quick_general_name, value) == outcome(general_name.__wrapped__, value), value


def test_alt_names_stored_string_is_canonical():
    profile = make_profile(alt=[field("IPADDRESS"), field("IPADDRESS"), field("URI"), field("DIRECTORYNAME")])
    text, names = validate_alt_names(
        profile, r"IPADDRESS=192.0.2.1, IPADDRESS=2001:DB8:0:0::1, URI=https://x/a\,b, DIRECTORYNAME=CN=a\\\,b\,O=Org")
    assert text == r"IPADDRESS=192.0.2.1, IPADDRESS=2001:db8::1, URI=https://x/a\,b, DIRECTORYNAME=CN=a\\\,b\,O=Org"
    assert names[1] == x509.IPAddress(ipaddress.ip_address("2001:db8::1"))
    assert parse_altname_pairs(text)[2] == ("URI", "https://x/a,b")
