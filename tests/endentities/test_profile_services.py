"""The end entity profile service: create/edit/clone/delete with access checks, audit, consistency rules;
a refusal names the field and saves nothing."""

import pytest

from endentities.models import EndEntityProfile
from endentities.services.profiles import clone_profile, delete_profile, get_profile, save_profile
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from pki.models import AuditEvent, CertificateProfile
from tests.endentities.profile_support import field


def _values(**kw):
    base = {"description": "Web users", "subject_dn_fields": [field("CN", required=True), field("O")],
            "subject_alt_name_fields": [field("DNSNAME", use_entity_cn=True)], "available_token_types": [1, 2],
            "default_token_type": 1}
    base.update(kw)
    return base


def test_create_edit_clone_delete_are_audited(db, actor, profile):
    p = save_profile(actor, "Web", _values(default_certificate_profile=profile,
                                           available_certificate_profiles=[profile]))
    assert p.subject_dn_fields[0]["type"] == "CN" and list(p.available_certificate_profiles.all()) == [profile]
    assert AuditEvent.objects.get(event_type="RA_ADDEEPROFILE", object_id=str(p.pk)).details["name"] == "Web"
    p = save_profile(actor, "Web2", _values(description="changed"), p)
    assert (p.name, p.description) == ("Web2", "changed")
    assert AuditEvent.objects.filter(event_type="RA_EDITEEPROFILE", object_id=str(p.pk)).exists()
    copy = clone_profile(actor, p, "Web copy")
    assert copy.pk != p.pk and copy.subject_dn_fields == p.subject_dn_fields
    assert list(copy.available_certificate_profiles.all()) == [profile]
    delete_profile(actor, copy)
    assert not EndEntityProfile.objects.filter(name="Web copy").exists()
    assert AuditEvent.objects.filter(event_type="RA_REMOVEEEPROFILE", object_id=str(copy.pk)).exists()
    assert get_profile("Web2") == p and get_profile(p.pk) == p
    with pytest.raises(NotFoundError):
        get_profile("nope")


@pytest.mark.parametrize(
    ("changes", "field_name", "message"),
    [
        ({"subject_dn_fields": [{"type": "NOPE"}]}, "subject_dn_fields", "Unknown field type"),
        ({"subject_dn_fields": [field("CN", validation="[a-z")]}, "subject_dn_fields", "invalid regular expression"),
        ({"subject_dn_fields": [field("C"), field("C")]}, "subject_dn_fields", "only once"),
        ({"subject_dn_fields": [field("O", required=True, modifiable=False)]}, "subject_dn_fields", "needs a value"),
        ({"subject_alt_name_fields": [{"type": "CN"}]}, "subject_alt_name_fields", "Unknown field type"),
        ({"available_token_types": [9]}, "available_token_types", "Available tokens"),
        ({"default_token_type": 3}, "default_token_type", "available tokens"),
        ({"allowed_requests_use": True, "allowed_requests_default": 5, "allowed_requests_max": 2},
         "allowed_requests_default", "maximum"),
        ({"revocation_reason_default": 7}, "revocation_reason_default", "not a revocation reason"),
        ({"validity_end_default": "soon"}, "validity_end_default", "days:hours:minutes"),
        ({"notifications": [{"events": ["NOPE"], "recipients": ["USER"]}]}, "notifications", "statuses"),
        ({"notifications": [{"events": ["NEW"], "recipients": ["someone"]}]}, "notifications", "recipients"),
        ({"max_failed_logins": -5}, "max_failed_logins", "-1"),
    ],
)
def test_inconsistent_profiles_are_refused_and_nothing_saved(db, actor, changes, field_name, message):
    with pytest.raises(ValidationError) as exc:
        save_profile(actor, "Bad", _values(**changes))
    assert exc.value.field == field_name and message in exc.value.message
    assert not EndEntityProfile.objects.filter(name="Bad").exists()
    assert not AuditEvent.objects.filter(event_type="RA_ADDEEPROFILE").exists()


def test_default_certificate_profile_rules(actor, profile, builtin_profiles):
    server = CertificateProfile.objects.get(name="SERVER")
    with pytest.raises(ValidationError, match="one of the available") as exc:
        save_profile(actor, "X", _values(default_certificate_profile=server, available_certificate_profiles=[profile]))
    assert exc.value.field == "default_certificate_profile"
    with pytest.raises(ValidationError, match="CA profile"):
        save_profile(actor, "X", _values(default_certificate_profile=CertificateProfile.objects.get(name="ROOTCA")))


def test_names_are_unique_and_builtin_is_fixed(actor, builtin_profiles):
    from endentities.services import ensure_empty_profile

    empty = ensure_empty_profile()
    with pytest.raises(ConflictError) as exc:
        save_profile(actor, "EMPTY", _values())
    assert exc.value.field == "name"
    with pytest.raises(ValidationError, match="built-in"):
        save_profile(actor, "EMPTY", _values(), empty)
    with pytest.raises(ValidationError, match="cannot be deleted"):
        delete_profile(actor, empty)
    assert clone_profile(actor, empty, "Mine").any_dn is True


def test_access_rule_required(db):
    nobody = Actor(name="nobody")
    with pytest.raises(AuthorizationDenied):
        save_profile(nobody, "X", _values())
    assert not EndEntityProfile.objects.filter(name="X").exists()


def test_a_profile_in_use_is_not_deleted(actor, root_ca, profile):
    from endentities.models import EndEntity

    p = save_profile(actor, "Used", _values())
    EndEntity.objects.create(username="u1", ca=root_ca, certificate_profile=profile, end_entity_profile=p)
    with pytest.raises(ConflictError, match="used by 1 end entity"):
        delete_profile(actor, p)
    assert EndEntityProfile.objects.filter(pk=p.pk).exists()
