"""The audit chain head's own MAC, and when each revocation was recorded (what delta CRLs select on)."""

from django.db import migrations, models
from django.db.models import F


def backfill(apps, schema_editor):
    from pki.audit import head_mac

    Certificate = apps.get_model("pki", "Certificate")
    # Before this field the stated date is all there is; later revocations record their own time.
    Certificate.objects.exclude(status="ACTIVE").filter(revoked_at__isnull=False).update(
        revocation_recorded_at=F("revoked_at"))
    head = apps.get_model("pki", "AuditChainHead").objects.filter(pk=1).first()
    if head is not None and head.last_sequence:
        head.head_mac = head_mac(head.last_sequence, head.last_mac)
        head.save(update_fields=["head_mac"])


class Migration(migrations.Migration):
    dependencies = [("pki", "0005_enforce_unique")]
    operations = [
        migrations.AddField(
            model_name="auditchainhead", name="head_mac", field=models.CharField(default="", max_length=64),
        ),
        migrations.AddField(
            model_name="certificate", name="revocation_recorded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["ca", "revocation_recorded_at"], name="cert_ca_revrecorded_idx"),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
