"""pki 0014: an upgrade keeps putting the CA/B Forum organization identifier into certificates. The certificate
profiles that end entity profiles using the identifier offer or default to get the new switch on; others stay off."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from pki.models import CertificateProfile

BEFORE = ("pki", "0013_local_account")
AFTER = ("pki", "0014_cabf_switch_on_where_used")


@pytest.mark.django_db(transaction=True)
def test_profiles_used_with_the_identifier_get_the_switch(actor, builtin_profiles):
    from endentities.models import EndEntityProfile
    from pki.services.profiles import clone_profile

    enduser = CertificateProfile.objects.get(name="ENDUSER")
    offered, default, unused = (clone_profile(actor, enduser, n) for n in ("EV-OFFERED", "EV-DEFAULT", "PLAIN"))
    ev = EndEntityProfile.objects.create(name="EV", cabf_organization_identifier_use=True,
                                         default_certificate_profile=default)
    ev.available_certificate_profiles.set([offered, default])
    other = EndEntityProfile.objects.create(name="Other", default_certificate_profile=unused)
    other.available_certificate_profiles.set([unused])
    CertificateProfile.objects.update(use_cabf_organization_identifier=False)
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    switched = set(CertificateProfile.objects.filter(use_cabf_organization_identifier=True)
                   .values_list("name", flat=True))
    assert switched == {"EV-OFFERED", "EV-DEFAULT"}
