"""A new installation answers at EJBCA's default SCEP URL: ``init`` creates the alias ``scep`` (CA mode)."""

import pytest

from pki import bootstrap
from protocols.scep.models import ScepAlias


@pytest.mark.django_db
def test_init_creates_the_default_alias_once(client):
    first = bootstrap.run()
    assert "SCEP alias scep (CA mode)" in first.created
    alias = ScepAlias.objects.get(name="scep")
    assert alias.operation_mode == "ca"
    r = client.get("/ejbca/publicweb/apply/scep/pkiclient.exe", {"operation": "GetCACaps"})
    assert r.status_code == 200 and "POSTPKIOperation" in r.content.decode()
    r = client.get("/ejbca/publicweb/apply/scep/pkiclient.exe", {"operation": "GetCACert"})
    assert r.status_code == 200 and r["Content-Type"] == "application/x-x509-ca-cert"
    # init again: the operator's alias is left as it is
    ScepAlias.objects.filter(name="scep").update(include_ca=False)
    assert "SCEP alias scep (CA mode)" not in bootstrap.run().created
    assert ScepAlias.objects.get(name="scep").include_ca is False
