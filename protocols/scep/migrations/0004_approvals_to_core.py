"""SCEP's approval requirements and requests move into the core approvals (pki.ApprovalSetting/ApprovalRequest).

Each CA or certificate profile that required approval gets the "Add/Edit End Entity" setting with one approval
profile, "Default approval" (one approval, any approver; requests open 30 days, as long as SCEP transactions
are kept). Each SCEP approval request becomes a core request of operation ``scep_enrollment`` with origin
``scep:<alias id>`` and the transactionID as key; a decided one keeps its decision as an Approval row.
"""

import datetime as dt
import hashlib

from django.db import migrations

ACTION = "ADDEDITENDENTITY"
PROFILE = "Default approval"
EXPIRATION = 30 * 86400


def _digest(der):
    if not der:
        return ""
    from cryptography import x509

    try:
        return hashlib.sha256(x509.load_der_x509_csr(bytes(der)).tbs_certrequest_bytes).hexdigest()
    except (ValueError, TypeError):
        return ""


def forward(apps, schema_editor):
    Requirement = apps.get_model("scep", "ApprovalRequirement")
    OldRequest = apps.get_model("scep", "ApprovalRequest")
    Profile = apps.get_model("pki", "ApprovalProfile")
    Setting = apps.get_model("pki", "ApprovalSetting")
    Request = apps.get_model("pki", "ApprovalRequest")
    Approval = apps.get_model("pki", "Approval")
    if not Requirement.objects.exists() and not OldRequest.objects.exists():
        return
    profile, _ = Profile.objects.get_or_create(name=PROFILE, defaults={"approvals_required": 1,
                                                                       "request_expiration": EXPIRATION})
    for r in Requirement.objects.all():
        target = {"ca_id": r.ca_id} if r.ca_id else {"certificate_profile_id": r.certificate_profile_id}
        Setting.objects.get_or_create(action=ACTION, **target, defaults={"approval_profile": profile})
    now = dt.datetime.now(dt.UTC)
    for old in OldRequest.objects.all().order_by("pk"):
        status = old.status if old.status in ("WAITING", "APPROVED", "REJECTED") else "REJECTED"
        new = Request.objects.create(
            action=ACTION, operation="scep_enrollment", status=status, approval_profile=profile,
            approvals_required=1, approver_role_ids=[], ca_id=old.ca_id,
            certificate_profile_id=old.certificate_profile_id,
            username=old.username, subject_dn=old.subject_dn,
            data={**(old.data or {}), "alias": old.alias.name if old.alias_id else ""},
            request_der=old.request_der, request_digest=_digest(old.request_der), requested_by=old.requested_by,
            requester_kind="system", interface="scep",
            origin=f"scep:{old.alias_id}" if old.alias_id else "",
            origin_key=old.transaction_id if old.alias_id else "",
            expires_at=max(old.created_at + dt.timedelta(seconds=EXPIRATION), now + dt.timedelta(days=1)),
            decided_at=old.decided_at, certificate_id=old.certificate_id,
        )
        Request.objects.filter(pk=new.pk).update(created_at=old.created_at)
        if status != "WAITING" and old.decided_by:
            Approval.objects.create(request=new, admin=old.decided_by, approved=status == "APPROVED",
                                    comment=old.comment or "")


class Migration(migrations.Migration):
    dependencies = [
        ("scep", "0003_legacy_digest_help_text"),
        ("pki", "0010_approvals"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
        migrations.DeleteModel(name="ApprovalRequest"),
        migrations.DeleteModel(name="ApprovalRequirement"),
    ]
