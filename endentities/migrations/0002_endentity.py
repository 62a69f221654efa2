# End entities (EJBCA's UserData). Written by hand so it holds only the EndEntity model.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('endentities', '0001_initial'),
        ('pki', '0002_audit_chain_head'),
    ]

    operations = [
        migrations.CreateModel(
            name='EndEntity',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('username', models.CharField(max_length=255, unique=True)),
                ('password_hash', models.CharField(blank=True, default='', help_text='Django password hash of the enrollment code; empty: none set', max_length=255)),
                ('clear_password', models.TextField(blank=True, default='', help_text='Recoverable copy, encrypted (cryptotokens.secrets); usually empty')),
                ('status', models.SmallIntegerField(choices=[(10, 'New'), (11, 'Failed'), (20, 'Initialized'), (30, 'In process'), (40, 'Generated'), (50, 'Revoked'), (60, 'Historical'), (70, 'Key recovery')], db_index=True, default=10)),
                ('subject_dn', models.CharField(blank=True, default='', max_length=2048)),
                ('subject_alt_name', models.TextField(blank=True, default='')),
                ('email', models.CharField(blank=True, default='', max_length=255)),
                ('token_type', models.SmallIntegerField(choices=[(1, 'User generated'), (2, 'PKCS#12 (P12)'), (3, 'Java KeyStore (JKS)'), (4, 'PEM'), (5, 'BCFKS (Bouncy Castle FIPS keystore)')], default=1)),
                ('key_recoverable', models.BooleanField(default=False)),
                ('send_notification', models.BooleanField(default=False)),
                ('allowed_requests', models.PositiveIntegerField(default=1)),
                ('request_counter', models.PositiveIntegerField(default=1)),
                ('failed_login_count', models.PositiveIntegerField(default=0)),
                ('max_failed_logins', models.IntegerField(blank=True, null=True)),
                ('extended_information', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('ca', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='end_entities', to='pki.certificateauthority')),
                ('certificate_profile', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='pki.certificateprofile')),
                ('end_entity_profile', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='end_entities', to='endentities.endentityprofile')),
            ],
            options={
                'verbose_name_plural': 'end entities',
                'ordering': ['username'],
                'indexes': [models.Index(fields=['end_entity_profile', 'status'], name='ee_profile_status_idx'), models.Index(fields=['ca', 'status'], name='ee_ca_status_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('request_counter__lte', models.F('allowed_requests'))), name='ee_request_counter_le_allowed')],
            },
        ),
    ]
