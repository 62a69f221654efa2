"""Subject DN fields of end entity profiles: required / modifiable / validation regex / drop-downs, the
repeated-OU rule, forbidden characters, multi-value RDNs, merge DN, reverse checks and the DN fields
with a special encoding (PostalAddress, UniqueIdentifier, CertificationID). Tables from the seed."""

import pytest
from asn1crypto import core
from asn1crypto import x509 as a509
from cryptography.x509.oid import NameOID
from django.test import override_settings

from endentities.profilerules import java_matches
from endentities.subject import merge_dn_with_profile_defaults, validate_subject_dn
from pki.errors import ValidationError
from pki.x509.dn import escape_value
from tests.endentities.profile_support import field, make_profile


def _dn_profile(*fields, **kw):
    return make_profile(list(fields), **kw)


# --- validation regexes (Java Pattern, matches() = whole value) ------------------------------------------------

@pytest.mark.parametrize(
    ("regex", "value", "ok"),
    [
        # the seed's examples
        ("[0-9]+", "0123456789", True),
        ("[0-9]+", "12a", False),
        ("[0-9]+", "*", False),
        ("[0-9]+", "123abc", False),  # a prefix match is not enough (Java matches())
        ("[0-9A-Za-z]+", "Abc123", True),
        ("[0-9A-Za-z]+", "Abc 123", False),
        ("[0-9A-Za-z ]+", "Abc 123", True),
        ("[0-9A-Za-z ]+", "Abc-123", False),
        (".+@.+", "someone@example", True),
        (".+@.+", "someone", False),
        ("[a-zA-Z0-9+._-]+@[a-zA-Z0-9.-]+", "first.last+tag@mail.example.com", True),
        ("[a-zA-Z0-9+._-]+@[a-zA-Z0-9.-]+", "fürst@example.com", False),
        (r"[a-zA-Z0-9+._-]+@yourdomain\.com", "user@yourdomain.com", True),
        (r"[a-zA-Z0-9+._-]+@yourdomain\.com", "user@otherdomain.com", False),
        (r"[a-zA-Z0-9+._-]+@yourdomain\.com", "user@yourdomainXcom", False),
        (r"[a-zA-Z0-9._-]+\.yourdomain\.com", "www.yourdomain.com", True),
        (r"[a-zA-Z0-9._-]+\.yourdomain\.com", "yourdomain.com", False),  # not itself
        (r"[a-zA-Z0-9._-]+\.yourdomain\.com", "*.yourdomain.com", False),  # no wildcard
        (r"([a-zA-Z0-9._-]+\.)?yourdomain\.com", "yourdomain.com", True),
        (r"([a-zA-Z0-9._-]+\.)?yourdomain\.com", "a.b.yourdomain.com", True),
        (r"([a-zA-Z0-9._-]+\.)?yourdomain\.com", "*.yourdomain.com", False),
        ("^.{1,10}$", "1234567890", True),
        ("^.{1,10}$", "12345678901", False),
        ("^.{1,10}$", "", False),
        # case sensitive unless (?i)
        ("[a-z]+", "ABC", False),
        ("(?i)[a-z]+", "ABC", True),
        ("(?i)yourdomain\\.com", "YourDomain.COM", True),
        # Java POSIX classes
        (r"\p{Alpha}+", "abcXYZ", True),
        (r"\p{Digit}{4}", "2024", True),
        (r"\p{Upper}\p{Lower}+", "Sweden", True),
    ],
)
def test_validation_regex_java_semantics(regex, value, ok):
    assert java_matches(regex, value) is ok
    profile = _dn_profile(field("CN", validation=regex))
    if value == "":
        return
    dn = f"CN={escape_value(value)}"
    if ok:
        assert validate_subject_dn(profile, dn)[0] == dn
    else:
        with pytest.raises(ValidationError) as exc:
            validate_subject_dn(profile, dn)
        assert exc.value.field == "subject_dn"
        assert "COMMONNAME" in exc.value.message and "validation regex" in exc.value.message


