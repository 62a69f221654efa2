"""Admin UI end entity profile pages: the editor shows every option of the model and the whole field table,
field instances are added and removed without saving, saving goes through the profile service (refusals
are form errors, nothing saved), clone, delete, the read-only EMPTY profile, and who may do what."""

from __future__ import annotations

import re

import pytest

from endentities import fields as field_table
from endentities.forms.profiles import NOT_IN_FORM
from endentities.models import EndEntityProfile
from pki.models import AuditEvent, CertificateProfile
from tests.pki.test_views_auth import ui_client

VIEW = "/ca_functionality/view_end_entity_profiles"
EDIT = "/ca_functionality/edit_end_entity_profiles"


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("eeadmin", ["/"])


@pytest.fixture
def viewer(db, builtin_profiles):
    return ui_client("eeviewer", ["/administrator", VIEW])


@pytest.fixture
def nobody(db):
    return ui_client("eenobody", None)


@pytest.fixture
def empty_profile(db, builtin_profiles):
    from endentities.services import ensure_empty_profile

    return ensure_empty_profile()


def instance_rows(prefix: str, rows: list[dict]) -> dict:
    """Posted form data of a field-instance list."""
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": "0"}
    for i, row in enumerate(rows):
        data[f"{prefix}-{i}-type"] = row["type"]
        data[f"{prefix}-{i}-validation"] = row.get("validation", "")
        data[f"{prefix}-{i}-value"] = row.get("value", "")
        for flag in ("required", "modifiable", "use_entity_email", "use_entity_cn"):
            if row.get(flag):
                data[f"{prefix}-{i}-{flag}"] = "on"
    return data


def profile_data(dn=None, san=None, **changes) -> dict:
    """A complete posted profile form: the model defaults, a few DN fields and alt names, and ``changes``
    (a value None removes the key: an unticked box)."""
    enduser = CertificateProfile.objects.get(name="ENDUSER")
    data = {
        "name": "Web users", "description": "People who log in to the web shop",
        "password_required": "on", "password_min_strength_bits": "0", "email_use": "on", "email_modifiable": "on",
        "email_domain": "example.com", "max_failed_logins": "-1", "allowed_requests_default": "1",
        "allowed_requests_max": "1", "renewal_days_before_expiration": "0", "any_ca": "on",
        "available_certificate_profiles": [str(enduser.pk)], "default_certificate_profile": str(enduser.pk),
        "available_token_types": ["1", "2", "4"], "default_token_type": "1",
        "validity_start_modifiable": "on", "validity_end_modifiable": "on", "max_failed_logins_modifiable": "on",
        "ntf-TOTAL_FORMS": "1", "ntf-INITIAL_FORMS": "0",
    }
    data.update(instance_rows("dn", dn if dn is not None else [
        {"type": "CN", "required": True, "modifiable": True, "validation": "^.{1,10}$"},
        {"type": "OU", "modifiable": False, "value": "Sales;Support;Development"},
        {"type": "C", "required": True, "modifiable": False, "value": "SE"},
    ]))
    data.update(instance_rows("san", san if san is not None else [
        {"type": "DNSNAME", "use_entity_cn": True}, {"type": "RFC822NAME", "modifiable": True},
    ]))
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_editor_shows_every_model_option_and_the_whole_field_table(admin, root_ca):
    html = admin.get("/endentityprofiles/new/").content.decode()
    model_fields = [f.name for f in EndEntityProfile._meta.get_fields()
                    if getattr(f, "concrete", False) and not f.auto_created and f.name not in NOT_IN_FORM]
    missing = [name for name in model_fields if f'name="{name}"' not in html]
    assert not missing, missing
    for ftype in field_table.DN_FIELD_TYPES + field_table.ALT_NAME_FIELD_TYPES:
        assert f'<option value="{ftype.key}">' in html, ftype.key
    assert 'name="dn-add-type"' in html and 'name="san-add-type"' in html
    assert "BCFKS keystores open with Bouncy Castle" in html  # what BCFKS interoperates with


