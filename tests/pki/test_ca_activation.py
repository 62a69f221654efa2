"""Activating and deactivating a CA's service (EJBCA's ca_management activate/deactivate, CLI activateca)."""

import pytest

from pki.auth.access import Actor
from pki.choices import CAStatus
from pki.errors import AuthorizationDenied, ValidationError
from pki.models import AuditEvent, CertificateAuthority
from pki.services.cas import set_ca_active


def test_deactivate_then_activate_switches_status_and_audits(root_ca, actor):
    set_ca_active(actor, root_ca, False)
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.OFFLINE
    assert root_ca.status == CAStatus.OFFLINE
    set_ca_active(actor, root_ca, True)
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.ACTIVE
    events = AuditEvent.objects.filter(object_type="ca", object_id=str(root_ca.pk), event_type__startswith="CA_SERVICE")
    events = list(events.order_by("sequence").values_list("event_type", flat=True))
    assert events == ["CA_SERVICEDEACTIVATE", "CA_SERVICEACTIVATE"]


@pytest.mark.parametrize("rules", [
    [("/ca", True)],                                   # the CA but not the function
    [("/ca_functionality/activate_ca", True)],          # the function but not the CA
])
def test_activation_needs_the_function_and_the_ca(root_ca, rules):
    op = Actor(name="op", role_rules={"r": rules})
    with pytest.raises(AuthorizationDenied):
        set_ca_active(op, root_ca, False)
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.ACTIVE


def test_external_ca_cannot_be_switched(root_ca, actor):
    external = CertificateAuthority.objects.create(name="Ext", subject_dn="CN=Ext", status=CAStatus.EXTERNAL,
                                                   signature_algorithm="", validity="")
    with pytest.raises(ValidationError, match="external"):
        set_ca_active(actor, external, True)
    assert CertificateAuthority.objects.get(pk=external.pk).status == CAStatus.EXTERNAL
