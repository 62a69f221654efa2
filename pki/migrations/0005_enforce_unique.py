"""EJBCA's "Enforce unique public keys / DN / Subject DN SerialNumber" CA settings and the certified key's
SHA-256 on every certificate row (filled here for the rows that exist)."""

import hashlib

from django.db import migrations, models

BATCH = 500


def spki_sha256(der: bytes) -> str:
    """SHA-256 of a certificate's SubjectPublicKeyInfo. Re-encoded through ``cryptography`` as issuance does;
    a key cryptography cannot load (explicit EC parameters) is hashed as it is written in the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except Exception:  # noqa: BLE001 - a key cryptography does not load: read it with asn1crypto
        from asn1crypto import x509 as a_x509

        try:
            spki = _named_curve_form(a_x509.Certificate.load(der)["tbs_certificate"]["subject_public_key_info"])
        except Exception:  # noqa: BLE001 - not a certificate at all: leave the row without a hash
            return ""
    return hashlib.sha256(spki).hexdigest()


def _named_curve_form(info) -> bytes:
    """An EC key with explicit parameters of a known curve (what ICAO tokens write) in its named-curve form,
    the form issuance hashes (the requester's key); any other key as it is written."""
    from asn1crypto import keys

    from pki.x509.explicit_ec import SPECIFIED_DOMAINS

    params = info["algorithm"]["parameters"]
    if info["algorithm"]["algorithm"].native == "ec" and params.name == "specified":
        written = params.chosen.dump()
        for name, domain in SPECIFIED_DOMAINS.items():
            if domain == written:
                return keys.PublicKeyInfo({
                    "algorithm": keys.PublicKeyAlgorithm({
                        "algorithm": "ec", "parameters": keys.ECDomainParameters(name="named", value=name.lower()),
                    }),
                    "public_key": info["public_key"].copy(),
                }).dump(force=True)
    return info.dump()


def fill_public_key_hashes(apps, schema_editor):
    Certificate = apps.get_model("pki", "Certificate")
    last = 0
    while True:
        rows = list(Certificate.objects.filter(pk__gt=last, public_key_sha256="").order_by("pk")
                    .values_list("pk", "der")[:BATCH])
        if not rows:
            break
        for pk, der in rows:
            Certificate.objects.filter(pk=pk).update(public_key_sha256=spki_sha256(bytes(der)))
        last = rows[-1][0]


class Migration(migrations.Migration):

    dependencies = [
        ("pki", "0004_role_member_unique"),
    ]

    operations = [
        migrations.AddField(
            model_name="certificate",
            name="public_key_sha256",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["public_key_sha256"], name="cert_pubkey_idx"),
        ),
        # Existing CAs keep issuing as before (off); new CAs get EJBCA's defaults (the AlterFields below).
        migrations.AddField(
            model_name="certificateauthority",
            name="enforce_unique_public_keys",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="certificateauthority",
            name="enforce_unique_dn",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="certificateauthority",
            name="enforce_unique_dn_serial_number",
            field=models.BooleanField(default=False, help_text=(
                "Refuse a subject DN serialNumber already certified by this CA for another end entity")),
        ),
        migrations.AlterField(
            model_name="certificateauthority",
            name="enforce_unique_public_keys",
            field=models.BooleanField(default=True, help_text=(
                "Refuse a public key already certified by this CA for another end entity")),
        ),
        migrations.AlterField(
            model_name="certificateauthority",
            name="enforce_unique_dn",
            field=models.BooleanField(default=True, help_text=(
                "Refuse a subject DN already certified by this CA for another end entity")),
        ),
        migrations.RunPython(fill_public_key_hashes, migrations.RunPython.noop),
    ]