def test_add_and_remove_field_instances_keeps_the_form_and_saves_nothing(admin):
    data = profile_data(op="add-dn", **{"dn-add-type": "OU"}, description="kept while editing")
    r = admin.post("/endentityprofiles/new/", data)
    html = r.content.decode()
    assert r.status_code == 200 and not EndEntityProfile.objects.filter(name="Web users").exists()
    assert re.findall(r'name="dn-(\d)-type" value="OU"', html) == ["1", "3"]  # the posted OU and the added one
    assert 'name="dn-TOTAL_FORMS" value="4"' in html
    assert "kept while editing" in html and 'value="Sales;Support;Development"' in html
    assert 'class="errorlist"' not in html  # a half-filled form is not judged while it is being edited

    data = profile_data(op="remove-dn-1")
    html = admin.post("/endentityprofiles/new/", data).content.decode()
    assert 'name="dn-TOTAL_FORMS" value="2"' in html
    assert re.findall(r'name="dn-\d-type" value="(\w+)"', html) == ["CN", "C"]

    data = profile_data(op="add-san", **{"san-add-type": "IPADDRESS"})
    html = admin.post("/endentityprofiles/new/", data).content.decode()
    assert re.findall(r'name="san-\d-type" value="(\w+)"', html) == ["DNSNAME", "RFC822NAME", "IPADDRESS"]
    assert EndEntityProfile.objects.filter(name="Web users").count() == 0


def test_an_unknown_field_type_is_not_added(admin):
    r = admin.post("/endentityprofiles/new/", profile_data(op="add-dn", **{"dn-add-type": "NOPE"}))
    assert r.status_code == 200 and "Choose a field type to add." in r.content.decode()
    assert 'name="dn-TOTAL_FORMS" value="3"' in r.content.decode()


def test_create_profile_saves_every_instance_and_option_and_is_audited(admin, root_ca):
    r = admin.post("/endentityprofiles/new/", profile_data(
        available_cas=[str(root_ca.pk)], any_ca=None, default_ca=str(root_ca.pk), password_min_strength_bits="55",
        **{"ntf-0-events": ["NEW"], "ntf-0-recipients": "USER", "ntf-0-subject": "Welcome ${USERNAME}"}))
    assert r.status_code == 302, r.content.decode()[-3000:]
    p = EndEntityProfile.objects.get(name="Web users")
    assert r["Location"] == f"/endentityprofiles/{p.pk}/"
    assert [(f["type"], f["required"], f["modifiable"], f["validation"], f["value"]) for f in p.subject_dn_fields] == [
        ("CN", True, True, "^.{1,10}$", ""), ("OU", False, False, "", "Sales;Support;Development"),
        ("C", True, False, "", "SE")]
    assert [(f["type"], f["use_entity_cn"]) for f in p.subject_alt_name_fields] == [("DNSNAME", True),
                                                                                  ("RFC822NAME", False)]
    assert (p.any_ca, list(p.available_cas.all()), p.default_ca, p.password_min_strength_bits) == \
        (False, [root_ca], root_ca, 55)
    assert sorted(p.available_token_types) == [1, 2, 4] and p.default_token_type == 1
    assert p.notifications[0]["events"] == ["NEW"] and p.notifications[0]["recipients"] == ["USER"]
    assert AuditEvent.objects.filter(object_id__in=[str(p.pk), p.name]).exists()

    page = admin.get(f"/endentityprofiles/{p.pk}/").content.decode()
    assert "Sales;Support;Development" in page and "^.{1,10}$" in page and "People who log in" in page

    form = admin.get(f"/endentityprofiles/{p.pk}/edit/").content.decode()
    assert 'value="Sales;Support;Development"' in form and 'name="dn-TOTAL_FORMS" value="3"' in form


@pytest.mark.parametrize("changes, field_error", [
    ({"name": ""}, "This field is required."),
    ({"password_min_strength_bits": "-3"}, "greater than or equal to 0"),
    ({"default_token_type": "9"}, "Select a valid choice"),
    ({"dn-0-type": "NOSUCHATTR"}, "Unknown field type"),
])
def test_bad_input_is_a_field_error_and_saves_nothing(admin, changes, field_error):
    before = EndEntityProfile.objects.count()
    r = admin.post("/endentityprofiles/new/", profile_data(**changes))
    assert r.status_code == 400
    assert field_error in r.content.decode()
    assert EndEntityProfile.objects.count() == before


def test_a_broken_validation_regex_is_an_error_on_its_row_and_nothing_is_saved(admin):
    r = admin.post("/endentityprofiles/new/", profile_data(dn=[{"type": "CN"}, {"type": "OU", "validation": "([a-z"}]))
    html = r.content.decode()
    assert r.status_code == 400
    row_errors = re.search(r'data-type="OU".*?<tr class="instance-errors">(.*?)</tr>', html, re.S)
    assert row_errors and "invalid regular expression" in row_errors.group(1)
    assert not EndEntityProfile.objects.filter(name="Web users").exists()


