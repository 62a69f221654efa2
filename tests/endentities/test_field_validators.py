"""Plug-in field validators (seed 004, "Plugin Field Restrictions"): a profile field names a class by dotted path,
as SCEP challenge validators are named; its ``validate(value, field_type)`` refuses a value with a reason. Checked
on every value of that field (DN and alt names), through the pure rules, the services and the profile editor; a
path that does not import is refused when the profile is saved, not at the first end entity."""

from __future__ import annotations

import re

import pytest

from endentities.subject import validate_subject_dn
from pki.errors import ValidationError
from tests.endentities.profile_support import field, make_profile

HERE = "tests.endentities.test_field_validators"
CERT_ID = field("SERIALNUMBER", validator=f"{HERE}.CertificationIdValidator")


class CertificationIdValidator:
    """A made-up national rule: 10 digits whose sum is even."""

    def validate(self, value: str, field_type: str) -> None:
        if not (value.isdigit() and len(value) == 10):
            raise ValueError("a CertificationID is ten digits")
        if sum(int(c) for c in value) % 2:
            raise ValueError("the check digit is wrong")


class NotAValidator:
    pass


@pytest.mark.parametrize("value, refusal", [
    ("1234567891", None),
    ("123", "a CertificationID is ten digits"),
    ("1234567890", "the check digit is wrong"),
])
def test_the_validator_decides_each_value(value, refusal):
    profile = make_profile([field("CN", required=True), CERT_ID])
    if refusal is None:
        validate_subject_dn(profile, f"CN=x,SN={value}")
        return
    with pytest.raises(ValidationError) as refused:
        validate_subject_dn(profile, f"CN=x,SN={value}")
    assert refusal in refused.value.message and "refused by its validator" in refused.value.message


def test_a_field_without_a_value_is_not_validated():
    profile = make_profile([field("CN", required=True), CERT_ID])
    validate_subject_dn(profile, "CN=x")


@pytest.mark.django_db
@pytest.mark.parametrize("path, reason", [
    ("no.such.module.Validator", "cannot be imported"),
    (f"{HERE}.Missing", "cannot be imported"),
    (f"{HERE}.NotAValidator", "not a field validator class"),
    ("os.path", "not a field validator class"),  # a module, not a class
])
def test_a_profile_naming_a_bad_validator_is_not_saved(actor, builtin_profiles, path, reason):
    from endentities.models import EndEntityProfile
    from endentities.services.profiles import save_profile

    with pytest.raises(ValidationError, match=reason):
        save_profile(actor, "Plugged", {"subject_dn_fields": [field("CN", required=True, validator=path)]})
    assert not EndEntityProfile.objects.filter(name="Plugged").exists()


@pytest.mark.django_db
def test_end_entities_are_checked_on_every_interface_path(actor, builtin_profiles, root_ca):
    from endentities.services import add_end_entity
    from endentities.services.profiles import save_profile
    from endentities.validation import EndEntityInput
    from pki.models import CertificateProfile

    profile = save_profile(actor, "Plugged", {
        "subject_dn_fields": [field("CN", required=True), CERT_ID],
        "default_ca": root_ca, "available_cas": [root_ca],
        "default_certificate_profile": CertificateProfile.objects.get(name="ENDUSER"),
        "available_certificate_profiles": [CertificateProfile.objects.get(name="ENDUSER")],
    })
    assert profile.subject_dn_fields[1]["validator"] == f"{HERE}.CertificationIdValidator"
    assert "validator" not in profile.subject_dn_fields[0]  # only where one is set
    with pytest.raises(ValidationError, match="check digit"):
        add_end_entity(actor, EndEntityInput(username="u1", password="foo123", subject_dn="CN=u1,SN=1234567890"),
                       profile=profile)
    add_end_entity(actor, EndEntityInput(username="u2", password="foo123", subject_dn="CN=u2,SN=1234567891"),
                   profile=profile)


@pytest.mark.django_db
def test_the_profile_editor_takes_a_validator_and_refuses_a_bad_one(builtin_profiles):
    from endentities.models import EndEntityProfile
    from tests.endentities.test_views_profiles import profile_data
    from tests.pki.test_views_auth import ui_client

    admin = ui_client("eepadmin", ["/"])
    bad = admin.post("/endentityprofiles/new/",
                     {**profile_data(dn=[{"type": "CN", "modifiable": True}]), "dn-0-validator": "no.such.Thing"})
    assert bad.status_code == 400 and "cannot be imported" in bad.content.decode()
    assert not EndEntityProfile.objects.filter(name="Web users").exists()
    good = admin.post("/endentityprofiles/new/", {
        **profile_data(dn=[{"type": "CN", "required": True, "modifiable": True},
                           {"type": "SERIALNUMBER", "modifiable": True}]),
        "dn-1-validator": f"{HERE}.CertificationIdValidator"})
    assert good.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", good.content.decode(), re.S)
    profile = EndEntityProfile.objects.get(name="Web users")
    assert profile.subject_dn_fields[1]["validator"] == f"{HERE}.CertificationIdValidator"
    page = admin.get(f"/endentityprofiles/{profile.pk}/").content.decode()
    assert f"validator {HERE}.CertificationIdValidator" in page
