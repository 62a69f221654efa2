# The allowLegacyDigestAlgorithm help text says what the switch does (MD5 requests, legacy digests in replies).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("scep", "0002_scep_transaction_and_nonce"),
    ]

    operations = [
        migrations.AlterField(
            model_name="scepalias",
            name="allow_legacy_digest",
            field=models.BooleanField(
                default=False,
                help_text="Accept MD5-signed requests (refused with badAlg otherwise) and sign replies with SHA-1 or "
                          "MD5 when the request is; SHA-1 requests are accepted on every alias, answered with "
                          "SHA-256 unless this is on",
            ),
        ),
    ]
