"""EJBCA's "Enable End Entity Profile Limitations" (PKI_END_ENTITY_PROFILE_LIMITATIONS, on by default): on, an RA
operator needs the end entity profile's own rule (``/endentityprofilesrules/<id>/<action>``); off, the RA rights
cover every profile, deny rules on profiles included. The RA rule and the CA rule still decide either way."""

from __future__ import annotations

import pytest

from endentities.models import EndEntity
from endentities.services import add_end_entity
from endentities.validation import EndEntityInput
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied

from .entities_support import *  # noqa: F403

pytestmark = pytest.mark.django_db


def _operator(*rules: tuple[str, bool]) -> Actor:
    return Actor(name="operator", role_rules={"RA": [("/ra_functionality", True), ("/ca", True), *rules]})


def _add(actor: Actor, ee_profile, username: str):
    return add_end_entity(actor, EndEntityInput(username=username, password="foo123", subject_dn=f"CN={username}"),
                          profile=ee_profile)


@pytest.mark.parametrize("limitations, rules, allowed", [
    (True, [], False),                                                    # no rule for the profile
    (True, [("/endentityprofilesrules", True)], True),
    (False, [], True),                                                    # limitations off: RA rights suffice
    (False, [("/endentityprofilesrules", False)], True),                  # ... deny rules on profiles too
])
def test_profile_rules_follow_the_switch(settings, ee_profile, limitations, rules, allowed):
    settings.PKI_END_ENTITY_PROFILE_LIMITATIONS = limitations
    actor = _operator(*rules)
    if allowed:
        _add(actor, ee_profile, "u1")
        assert EndEntity.objects.filter(username="u1").exists()
        assert list(EndEntity.objects.restrict(actor, "view").values_list("username", flat=True)) == ["u1"]
    else:
        with pytest.raises(AuthorizationDenied, match="endentityprofilesrules"):
            _add(actor, ee_profile, "u1")
        assert not EndEntity.objects.filter(username="u1").exists()


def test_the_ra_and_ca_rules_still_decide_with_limitations_off(settings, ee_profile, root_ca):
    settings.PKI_END_ENTITY_PROFILE_LIMITATIONS = False
    no_ra = Actor(name="viewer", role_rules={"V": [("/ca", True)]})
    with pytest.raises(AuthorizationDenied, match="ra_functionality"):
        _add(no_ra, ee_profile, "u2")
    denied_ca = _operator((f"/ca/{root_ca.pk}", False))
    with pytest.raises(AuthorizationDenied, match=f"/ca/{root_ca.pk}"):
        add_end_entity(denied_ca, EndEntityInput(username="u3", password="foo123", subject_dn="CN=u3", ca=root_ca),
                       profile=ee_profile)
    assert not EndEntity.objects.filter(username__in=["u2", "u3"]).exists()
