"""Deleting a certificate profile something uses is refused with its users named: end entities (was a 500 from
the database's PROTECT), end entity profiles that offer it or default to it (was deleted silently, leaving them
without it), SCEP aliases (the same), CAs. Nothing changes on a refusal; an unused profile is deleted."""

from __future__ import annotations

import pytest

from endentities.models import EndEntityProfile
from pki.errors import ConflictError
from pki.models import AuditEvent, CertificateProfile
from pki.services.profiles import clone_profile, delete_profile
from tests.pki.test_views_auth import ui_client

from .entities_support import *  # noqa: F403

pytestmark = pytest.mark.django_db


@pytest.fixture
def vpn(actor, builtin_profiles):
    return clone_profile(actor, CertificateProfile.objects.get(name="ENDUSER"), "VPN")


def _used_by_entities(actor, vpn, ee_profile, entity_factory, names=("alice", "bob")):
    ee_profile.available_certificate_profiles.add(vpn)
    for name in names:
        entity_factory(name, certificate_profile="VPN")
    ee_profile.available_certificate_profiles.remove(vpn)  # the entities alone hold it


def _default_of(actor, vpn, ee_profile, entity_factory):
    ee_profile.default_certificate_profile = vpn
    ee_profile.save()


def _offered_by(actor, vpn, ee_profile, entity_factory):
    ee_profile.available_certificate_profiles.add(vpn)


def _scep_alias(actor, vpn, ee_profile, entity_factory):
    from protocols.scep import services

    # (Its CA: the end entity profile's default one.)
    services.add_alias(actor, "devices", operation_mode="ra", ra_auth_password="s3cret",
                       ra_certificate_profile="VPN", ra_end_entity_profile="TestEEP")


@pytest.mark.parametrize("use, named", [
    (_used_by_entities, ["end entity 'alice'", "end entity 'bob'"]),
    (_default_of, ["end entity profile 'TestEEP' (its default)"]),
    (_offered_by, ["end entity profile 'TestEEP'"]),
    (_scep_alias, ["SCEP alias 'devices'"]),
])
def test_a_profile_in_use_is_refused_with_its_users_named(actor, vpn, ee_profile, entity_factory, use, named):
    use(actor, vpn, ee_profile, entity_factory)
    events = AuditEvent.objects.count()
    with pytest.raises(ConflictError) as refused:
        delete_profile(actor, vpn)
    for name in named:
        assert name in refused.value.message
    assert CertificateProfile.objects.filter(pk=vpn.pk).exists()
    assert AuditEvent.objects.count() == events
    ee_profile.refresh_from_db()
    assert ee_profile.default_certificate_profile is not None  # nothing was taken from the end entity profile


def test_many_end_entities_are_named_up_to_ten(actor, vpn, ee_profile, entity_factory):
    _used_by_entities(actor, vpn, ee_profile, entity_factory, names=[f"user{i:02d}" for i in range(13)])
    with pytest.raises(ConflictError) as refused:
        delete_profile(actor, vpn)
    assert "end entity 'user09'" in refused.value.message and "user10" not in refused.value.message
    assert "3 more end entities" in refused.value.message


def test_an_unused_profile_is_deleted_and_audited(actor, vpn, ee_profile):
    delete_profile(actor, vpn)
    assert not CertificateProfile.objects.filter(pk=vpn.pk).exists()
    assert AuditEvent.objects.filter(event_type="CERTPROFILE_DELETION", details__name="VPN").exists()
    assert EndEntityProfile.objects.get(pk=ee_profile.pk).default_certificate_profile.name == "ENDUSER"


def test_the_admin_page_refuses_with_the_names_not_a_500(actor, vpn, ee_profile, entity_factory):
    _used_by_entities(actor, vpn, ee_profile, entity_factory)
    admin = ui_client("profileadmin", ["/"])
    r = admin.post(f"/profiles/{vpn.pk}/delete/", follow=True)
    assert r.status_code == 200
    html = r.content.decode()
    assert "is used by end entity &#x27;alice&#x27;, end entity &#x27;bob&#x27;" in html
    assert CertificateProfile.objects.filter(pk=vpn.pk).exists()
