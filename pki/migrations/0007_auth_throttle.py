"""Failed-authentication counters (login, HTTP Basic, SCEP RA shared secret) shared by every process."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pki", "0006_audit_head_mac_revocation_recorded_at")]
    operations = [
        migrations.CreateModel(
            name="AuthThrottle",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("scope", models.CharField(max_length=16)),
                ("subject", models.CharField(max_length=200)),
                ("failures", models.PositiveIntegerField(default=0)),
                ("window_start", models.FloatField(default=0)),
                ("lockouts", models.PositiveIntegerField(default=0)),
                ("locked_until", models.FloatField(default=0)),
                ("last_failure", models.FloatField(default=0)),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("scope", "subject"),
                                                        name="auth_throttle_scope_subject")],
            },
        ),
    ]
