"""Key bindings in the installation's health (keybindings.health, registered with pki.services.health): an
active binding without a valid certificate, with one about to expire or on an offline token is listed on the
dashboard with what to do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from cryptotokens import services as tokens
from keybindings import services
from keybindings.health import binding_health
from pki.models import Certificate
from pki.services.health import other_health
from tests.pki.test_views_auth import ui_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def ocsp_binding(actor, binding_factory, root_ca, cert_for):
    """An active OCSP binding with a 40-day certificate from the root CA."""
    binding = binding_factory("ocsp1", binding_type="OcspKeyBinding")
    cert = cert_for(binding, root_ca, eku=(ExtendedKeyUsageOID.OCSP_SIGNING,), days=40)
    services.import_certificate(actor, binding, cert.public_bytes(serialization.Encoding.PEM))
    binding.refresh_from_db()
    return services.set_status(actor, binding, "ACTIVE")


def _codes(binding, now) -> list[str]:
    found = [h for h in binding_health(now) if h.pk == binding.pk]
    return [p.code for p in found[0].problems] if found else ["(not listed)"]


@pytest.mark.parametrize("days_left, expected", [
    (20, []),                                      # the window is a fifth of 40 days: 8 days
    (5, ["binding_certificate_expiring"]),
    (-1, ["binding_certificate_expired"]),
])
def test_binding_certificate_expiry(ocsp_binding, days_left, expected):
    now = ocsp_binding.certificate.not_after - timedelta(days=days_left)
    assert _codes(ocsp_binding, now) == expected


def test_revoked_certificate_and_offline_token(actor, ocsp_binding, soft_token_factory):
    from django.utils import timezone

    Certificate.objects.filter(pk=ocsp_binding.certificate_id).update(status="REVOKED")
    assert _codes(ocsp_binding, timezone.now()) == ["binding_no_valid_certificate"]
    tokens.edit_token(actor, ocsp_binding.crypto_token, auto_activate=False)
    tokens.deactivate(actor, ocsp_binding.crypto_token)
    assert set(_codes(ocsp_binding, timezone.now())) == {"binding_no_valid_certificate", "binding_token_offline"}


def test_disabled_binding_is_not_a_problem(actor, ocsp_binding):
    from django.utils import timezone

    services.set_status(actor, ocsp_binding, "DISABLED")
    assert _codes(ocsp_binding, timezone.now()) == ["(not listed)"]


def test_registered_with_the_core_and_shown_on_the_dashboard(ocsp_binding, builtin_profiles):
    Certificate.objects.filter(pk=ocsp_binding.certificate_id).update(status="REVOKED")
    assert any(h.name == "ocsp1" for h in other_health())
    html = ui_client("kbadmin", ["/"]).get("/").content.decode()
    attention = html.split('id="attention"')[1]
    assert f'href="/keybindings/{ocsp_binding.pk}/">OCSP responder ocsp1</a>' in attention
    assert 'data-problem="binding_no_valid_certificate"' in attention
    # Someone who may not see key bindings is not told about them.
    html = ui_client("caonly", ["/administrator", "/ca_functionality/view_ca", "/ca/"]).get("/").content.decode()
    assert "ocsp1" not in html
