"""Upgrades keep issuing what they issued: the CA/B Forum organization identifier now needs its certificate profile
switch (0012, off by default), so it is switched on for every certificate profile an end entity profile that uses
the identifier offers or defaults to. New profiles start with it off, as in EJBCA."""

from django.db import migrations


def switch_on_where_used(apps, schema_editor):
    EndEntityProfile = apps.get_model("endentities", "EndEntityProfile")
    CertificateProfile = apps.get_model("pki", "CertificateProfile")
    ids = set()
    for profile in EndEntityProfile.objects.filter(cabf_organization_identifier_use=True):
        if profile.default_certificate_profile_id:
            ids.add(profile.default_certificate_profile_id)
        ids.update(profile.available_certificate_profiles.values_list("pk", flat=True))
    CertificateProfile.objects.filter(pk__in=ids).update(use_cabf_organization_identifier=True)


class Migration(migrations.Migration):

    dependencies = [
        ("pki", "0013_local_account"),
        ("endentities", "0003_profile_options"),
    ]

    operations = [
        migrations.RunPython(switch_on_where_used, migrations.RunPython.noop),
    ]
