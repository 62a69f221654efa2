"""Role members tied to their OAuth provider's id instead of its label, and a maximum token lifetime per
provider.

A member named its provider by label, so removing a provider left its members behind and a different
identity provider later added under the same label inherited them. Existing members are mapped to the
provider that has their label today; OAuth members whose provider no longer exists are deleted (they could
only ever match a future namesake).
"""

import django.db.models.deletion
import django.db.models.functions.comparison
from django.db import migrations, models


def _checks_now(schema_editor):
    # PostgreSQL defers foreign key checks to the commit; pending checks would make the ALTER TABLE after
    # this step fail ("pending trigger events").
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def labels_to_ids(apps, schema_editor):
    _checks_now(schema_editor)
    RoleMember = apps.get_model("pki", "RoleMember")
    Provider = apps.get_model("pki", "TrustedOAuthProvider")
    ids = dict(Provider.objects.values_list("label", "id"))
    for member in RoleMember.objects.exclude(provider="").only("id", "provider", "match_type"):
        RoleMember.objects.filter(pk=member.pk).update(provider_ref_id=ids.get(member.provider))
    # OAuth members without an existing provider: orphans a new namesake would have inherited.
    RoleMember.objects.filter(match_type="OAUTH_CLAIM", provider_ref__isnull=True).delete()


def ids_to_labels(apps, schema_editor):
    _checks_now(schema_editor)
    RoleMember = apps.get_model("pki", "RoleMember")
    for member in RoleMember.objects.filter(provider_ref__isnull=False).select_related("provider_ref"):
        RoleMember.objects.filter(pk=member.pk).update(provider=member.provider_ref.label)


class Migration(migrations.Migration):

    dependencies = [
        ("pki", "0007_auth_throttle"),
    ]

    operations = [
        migrations.AddField(
            model_name="trustedoauthprovider",
            name="max_token_lifetime",
            field=models.PositiveIntegerField(
                default=86400, help_text="Seconds a token may be valid for at most (0: no limit)"),
        ),
        migrations.AddConstraint(
            model_name="trustedoauthprovider",
            constraint=models.CheckConstraint(condition=models.Q(max_token_lifetime__lte=2592000),
                                              name="oauth_provider_max_token_lifetime_max"),
        ),
        migrations.RemoveConstraint(model_name="rolemember", name="unique_member_per_role"),
        migrations.AddField(
            model_name="rolemember",
            name="provider_ref",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+", to="pki.trustedoauthprovider"),
        ),
        migrations.RunPython(labels_to_ids, ids_to_labels),
        migrations.RemoveField(model_name="rolemember", name="provider"),
        migrations.RenameField(model_name="rolemember", old_name="provider_ref", new_name="provider"),
        migrations.AlterField(
            model_name="rolemember",
            name="provider",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="role_members", to="pki.trustedoauthprovider"),
        ),
        migrations.AddConstraint(
            model_name="rolemember",
            constraint=models.UniqueConstraint(
                models.F("role"), models.F("match_type"), models.F("match_value"),
                django.db.models.functions.comparison.Coalesce("provider", models.Value(0)), models.F("claim"),
                django.db.models.functions.comparison.Coalesce("issuer_ca", models.Value(0)),
                name="unique_member_per_role"),
        ),
    ]