def test_invalid_regex_in_profile_is_a_named_error():
    profile = _dn_profile(field("CN", validation="[a-z"))
    with pytest.raises(ValidationError, match="invalid regular expression"):
        validate_subject_dn(profile, "CN=abc")


# --- required, modifiable, drop-downs -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fields", "dn", "expected"),
    [
        ([field("CN", required=True)], "CN=Alice", "CN=Alice"),
        ([field("CN", required=True)], "", "Subject DN field 'COMMONNAME' must exist."),
        ([field("CN", required=True), field("O")], "O=Org", "Subject DN field 'COMMONNAME' must exist."),
        ([field("CN")], "CN=Alice,O=Org", "Subject DN field 'ORGANIZATION' is not allowed"),
        ([field("CN"), field("O", "PrimeKey", modifiable=False)], "CN=A,O=PrimeKey", "CN=A,O=PrimeKey"),
        ([field("CN"), field("O", "PrimeKey", modifiable=False)], "CN=A,O=Other", "is not modifiable"),
        # several values separated by ';' are a drop-down: any one of them, nothing else
        ([field("CN"), field("O", "Org A;Org B;Org C", modifiable=False)], "CN=A,O=Org B", "CN=A,O=Org B"),
        ([field("CN"), field("O", "Org A;Org B;Org C", modifiable=False)], "CN=A,O=Org D", "is not modifiable"),
        ([field("CN"), field("C", "SE", modifiable=True)], "CN=A,C=NO", "CN=A,C=NO"),
        ([field("CN"), field("C")], "CN=A,C=Sweden", "COUNTRY"),  # built-in format: two letters
        ([field("CN"), field("OU"), field("OU")], "CN=A,OU=1,OU=2,OU=3", "Wrong number of ORGANIZATIONALUNIT"),
        # attributes are written in EJBCA's order whatever order they came in
        ([field("C"), field("O"), field("CN")], "C=SE,O=Org,CN=A", "CN=A,O=Org,C=SE"),
        ([field("CN"), field("UID"), field("SN"), field("E")], "SN=123,UID=u1,CN=A,E=a@x.se",
         "E=a@x.se,UID=u1,CN=A,SN=123"),
    ],
)
def test_required_modifiable_dropdown(fields, dn, expected):
    profile = _dn_profile(*fields)
    if "=" in expected.split(" ")[0] or expected == "":
        assert validate_subject_dn(profile, dn)[0] == expected
    else:
        with pytest.raises(ValidationError) as exc:
            validate_subject_dn(profile, dn)
        assert exc.value.field == "subject_dn"
        assert expected in exc.value.message


# --- the repeated-OU rule (seed) --------------------------------------------------------------------------------

def _ou_profile(**kw):
    """First OU required and not modifiable (Bar1), three modifiable OUs, the last required (Bar2)."""
    return _dn_profile(
        field("CN", required=True),
        field("OU", "Bar1", required=True, modifiable=False),
        field("OU"), field("OU"), field("OU"),
        field("OU", "Bar2", required=True, modifiable=False),
        **kw,
    )


def test_repeated_ou_without_placeholders_fails_as_the_seed_says():
    with pytest.raises(ValidationError) as exc:
        validate_subject_dn(_ou_profile(), "CN=Foo,OU=Bar1,OU=Bar2")
    assert exc.value.message == "Subject DN field 'ORGANIZATIONALUNIT' must exist."
    assert exc.value.field == "subject_dn"


