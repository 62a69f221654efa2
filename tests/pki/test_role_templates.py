"""Role templates (EJBCA's basic mode): a new role from Super Administrator, CA Administrator, RA Administrator,
Auditor or Supervisor for chosen CAs and end entity profiles gets the template's rules; forged choices are 400;
and the escalation attack (a role editor making a role with rights it lacks itself) is 403 with no role left."""

from __future__ import annotations

import pytest

from pki.auth.access import EDIT_RULE
from pki.models import AccessRule, AuditEvent, CertificateAuthority, Role
from pki.services import role_templates

from .test_views_auth import ui_client


@pytest.fixture
def paths(cli_init):
    ca = CertificateAuthority.objects.get(name="ManagementCA")
    profile = next(p for p, label in role_templates.profile_choices() if label.endswith("EMPTY"))
    return {"ca": f"/ca/{ca.pk}", "profile": profile}


@pytest.fixture
def admin(paths):
    return ui_client("tadmin", ["/"])


def rules_of(name: str) -> dict[str, bool]:
    return dict(AccessRule.objects.filter(role__name=name).values_list("resource", "allowed"))


@pytest.mark.parametrize(("template", "expected"), [
    ("superadmin", {"/"}),
    ("raadmin", {*role_templates.RA_RULES, "CA", "PROFILE"}),
    ("caadmin", {*role_templates.CA_ADMIN_RULES, "CA", "PROFILE"}),
    ("auditor", {*role_templates.AUDITOR_RULES, "CA", "PROFILE"}),
    ("supervisor", {*role_templates.SUPERVISOR_RULES, "CA", "PROFILE"}),
])
def test_each_template_fills_the_rule_tree(admin, paths, template, expected):
    r = admin.post("/roles/new/template/", {"name": f"T {template}", "template": template, "cas": [paths["ca"]],
                                            "profiles": [paths["profile"]]})
    role = Role.objects.get(name=f"T {template}")
    assert r.status_code == 302 and r["Location"] == f"/roles/{role.pk}/"
    want = {paths["ca"] if p == "CA" else paths["profile"] if p == "PROFILE" else p for p in expected}
    assert rules_of(role.name) == dict.fromkeys(want, True)
    assert AuditEvent.objects.filter(event_type="ROLE_ACCESS_RULE_CHANGE", object_id=str(role.pk)).exists()
    # the advanced view shows the same rules
    assert admin.get(f"/roles/{role.pk}/rules/").status_code == 200


def test_the_form_lists_templates_cas_and_profiles(admin, paths):
    html = admin.get("/roles/new/template/").content.decode()
    for text in ("Super Administrator", "CA Administrator", "RA Administrator", "Auditor", "Supervisor",
                 f'value="{paths["ca"]}"', f'value="{paths["profile"]}"'):
        assert text in html
    assert 'href="/roles/new/template/"' in admin.get("/roles/").content.decode()


@pytest.mark.parametrize(("data", "message"), [
    ({"template": "raadmin", "profiles": ["PROFILE"]}, "at least one CA"),
    ({"template": "raadmin", "cas": ["CA"]}, "at least one end entity profile"),
    ({"template": "raadmin", "cas": ["/ca/999999"], "profiles": ["PROFILE"]}, "not one of the available choices"),
    ({"template": "raadmin", "cas": ["/"], "profiles": ["PROFILE"]}, "not one of the available choices"),
    ({"template": "god", "cas": ["CA"]}, "not one of the available choices"),
    ({"template": "auditor", "name": "", "cas": ["CA"], "profiles": ["PROFILE"]}, "This field is required"),
])
def test_bad_or_forged_choices_are_400_and_make_no_role(admin, paths, data, message):
    data = {"name": "Forged", **data}
    for key in ("cas", "profiles"):
        data[key] = [paths["ca"] if v == "CA" else paths["profile"] if v == "PROFILE" else v
                     for v in data.get(key, [])]
    before = Role.objects.count()
    r = admin.post("/roles/new/template/", data)
    assert r.status_code == 400 and message in r.content.decode()
    assert Role.objects.count() == before


def test_service_refuses_forged_rule_paths(paths):
    from pki.auth.access import Actor
    from pki.errors import ValidationError

    with pytest.raises(ValidationError):
        role_templates.create_role_from_template(Actor("x", role_rules={"r": [("/", True)]}), "F", "raadmin",
                                                 cas=["/ca"], profiles=[paths["profile"]])
    assert not Role.objects.filter(name="F").exists()


@pytest.mark.parametrize("template", ["superadmin", "caadmin", "auditor"])
def test_attack_a_role_editor_cannot_make_a_role_with_rights_it_lacks(paths, template):
    """An RA administrator who may edit roles tries to mint a more powerful role (to join it next)."""
    editor = ui_client("sneaky", [EDIT_RULE, *role_templates.RA_RULES, paths["ca"], paths["profile"]])
    before = Role.objects.count()
    r = editor.post("/roles/new/template/", {"name": "Escalate", "template": template, "cas": [paths["ca"]],
                                             "profiles": [paths["profile"]]})
    assert r.status_code == 403 and "Not authorized" in r.content.decode()
    assert Role.objects.count() == before and not Role.objects.filter(name="Escalate").exists()


def test_attack_a_role_editor_cannot_give_a_ca_it_is_denied(paths):
    editor = ui_client("sneaky", [EDIT_RULE, *role_templates.RA_RULES, "/ca", "/endentityprofilesrules"])
    AccessRule.objects.create(role=Role.objects.get(name="role-sneaky"), resource=paths["ca"], allowed=False)
    r = editor.post("/roles/new/template/", {"name": "Escalate", "template": "raadmin", "cas": [paths["ca"]],
                                             "profiles": [paths["profile"]]})
    assert r.status_code == 403 and not Role.objects.filter(name="Escalate").exists()


def test_a_role_editor_may_make_a_role_within_its_own_rights(paths):
    editor = ui_client("fair", [EDIT_RULE, *role_templates.RA_RULES, paths["ca"], paths["profile"]])
    r = editor.post("/roles/new/template/", {"name": "Clerks", "template": "raadmin", "cas": [paths["ca"]],
                                             "profiles": [paths["profile"]]})
    assert r.status_code == 302 and Role.objects.filter(name="Clerks").exists()


def test_without_the_edit_rule_the_form_is_403(paths):
    viewer = ui_client("viewer", ["/administrator", "/system_functionality/view_administrator_privileges"])
    assert viewer.get("/roles/new/template/").status_code == 403
    assert 'href="/roles/new/template/"' not in viewer.get("/roles/").content.decode()
