"""The embedded scheduler's job table (pki.scheduler): next run and last outcome of each periodic job."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("pki", "0008_role_member_provider_fk_token_lifetime"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScheduledJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("task", models.CharField(max_length=200)),
                ("next_run_at", models.DateTimeField()),
                ("last_started_at", models.DateTimeField(blank=True, null=True)),
                ("last_finished_at", models.DateTimeField(blank=True, null=True)),
                ("last_outcome", models.CharField(blank=True, default="", max_length=16)),
                ("last_message", models.TextField(blank=True, default="")),
                ("runs", models.PositiveIntegerField(default=0)),
                ("claimed_by", models.CharField(blank=True, default="", max_length=255)),
            ],
            options={
                "ordering": ["name"],
            },
        ),
    ]
