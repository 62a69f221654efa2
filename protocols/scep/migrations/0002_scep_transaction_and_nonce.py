# SCEP transactions (RFC 8894 3.3.1: a re-sent request gets the same answer) and recently seen senderNonces.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('pki', '0002_audit_chain_head'),
        ('scep', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='ScepNonce',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.BinaryField(max_length=32, unique=True)),
                ('created_at', models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.CreateModel(
            name='ScepTransaction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('transaction_id', models.CharField(max_length=255)),
                ('request_key', models.CharField(max_length=64)),
                ('request_digest', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField()),
                ('alias', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='scep.scepalias')),
                ('certificate', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='pki.certificate')),
            ],
            options={
                'indexes': [models.Index(fields=['created_at'], name='scep_transaction_created')],
                'constraints': [models.UniqueConstraint(fields=('alias', 'transaction_id'), name='unique_scep_transaction')],
            },
        ),
    ]
