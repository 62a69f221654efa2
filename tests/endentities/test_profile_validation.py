"""validate_end_entity against saved profiles: CA and certificate profile choice, token types, validity
start/end, custom extension data, revocation reason, PSD2 and CA/B Forum data, counters and flags."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from endentities.choices import TokenType
from endentities.extended import parse_properties, parse_validity_time
from endentities.models import EndEntityProfile
from endentities.validation import EndEntityInput, validate_end_entity
from pki.errors import ValidationError
from pki.models import CertificateProfile
from tests.endentities.profile_support import field

CUSTOM_EXTENSIONS = [
    {"oid": "1.5.6", "critical": False, "encoding": "UTF8String", "dynamic": True},
    {"oid": "1.2.3.4", "critical": False, "encoding": "RAW", "dynamic": True},
    {"oid": "1.2.3.5", "critical": False, "encoding": "UTF8String", "value": "static", "dynamic": False},
]


@pytest.fixture
def cert_profile(builtin_profiles):
    return CertificateProfile.objects.create(
        name="EEVAL", allow_validity_override=True, validity="2y", key_usage=["digitalSignature"],
        custom_extensions=CUSTOM_EXTENSIONS,
    )


@pytest.fixture
def ee_profile(root_ca, cert_profile, profile):
    p = EndEntityProfile.objects.create(
        name="Validated", any_ca=False, default_ca=root_ca, default_certificate_profile=cert_profile,
        subject_dn_fields=[field("CN", required=True), field("O", "Org", modifiable=False), field("C")],
        subject_alt_name_fields=[field("DNSNAME", use_entity_cn=True), field("RFC822NAME", use_entity_email=True)],
        password_min_strength_bits=55, email_domain="example.com",
    )
    p.available_cas.add(root_ca)
    p.available_certificate_profiles.add(cert_profile, profile)
    return p


def _input(**kw):
    base = {"username": "alice", "password": "foobar123", "subject_dn": "CN=alice.example.com,O=Org,C=SE",
            "email": "alice"}
    base.update(kw)
    return EndEntityInput(**base)


def test_valid_end_entity_with_defaults(ee_profile, root_ca, cert_profile):
    v = validate_end_entity(ee_profile, _input())
    assert (v.username, v.password, v.password_generated) == ("alice", "foobar123", False)
    assert v.subject_dn == "CN=alice.example.com,O=Org,C=SE"
    assert v.email == "alice@example.com"
    assert v.subject_alt_name == "DNSNAME=alice.example.com, RFC822NAME=alice@example.com"
    assert v.ca == root_ca and v.certificate_profile == cert_profile
    assert v.token_type == TokenType.USERGENERATED
    kwargs = v.issuance_kwargs()
    assert kwargs["profile"] == cert_profile and kwargs["subject_dn"] == v.subject_dn


@pytest.mark.parametrize(
    ("overrides", "field_name", "message"),
    [
        ({"password": "abcdefgh"}, "password", "at least 55 bits"),
        ({"password": None}, "password", "required"),
        ({"username": ""}, "username", "required"),
        ({"subject_dn": "O=Org,C=SE"}, "subject_dn", "'COMMONNAME' must exist"),
        ({"subject_dn": "CN=a,O=Other"}, "subject_dn", "not modifiable"),
        ({"subject_alt_name": "URI=http://x"}, "subject_alt_name", "'URI' is not allowed"),
        ({"ca": "NoSuchCA"}, "ca", "does not exist"),
        ({"ca": 10**30}, "ca", "does not exist"),
        ({"certificate_profile": "99999999999999999999999"}, "certificate_profile", "does not exist"),
        ({"certificate_profile": "SERVER"}, "certificate_profile", "not available"),
        ({"certificate_profile": "ROOTCA"}, "certificate_profile", "not available"),
        ({"token_type": "NOPE"}, "token_type", "Unknown token type"),
        ({"validity_start": "2030-01-01"}, "validity_start", "does not use"),
        ({"custom_extension_data": "1.5.6.value=x"}, "custom_extension_data", "does not use"),
        ({"revocation_reason": 6}, "revocation_reason", "does not use"),
        ({"psd2_nca_name": "X", "psd2_nca_id": "BE-NBB", "psd2_roles": ["PSP_AS"]}, "psd2_qc_statement",
         "does not use"),
        ({"cabf_organization_identifier": "NTRGB-12345678"}, "cabf_organization_identifier", "does not use"),
        ({"allowed_requests": 3}, "allowed_requests", "does not use"),
        ({"max_failed_logins": 3}, "max_failed_logins", "does not use"),
        ({"key_recoverable": True}, "key_recoverable", "does not use"),
    ],
)
def test_refusals_name_the_field_and_rule(ee_profile, overrides, field_name, message):
    with pytest.raises(ValidationError) as exc:
        validate_end_entity(ee_profile, _input(**overrides))
    assert exc.value.field == field_name
    assert message in exc.value.message


def test_other_ca_not_available(ee_profile, ca_factory):
    other = ca_factory("OtherCA")
    with pytest.raises(ValidationError, match="not available") as exc:
        validate_end_entity(ee_profile, _input(ca="OtherCA"))
    assert exc.value.field == "ca"
    ee_profile.any_ca = True
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input(ca=other.pk)).ca == other


def test_ca_and_profile_by_name_or_id(ee_profile, root_ca, profile):
    v = validate_end_entity(ee_profile, _input(ca=str(root_ca.pk), certificate_profile="ENDUSER"))
    assert v.ca == root_ca and v.certificate_profile == profile


def test_auto_generated_password(ee_profile):
    ee_profile.password_auto_generate = True
    ee_profile.save()
    v = validate_end_entity(ee_profile, _input(password=None))
    assert v.password_generated and len(v.password) >= 16


def test_edit_may_keep_the_stored_password(ee_profile):
    v = validate_end_entity(ee_profile, _input(password=None), keep_password=True)
    assert v.password is None and not v.password_generated
    with pytest.raises(ValidationError, match="at least 55 bits"):  # a new one is still checked
        validate_end_entity(ee_profile, _input(password="short"), keep_password=True)


def test_token_types(ee_profile):
    ee_profile.available_token_types = [int(TokenType.P12), int(TokenType.PEM)]
    ee_profile.default_token_type = TokenType.P12
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input()).token_type == TokenType.P12
    assert validate_end_entity(ee_profile, _input(token_type="PEM")).token_type == TokenType.PEM
    assert validate_end_entity(ee_profile, _input(token_type=4)).token_type == TokenType.PEM
    with pytest.raises(ValidationError, match="JKS is not available") as exc:
        validate_end_entity(ee_profile, _input(token_type="JKS"))
    assert exc.value.field == "token_type"


# --- validity start/end ---------------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-24", datetime(2026, 12, 24, tzinfo=UTC)),
        ("2026-12-24 18:30", datetime(2026, 12, 24, 18, 30, tzinfo=UTC)),
        ("2026-12-24 18:30:15", datetime(2026, 12, 24, 18, 30, 15, tzinfo=UTC)),
        ("2026-12-24T18:30:00+02:00", datetime(2026, 12, 24, 16, 30, tzinfo=UTC)),
        ("0:0:30", NOW + timedelta(minutes=30)),
        ("90:0:0", NOW + timedelta(days=90)),
        ("1:2:3", NOW + timedelta(days=1, hours=2, minutes=3)),
    ],
)
def test_validity_time_formats(text, expected):
    assert parse_validity_time(text, NOW, "validity_end") == expected


@pytest.mark.parametrize("text", ["tomorrow", "1:24:0", "1:0:60", "2026-13-01", "5d"])
def test_validity_time_errors(text):
    with pytest.raises(ValidationError) as exc:
        parse_validity_time(text, NOW, "validity_end")
    assert exc.value.field == "validity_end"


def test_validity_is_used_only_when_the_certificate_profile_allows_override(ee_profile, cert_profile):
    ee_profile.validity_start_use = ee_profile.validity_end_use = True
    ee_profile.validity_end_default = "30:0:0"
    ee_profile.save()
    v = validate_end_entity(ee_profile, _input(validity_start="2027-01-01 00:00"))
    assert v.not_before == datetime(2027, 1, 1, tzinfo=UTC)
    assert v.not_after == datetime(2027, 1, 31, tzinfo=UTC)  # relative end counts from the start
    assert v.extended["validity_end"] == "30:0:0"
    cert_profile.allow_validity_override = False
    cert_profile.save()
    v = validate_end_entity(ee_profile, _input(validity_start="2027-01-01 00:00"))
    assert v.not_before is None and v.not_after is None  # stored, not honoured
    assert v.validity_start == "2027-01-01 00:00"


def test_validity_not_modifiable_and_order(ee_profile):
    ee_profile.validity_end_use = True
    ee_profile.validity_end_default = "10:0:0"
    ee_profile.validity_end_modifiable = False
    ee_profile.validity_start_use = True
    ee_profile.save()
    with pytest.raises(ValidationError, match="not modifiable") as exc:
        validate_end_entity(ee_profile, _input(validity_end="20:0:0"))
    assert exc.value.field == "validity_end"
    start = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d")
    ee_profile.validity_end_modifiable = True
    ee_profile.save()
    with pytest.raises(ValidationError, match="not after the start"):
        validate_end_entity(ee_profile, _input(validity_start=start, validity_end="2020-01-01"))


# --- custom extension data ------------------------------------------------------------------------------------

def test_properties_format():
    text = "# comment\n! also a comment\n1.5.6.value = Hello world\n1.2.3.4.value:0c0161\nkey\\=x=multi\\\n  line\n"
    assert parse_properties(text) == [("1.5.6.value", "Hello world"), ("1.2.3.4.value", "0c0161"),
                                      ("key=x", "multiline")]


def test_custom_extension_data(ee_profile):
    ee_profile.custom_extension_data_use = True
    ee_profile.save()
    v = validate_end_entity(ee_profile, _input(custom_extension_data="1.5.6.value = Hello world\n1.2.3.4.value=0c0161"))
    assert v.custom_extension_values == {"1.5.6": "Hello world", "1.2.3.4": "0c0161"}
    for bad, message in [("9.9.9.value=x", "matches no custom certificate extension"),
                         ("1.5.6.other=x", "matches no custom certificate extension"),
                         ("1.2.3.5.value=x", "is not dynamic")]:
        with pytest.raises(ValidationError, match=message) as exc:
            validate_end_entity(ee_profile, _input(custom_extension_data=bad))
        assert exc.value.field == "custom_extension_data"


# --- revocation reason, counters, flags -------------------------------------------------------------------------

def test_revocation_reason_after_issuance(ee_profile):
    ee_profile.revocation_reason_use = True
    ee_profile.revocation_reason_default = 6
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input()).revocation_reason == 6
    assert validate_end_entity(ee_profile, _input(revocation_reason="keyCompromise")).revocation_reason == 1
    assert validate_end_entity(ee_profile, _input(revocation_reason="CERTIFICATE_HOLD")).revocation_reason == 6
    with pytest.raises(ValidationError, match="not a revocation reason"):
        validate_end_entity(ee_profile, _input(revocation_reason=7))


def test_allowed_requests_default_and_maximum(ee_profile):
    ee_profile.allowed_requests_use = True
    ee_profile.allowed_requests_default = 2
    ee_profile.allowed_requests_max = 3
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input()).allowed_requests == 2
    assert validate_end_entity(ee_profile, _input(allowed_requests=3)).allowed_requests == 3
    with pytest.raises(ValidationError, match="1 to 3") as exc:
        validate_end_entity(ee_profile, _input(allowed_requests=4))
    assert exc.value.field == "allowed_requests"


def test_max_failed_logins(ee_profile):
    ee_profile.max_failed_logins_use = True
    ee_profile.max_failed_logins = 3
    ee_profile.max_failed_logins_modifiable = False
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input()).max_failed_logins == 3
    with pytest.raises(ValidationError, match="not modifiable"):
        validate_end_entity(ee_profile, _input(max_failed_logins=5))
    ee_profile.max_failed_logins_modifiable = True
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input(max_failed_logins=5)).max_failed_logins == 5


def test_flags_use_default_required(ee_profile):
    ee_profile.key_recoverable_use = True
    ee_profile.key_recoverable_default = True
    ee_profile.send_notification_use = True
    ee_profile.send_notification_required = True
    ee_profile.save()
    v = validate_end_entity(ee_profile, _input(send_notification=True))
    assert v.key_recoverable is True and v.send_notification is True and v.clear_password is False
    with pytest.raises(ValidationError, match="requires e-mail notification") as exc:
        validate_end_entity(ee_profile, _input(send_notification=False))
    assert exc.value.field == "send_notification"


def test_merge_dn_from_the_profile_or_the_caller(ee_profile):
    assert validate_end_entity(ee_profile, _input(subject_dn="CN=a.example.com")).subject_dn == "CN=a.example.com"
    ee_profile.allow_merge_dn = True
    ee_profile.save()
    assert validate_end_entity(ee_profile, _input(subject_dn="CN=a.example.com")).subject_dn == \
        "CN=a.example.com,O=Org"
    assert validate_end_entity(ee_profile, _input(subject_dn="CN=a.example.com"), merge_dn=False).subject_dn == \
        "CN=a.example.com"


def test_saved_profile_is_normalized(db):
    p = EndEntityProfile.objects.create(name="Norm", subject_dn_fields=[{"type": "gn"}],
                                        subject_alt_name_fields=[{"type": "dns"}],
                                        notifications=[{"events": ["new"], "recipients": "USER;a@b.c"}])
    p.refresh_from_db()
    assert p.subject_dn_fields[0]["type"] == "GIVENNAME" and p.subject_dn_fields[0]["modifiable"] is True
    assert p.subject_alt_name_fields[0]["type"] == "DNSNAME"
    assert p.notifications == [{"events": ["NEW"], "recipients": ["USER", "a@b.c"], "sender": "", "subject": "",
                                "body": ""}]
    with pytest.raises(ValueError, match="Unknown field type"):
        EndEntityProfile.objects.create(name="Bad", subject_dn_fields=[{"type": "NOPE"}])


def test_empty_profile_accepts_any_dn(root_ca, profile):
    from endentities.services import ensure_empty_profile

    empty = ensure_empty_profile()
    assert empty.any_dn and empty.default_certificate_profile == profile
    v = validate_end_entity(empty, EndEntityInput(
        username="u", password="x", subject_dn="CN=x,OU=a,OU=b,L=c,ST=d,O=e,C=SE,1.2.3.4=custom",
        subject_alt_name="DNSNAME=a.example, DNSNAME=b.example, IPADDRESS=10.0.0.1, UPN=u@corp", ca=root_ca,
    ))
    assert v.subject_dn == "CN=x,OU=a,OU=b,O=e,L=c,ST=d,C=SE,1.2.3.4=custom"
    assert len(v.alt_names) == 4 and v.certificate_profile == profile