@pytest.mark.parametrize("changes, where, message", [
    # required, not modifiable and no value: nothing could ever fill it
    ({"dn": [{"type": "CN", "required": True}]}, "dn-errors", "needs a value"),
    ({"dn": [{"type": "CN"}, {"type": "C"}, {"type": "C"}]}, "dn-errors", "may appear only once"),
    ({"ntf-0-events": ["NEW"]}, "ntf-errors", "recipients are USER"),
    ({"ntf-0-recipients": "USER"}, "ntf-errors", "events must be end entity statuses"),
])
def test_profile_rules_of_the_service_are_shown_with_their_list(admin, changes, where, message):
    dn = changes.pop("dn", None)
    r = admin.post("/endentityprofiles/new/", profile_data(dn=dn, **changes))
    html = r.content.decode()
    assert r.status_code == 400
    shown = re.search(rf'id="{where}"><li>([^<]*)</li>', html)
    assert shown and message in shown.group(1), html[html.find("errorlist") - 200:html.find("errorlist") + 400]
    assert not EndEntityProfile.objects.filter(name="Web users").exists()


@pytest.mark.parametrize("changes, field, message", [
    ({"default_token_type": "2", "available_token_types": ["1", "4"]}, "default_token_type", "available tokens"),
    ({"validity_start_default": "next tuesday"}, "validity_start_default", ""),
])
def test_option_rules_of_the_service_are_shown_on_their_field(admin, changes, field, message):
    r = admin.post("/endentityprofiles/new/", profile_data(**changes))
    html = r.content.decode()
    assert r.status_code == 400
    block = next((b for b in html.split('<div class="field')[1:] if f'name="{field}"' in b), "")
    assert 'has-error"' in block[:20] and message in block
    assert not EndEntityProfile.objects.filter(name="Web users").exists()


def test_a_taken_name_is_refused(admin, empty_profile):
    r = admin.post("/endentityprofiles/new/", profile_data(name="EMPTY"))
    assert r.status_code in (400, 409) and "EMPTY" in r.content.decode()
    assert EndEntityProfile.objects.filter(name="EMPTY").count() == 1


def test_empty_profile_is_read_only_but_can_be_cloned(admin, empty_profile):
    page = admin.get(f"/endentityprofiles/{empty_profile.pk}/").content.decode()
    assert "Clone" in page and f"/endentityprofiles/{empty_profile.pk}/edit/" not in page
    assert f"/endentityprofiles/{empty_profile.pk}/delete/" not in page
    r = admin.get(f"/endentityprofiles/{empty_profile.pk}/edit/")
    assert r.status_code == 302 and r["Location"] == f"/endentityprofiles/{empty_profile.pk}/"
    admin.post(f"/endentityprofiles/{empty_profile.pk}/delete/")
    assert EndEntityProfile.objects.filter(name="EMPTY").exists()

    r = admin.post(f"/endentityprofiles/{empty_profile.pk}/clone/", {"name": "My copy"})
    clone = EndEntityProfile.objects.get(name="My copy")
    assert r.status_code == 302 and r["Location"] == f"/endentityprofiles/{clone.pk}/edit/"
    assert not clone.builtin and clone.subject_dn_fields == empty_profile.subject_dn_fields


def test_delete_profile(admin):
    admin.post("/endentityprofiles/new/", profile_data())
    p = EndEntityProfile.objects.get(name="Web users")
    r = admin.post(f"/endentityprofiles/{p.pk}/delete/")
    assert r.status_code == 302 and r["Location"] == "/endentityprofiles/"
    assert not EndEntityProfile.objects.filter(pk=p.pk).exists()


def test_a_viewer_sees_profiles_without_edit_buttons_and_is_refused_changes(viewer, empty_profile):
    html = viewer.get("/endentityprofiles/").content.decode()
    assert "EMPTY" in html and "Add profile" not in html
    assert "End entity profiles" in html  # the navigation entry
    detail = viewer.get(f"/endentityprofiles/{empty_profile.pk}/").content.decode()
    assert "Clone" not in detail
    for method, url in (("get", "/endentityprofiles/new/"), ("post", f"/endentityprofiles/{empty_profile.pk}/clone/"),
                        ("post", f"/endentityprofiles/{empty_profile.pk}/delete/")):
        r = getattr(viewer, method)(url)
        assert r.status_code == 403 and EDIT in r.content.decode()
    assert EndEntityProfile.objects.count() == 1


def test_no_role_sees_nothing(nobody, empty_profile):
    r = nobody.get("/endentityprofiles/")
    assert r.status_code == 403 and VIEW in r.content.decode()
    assert "End entity profiles" not in re.sub(r"<main>.*</main>", "", r.content.decode(), flags=re.S)
