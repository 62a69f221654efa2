"""The built-in EMPTY profile limits failed enrollment-code attempts (10, EJBCA's field), on existing
installations too; end entities of EMPTY registered without a limit get it, so their codes stop being
guessable without end (over SCEP CA mode, REST and the RA portal)."""

from django.db import migrations

LIMIT = 10


def limit_empty(apps, schema_editor):
    EndEntityProfile = apps.get_model("endentities", "EndEntityProfile")
    EndEntity = apps.get_model("endentities", "EndEntity")
    # EMPTY cannot be edited, so "not used" is the old built-in default, not an operator's choice.
    empty = EndEntityProfile.objects.filter(name="EMPTY", builtin=True, max_failed_logins_use=False).first()
    if empty is None:
        return
    empty.max_failed_logins_use = True
    empty.max_failed_logins = LIMIT
    empty.max_failed_logins_modifiable = True
    empty.save(update_fields=["max_failed_logins_use", "max_failed_logins", "max_failed_logins_modifiable"])
    EndEntity.objects.filter(end_entity_profile=empty, max_failed_logins__isnull=True).update(max_failed_logins=LIMIT)


class Migration(migrations.Migration):
    dependencies = [("endentities", "0003_profile_options")]
    operations = [migrations.RunPython(limit_empty, migrations.RunPython.noop)]
