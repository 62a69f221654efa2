"""``manage.py roles`` with ``ejbca.sh roles``'s subcommands and arguments (authorized and audited as the UI)."""

from __future__ import annotations

import pytest

from pki.models import AccessRule, AuditEvent, CertificateAuthority, Role, RoleMember
from tests.pki.cli_support import refused, run


def test_a_role_from_creation_to_removal(cli_init):
    management = f"/ca/{CertificateAuthority.objects.get(name='ManagementCA').pk}"
    assert "Added role 'Sub RA'" in run("roles", "addrole", "--role", "Sub RA")
    assert "Sub RA\t(0 member(s), 0 rule(s))" in run("roles", "listroles")
    run("roles", "changerule", "--role", "Sub RA", "--rule", "/ra_functionality/view_end_entity", "--state", "ACCEPT")
    run("roles", "changerule", "--role", "Sub RA", "--rule", "/ca", "--state", "ACCEPT")
    run("roles", "changerule", "--role", "Sub RA", "--rule", management, "--state", "DECLINE")
    assert run("roles", "listrules", "--role", "Sub RA").splitlines() == [
        "/ca\tACCEPT", f"{management}\tDECLINE", "/ra_functionality/view_end_entity\tACCEPT"]
    run("roles", "changerule", "--role", "Sub RA", "--rule", management, "--state", "UNDEFINED")
    assert set(AccessRule.objects.filter(role__name="Sub RA").values_list("resource", "allowed")) == {
        ("/ca", True), ("/ra_functionality/view_end_entity", True)}
    run("roles", "addrolemember", "--role", "Sub RA", "--caname", "ManagementCA", "--with", "WITH_SERIALNUMBER",
        "--value", "1A2B3C")
    assert "CERTIFICATE_SERIAL\tManagementCA\t-\t1a2b3c" in run("roles", "listadmins", "--role", "Sub RA")
    run("roles", "removerolemember", "--role", "Sub RA", "--caname", "ManagementCA", "--with", "WITH_SERIALNUMBER",
        "--value", "1A2B3C")
    assert not RoleMember.objects.filter(role__name="Sub RA").exists()
    assert "Removed role 'Sub RA'" in run("roles", "removerole", "--role", "Sub RA")
    assert not Role.objects.filter(name="Sub RA").exists()
    events = list(AuditEvent.objects.filter(actor="cli", event_type__startswith="ROLE_").values_list(
        "event_type", flat=True))
    assert {"ROLE_CREATION", "ROLE_ACCESS_RULE_CHANGE", "ROLE_ACCESS_USER_ADDITION", "ROLE_ACCESS_USER_DELETION",
            "ROLE_DELETION"} <= set(events)


@pytest.mark.parametrize(("args", "message", "code"), [
    (("changerule", "--role", "Auditor", "--rule", "/no/such/rule", "--state", "ACCEPT"), "Unknown access rule", 1),
    (("changerule", "--role", "Auditor", "--rule", "/ca", "--state", "MAYBE"), "--state must be", 1),
    (("changerule", "--role", "Nobody", "--rule", "/ca", "--state", "ACCEPT"), "does not exist", 1),
    (("addrole", "--role", "Auditor"), "already exists", 1),
    (("addrole", "--role", "Ns", "--namespace", "tenant1"), "role namespaces", 2),
    (("addrolemember", "--role", "Auditor", "--caname", "ManagementCA", "--with", "WITH_FULLDN", "--value", "CN=x"),
     "WITH_FULLDN", 2),
    (("removerolemember", "--role", "Auditor", "--caname", "ManagementCA", "--with", "WITH_COMMONNAME", "--value",
      "nobody"), "no such member", 1),
])
def test_refusals(cli_init, args, message, code):
    rules = list(AccessRule.objects.filter(role__name="Auditor").values_list("resource", "allowed"))
    assert message in refused("roles", *args, code=code)
    assert list(AccessRule.objects.filter(role__name="Auditor").values_list("resource", "allowed")) == rules
    assert not Role.objects.filter(name="Ns").exists()


def test_the_last_superadmin_rule_cannot_be_taken_away(cli_init):
    assert "nobody could administer" in refused("roles", "changerule", "--role", "Super Administrator Role",
                                                "--rule", "/", "--state", "UNDEFINED")
    assert AccessRule.objects.filter(role__name="Super Administrator Role", resource="/", allowed=True).exists()