def test_repeated_ou_with_empty_placeholders_passes_and_drops_them():
    dn, name = validate_subject_dn(_ou_profile(), "CN=Foo,OU=Bar1,OU=,OU=,OU=,OU=Bar2")
    assert dn == "CN=Foo,OU=Bar1,OU=Bar2"
    # encoded least specific first: Bar2 comes before Bar1 in the DER
    assert [a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["Bar2", "Bar1"]


def test_repeated_ou_placeholder_positions_matter():
    # a value in a modifiable slot is kept; the last slot still has to be Bar2
    assert validate_subject_dn(_ou_profile(), "CN=Foo,OU=Bar1,OU=,OU=Mid,OU=,OU=Bar2")[0] == \
        "CN=Foo,OU=Bar1,OU=Mid,OU=Bar2"
    with pytest.raises(ValidationError, match="not modifiable"):
        validate_subject_dn(_ou_profile(), "CN=Foo,OU=Bar1,OU=,OU=,OU=,OU=Other")


def test_reverse_checks_match_values_from_the_end():
    profile = _dn_profile(field("CN"), field("OU"), field("OU", "Fixed", required=True, modifiable=False))
    # forward: the single OU lands in the first (optional) slot and the required last one is missing
    with pytest.raises(ValidationError, match="must exist"):
        validate_subject_dn(profile, "CN=a,OU=Fixed")
    profile.reverse_field_checks = True
    assert validate_subject_dn(profile, "CN=a,OU=Fixed")[0] == "CN=a,OU=Fixed"


# --- forbidden characters ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("char", ["\n", "\r", ";", "!", "\0", "%", "`", "?", "$", "~"])
def test_default_forbidden_characters_are_refused(char):
    profile = _dn_profile(field("CN"))
    with pytest.raises(ValidationError) as exc:
        validate_subject_dn(profile, f"CN=bad{char}value")
    assert exc.value.field == "subject_dn" and "forbidden character" in exc.value.message


def test_forbidden_characters_are_configurable():
    profile = _dn_profile(field("CN"))
    with override_settings(PKI_FORBIDDEN_CHARACTERS="#"):
        assert validate_subject_dn(profile, "CN=what?")[0] == "CN=what?"
        with pytest.raises(ValidationError, match="forbidden character '#'"):
            validate_subject_dn(profile, "CN=a#b")
    with override_settings(PKI_FORBIDDEN_CHARACTERS=""):
        assert validate_subject_dn(profile, "CN=100%")[0] == "CN=100%"


# --- multi-value RDNs -------------------------------------------------------------------------------------------

def test_multi_value_rdns_need_the_profile_option():
    profile = _dn_profile(field("CN"), field("UID"), field("O"))
    with pytest.raises(ValidationError, match="Multi-valued RDNs"):
        validate_subject_dn(profile, "CN=Tomas+UID=12345,O=Org")
    profile.allow_multi_value_rdns = True
    dn, name = validate_subject_dn(profile, "CN=Tomas+UID=12345,O=Org")
    assert dn == "CN=Tomas+UID=12345,O=Org"
    rdns = list(name.rdns)
    assert len(rdns) == 2 and len(rdns[1]) == 2  # encoded O first, then the two-attribute RDN


# --- merge DN (the seed's four examples) -------------------------------------------------------------------------

def _merge_profile(defaults: str):
    fields = [field("CN")]
    for part in defaults.split(","):
        key, value = part.split("=")
        fields.append(field(key, value))
    for key in ("O", "C"):
        if not any(f["type"] == key for f in fields):
            fields.append(field(key))
    return _dn_profile(*fields, allow_merge_dn=True)


@pytest.mark.parametrize(
    ("defaults", "given", "merged"),
    [
        ("OU=OrgUnit", "CN=Username,O=Org,C=SE", "CN=Username,OU=OrgUnit,O=Org,C=SE"),
        ("OU=OrgUnit,OU=OrgUnit2", "CN=Username,O=Org,C=SE", "CN=Username,OU=OrgUnit,OU=OrgUnit2,O=Org,C=SE"),
        ("OU=OrgUnit,O=Org2,C=SE", "CN=Username", "CN=Username,OU=OrgUnit,O=Org2,C=SE"),
        ("OU=Org1,OU=Org2,OU=,OU=,C=SE", "CN=Username,OU=Org3,OU=Org4",
         "CN=Username,OU=Org1,OU=Org2,OU=Org3,OU=Org4,C=SE"),
    ],
)
def test_merge_dn_seed_examples(defaults, given, merged):
    profile = _merge_profile(defaults)
    assert merge_dn_with_profile_defaults(profile, given) == merged
    assert validate_subject_dn(profile, given, merge=True)[0] == merged


def test_without_merge_the_defaults_are_not_added():
    profile = _merge_profile("OU=OrgUnit,O=Org2,C=SE")
    assert validate_subject_dn(profile, "CN=Username", merge=False)[0] == "CN=Username"


def test_merge_keeps_given_values_of_a_type_the_profile_has_no_free_slot_for():
    profile = _merge_profile("OU=OrgUnit")
    assert merge_dn_with_profile_defaults(profile, "CN=U,OU=Mine") == "CN=U,OU=Mine"


# --- DN fields with special encodings -------------------------------------------------------------------------

def _attribute_value(name, oid: str) -> core.Asn1Value:
    """The raw value of the attribute ``oid`` in the DER of ``name``, read with asn1crypto."""
    for rdn in a509.Name.load(name.public_bytes()).chosen:
        for atv in rdn:
            if atv["type"].dotted == oid:
                return core.load(core.Sequence.load(atv.dump())[1].dump())  # raw: no spec of asn1crypto's
    raise AssertionError(f"{oid} not in the name")


POSTAL_ADDRESS_DER = core.SequenceOf(spec=core.UTF8String, value=["Street 1", "12345 Town"]).dump()


@pytest.mark.parametrize(
    ("dn", "oid", "expected_der"),
    [
        # '#' + hex: the DER is written as given (PostalAddress is a SEQUENCE OF DirectoryString)
        (f"CN=A,POSTALADDRESS=#{POSTAL_ADDRESS_DER.hex()}", "2.5.4.16", POSTAL_ADDRESS_DER),
        # plain text: a simple UTF8String
        ("CN=A,POSTALADDRESS=Street 1", "2.5.4.16", core.UTF8String("Street 1").dump()),
        # uniqueIdentifier: BIT STRING given as hex DER, or UTF8String text
        ("CN=A,UNIQUEIDENTIFIER=#030200ff", "2.5.4.45", bytes.fromhex("030200ff")),
        ("CN=A,UNIQUEIDENTIFIER=N62892", "2.5.4.45", core.UTF8String("N62892").dump()),
        # CertificationID (BSI TR-03145-5): SEQUENCE { INTEGER version, PrintableString(18) }
        ("CN=Some Common Name,CERTIFICATIONID=BSI-K-TR-1234-2023,C=DE", "0.4.0.127.0.7.3.10.1.2",
         bytes.fromhex("3017020101" "1312") + b"BSI-K-TR-1234-2023"),
    ],
)
def test_special_dn_encodings(dn, oid, expected_der):
    fields = [field("CN"), field("POSTALADDRESS"), field("UNIQUEIDENTIFIER"), field("CERTIFICATIONID"), field("C")]
    normalized, name = validate_subject_dn(_dn_profile(*fields), dn)
    assert _attribute_value(name, oid).dump() == expected_der
    # the normalized string reads back to the same name
    assert validate_subject_dn(_dn_profile(*fields), normalized)[1] == name


def test_certification_id_parses_as_the_bsi_sequence():
    _, name = validate_subject_dn(_dn_profile(field("CN"), field("CERTIFICATIONID")),
                                  "CN=x,CertificationID=BSI-K-TR-0042-2024")
    seq = core.Sequence.load(_attribute_value(name, "0.4.0.127.0.7.3.10.1.2").dump())
    assert seq[0].native == 1 and isinstance(seq[1], core.PrintableString)
    assert seq[1].native == "BSI-K-TR-0042-2024" and len(seq[1].native) == 18


@pytest.mark.parametrize(
    ("dn", "message"),
    [
        ("CN=x,CERTIFICATIONID=BSI-K-TR-123-2023", "BSI-K-TR-NNNN-YYYY"),  # 17 characters
        ("CN=x,CERTIFICATIONID=BSI-X-TR-1234-2023", "BSI-K-TR-NNNN-YYYY"),
        ("CN=x,POSTALADDRESS=#30zz", "hex-encoded DER"),
        ("CN=x,POSTALADDRESS=#3005", "DER"),  # truncated
        ("CN=x,UNIQUEIDENTIFIER=#", "hex-encoded DER"),
    ],
)
def test_special_dn_encoding_errors(dn, message):
    profile = _dn_profile(field("CN"), field("POSTALADDRESS"), field("UNIQUEIDENTIFIER"), field("CERTIFICATIONID"))
    with pytest.raises(ValidationError) as exc:
        validate_subject_dn(profile, dn)
    assert exc.value.field == "subject_dn" and message in exc.value.message


def test_any_dn_profile_accepts_every_attribute_but_still_checks_formats():
    profile = _dn_profile(field("CN"), any_dn=True)
    dn, _ = validate_subject_dn(profile, "CN=a,OU=b,OU=c,L=d,1.2.3.4=x,C=SE")
    assert dn == "CN=a,OU=b,OU=c,L=d,C=SE,1.2.3.4=x"
    with pytest.raises(ValidationError, match="COUNTRY"):
        validate_subject_dn(profile, "CN=a,C=SWE")
    with pytest.raises(ValidationError, match="forbidden"):
        validate_subject_dn(profile, "CN=a;b")


def test_unparseable_dn_names_the_field():
    with pytest.raises(ValidationError) as exc:
        validate_subject_dn(_dn_profile(field("CN")), "CN=a,FOO=b")
    assert exc.value.field == "subject_dn" and "FOO" in exc.value.message


@pytest.mark.parametrize(
    "dn",
    ["CN=a,3.1=x", "CN=a,0.99999999999999999999=x", "CN=a+CN=a", "UID=x+UID=x,CN=a", "CN=a,\"O=b", "=x", "CN=a,,O=b"],
)
def test_malformed_dns_are_validation_errors(dn):
    """Found by fuzzing: every malformed DN is a ValidationError on subject_dn, never another exception."""
    profile = _dn_profile(field("CN"), any_dn=True, allow_multi_value_rdns=True)
    with pytest.raises(ValidationError) as exc:
        validate_subject_dn(profile, dn)
    assert exc.value.field == "subject_dn"


@pytest.mark.parametrize(
    ("dn", "message"),
    [
        ("CN=a,SN=abc_def", "PrintableString"),  # '_' is not a PrintableString character
        ("CN=a,SN=Åsa", "PrintableString"),
        ("CN=a,E=dé@example.com", "IA5String"),
        ("CN=a,DC=exämple", "IA5String"),
    ],
)
def test_values_their_string_type_cannot_hold_are_refused(dn, message):
    """cryptography would write them as invalid DER; the profile refuses them with the type's name."""
    profile = _dn_profile(field("CN"), any_dn=True)
    with pytest.raises(ValidationError) as exc:
        validate_subject_dn(profile, dn)
    assert exc.value.field == "subject_dn" and message in exc.value.message


def test_printable_string_values_are_kept():
    profile = _dn_profile(field("CN"), field("SN"), field("DN"))
    # written in EJBCA's order
    assert validate_subject_dn(profile, "CN=a,SN=ABC-123 (x)/y:z,DN=q")[0] == "DN=q,CN=a,SN=ABC-123 (x)/y:z"


def test_merge_leaves_a_type_given_inside_a_multi_valued_rdn_alone():
    profile = _dn_profile(field("CN"), field("UID", "default-uid"), field("O", "Org"), allow_merge_dn=True,
                          allow_multi_value_rdns=True)
    assert validate_subject_dn(profile, "CN=a+UID=mine", merge=True)[0] == "CN=a+UID=mine,O=Org"
    assert validate_subject_dn(profile, "CN=a", merge=True)[0] == "UID=default-uid,CN=a,O=Org"
