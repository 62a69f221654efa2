"""EJBCA's v1/ca_management: status, activate and deactivate a CA (200, no body), access rules and audit."""

import pytest

from pki.choices import CAStatus
from pki.models import AuditEvent, CertificateAuthority
from pki.services.cas import import_ca
from tests.pki.test_api_auth import (
    V1,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    superadmin_client,
)
from tests.pki.test_api_ca import external_ca_pem

ERROR_FIELDS = {"error_code", "error_message"}


@pytest.fixture
def api(db):
    return superadmin_client()


def test_status(api):
    r = api.get(f"{V1}/ca_management/status")
    assert r.status_code == 200 and r.json()["status"] == "OK"


def test_deactivate_then_activate(api, root_ca, csr_factory):
    r = api.put(f"{V1}/ca_management/TestRoot/deactivate")
    assert r.status_code == 200 and r.content == b""
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.OFFLINE
    r = api.put(f"{V1}/ca_management/TestRoot/activate")
    assert r.status_code == 200
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.ACTIVE
    assert AuditEvent.objects.filter(event_type="CA_SERVICEDEACTIVATE", actor="apiadmin").exists()


@pytest.mark.parametrize("rules, status", [
    (["/ca_functionality/view_ca", "/ca"], 403),               # may see, not switch
    (["/ca_functionality/activate_ca"], 403),                   # may switch, but not this CA
])
def test_refusals_change_nothing(db, root_ca, rules, status):
    client = make_client("op", rules)
    r = client.put(f"{V1}/ca_management/TestRoot/deactivate")
    assert r.status_code == status and set(r.json()) == ERROR_FIELDS
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.ACTIVE


def test_unknown_and_external_cas(api, root_ca, actor):
    r = api.put(f"{V1}/ca_management/NoSuchCA/activate")
    assert r.status_code == 404 and set(r.json()) == ERROR_FIELDS
    import_ca(actor, "Imported", external_ca_pem("Imported CA"))
    r = api.put(f"{V1}/ca_management/Imported/activate")
    assert r.status_code == 400 and "external" in r.json()["error_message"]


def test_get_is_not_allowed(api, root_ca):
    assert api.get(f"{V1}/ca_management/TestRoot/activate").status_code == 405


def test_unauthenticated(db, root_ca):
    from rest_framework.test import APIClient

    assert APIClient().put(f"{V1}/ca_management/TestRoot/deactivate").status_code == 401
    assert CertificateAuthority.objects.get(pk=root_ca.pk).status == CAStatus.ACTIVE
