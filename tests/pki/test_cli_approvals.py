"""``manage.py approvals``: profiles and settings, a CLI action that waits (exit code 3 with the request id),
listing, showing and deciding as a named administrator whose roles are checked."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from pki.choices import CertificateStatus, MemberMatch
from pki.models import AccessRule, Certificate, Role, RoleMember
from pki.models.approvals import ApprovalRequest, ApprovalSetting, ApprovalStatus
from tests.pki.test_api_auth import server_leaf

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("approvals", *args, stdout=out)
    return out.getvalue()


def member(name: str, rules: list[str], role: str | None = None) -> None:
    r, _ = Role.objects.get_or_create(name=role or f"role-{name}")
    AccessRule.objects.bulk_create([AccessRule(role=r, resource=x) for x in rules])
    RoleMember.objects.create(role=r, match_type=MemberMatch.LOCAL_USER, match_value=name)


def test_cli_revocation_waits_and_is_approved_by_a_named_officer(sub_ca, actor, csr_factory):
    leaf = server_leaf(sub_ca, actor, csr_factory)
    Role.objects.create(name="Officers")
    assert "added" in run("addprofile", "--name", "Officers only", "--approvals", "1", "--expiration", "600",
                          "--role", "Officers")
    run("setapproval", "--action", "REVOCATION", "--caname", sub_ca.name, "--profile", "Officers only")
    assert ApprovalSetting.objects.get().approval_profile.name == "Officers only"
    with pytest.raises(CommandError) as waiting:
        call_command("ca", "revokecert", "--caname", sub_ca.name, "--serial", leaf.serial, "--reason",
                     "keyCompromise", stdout=io.StringIO())
    assert waiting.value.returncode == 3 and "request id" in str(waiting.value)
    req = ApprovalRequest.objects.get()
    assert str(req.pk) in run("list") and "REVOCATION" in run("list")
    shown = json.loads(run("show", str(req.pk)))
    assert shown["data"]["serial"] == leaf.serial and shown["status"] == "WAITING"
    rules = ["/ra_functionality/approve_end_entity", f"/ca/{sub_ca.pk}"]
    member("outsider", rules)  # the approval rule, but not an Officers member
    with pytest.raises(CommandError, match="not an approver role"):
        run("approve", str(req.pk), "--as", "outsider")
    with pytest.raises(CommandError, match="no member of any role"):
        run("approve", str(req.pk), "--as", "ghost")
    member("olga", rules, role="Officers")
    assert "Approved" in run("approve", str(req.pk), "--as", "olga", "--comment", "ticket 42")
    assert Certificate.objects.get(pk=leaf.pk).status == CertificateStatus.REVOKED
    assert ApprovalRequest.objects.get().status == ApprovalStatus.APPROVED
    from pki.errors import ConflictError
    from pki.services import approvals

    with pytest.raises(ConflictError, match="used by"):
        approvals.delete_profile(actor, ApprovalSetting.objects.get().approval_profile)
    assert "Officers only" in run("profiles")
    run("setapproval", "--action", "REVOCATION", "--caname", sub_ca.name, "--profile", "none")
    assert not ApprovalSetting.objects.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["setapproval", "--action", "REVOCATION", "--caname", "NoSuchCA", "--profile", "none"], "No CA"),
    (["setapproval", "--action", "REVOCATION", "--certprofile", "ENDUSER", "--profile", "Nope"], "No approval"),
    (["addprofile", "--name", "X", "--approvals", "0"], "1 to 100"),
    (["addprofile", "--name", "X", "--role", "NoSuchRole"], "No such role"),
    (["show", "12345"], "does not exist"),
    (["show", "abc"], "does not exist"),
])
def test_cli_refusals(builtin_profiles, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
