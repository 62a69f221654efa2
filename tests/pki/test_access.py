"""Access rules: most specific rule decides, deny beats allow on a tie, any role may allow."""

import pytest

from pki.auth.access import Actor, role_allows
from pki.errors import AuthorizationDenied


@pytest.mark.parametrize(
    ("rules", "resource", "allowed"),
    [
        ([("/", True)], "/ca/3", True),
        ([("/ca", True)], "/ca/3", True),
        ([("/ca", True)], "/cab", False),
        ([("/ca", True), ("/ca/3", False)], "/ca/3", False),
        ([("/ca", True), ("/ca/3", False)], "/ca/4", True),
        ([("/", True), ("/cryptotoken/delete", False)], "/cryptotoken/delete/7", False),
        ([("/cryptotoken/activate/7", True)], "/cryptotoken/activate", False),
        ([("/ca/3", True), ("/ca/3", False)], "/ca/3", False),
        ([], "/ca/3", False),
    ],
)
def test_role_rule_resolution(rules, resource, allowed):
    assert role_allows(rules, resource) is allowed


def test_any_role_may_allow():
    actor = Actor("alice", role_rules={"A": [("/ca/1", True)], "B": [("/ca", False)]})
    assert actor.is_allowed("/ca/1")
    assert not actor.is_allowed("/ca/2")


def test_require_names_the_rule():
    actor = Actor("bob", role_rules={})
    with pytest.raises(AuthorizationDenied, match="/audit/view"):
        actor.require("/audit/view")
    assert Actor.system_actor().is_allowed("/anything")
