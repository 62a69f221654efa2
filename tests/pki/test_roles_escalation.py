"""Editing roles is no way around one's own deny rules (issue 11, item 5).

Property tests over random rule trees: whatever rules an editor of roles holds (allows and denies on nested
paths, in one or two roles) and whatever rule set it asks for, a successful edit leaves the edited role
allowing nothing that the editor is denied, and joining (or adding anyone to) a role that is more powerful
than the editor is refused. Refusals are exact too: an edit that grants nothing beyond the editor succeeds.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki.auth.access import Actor, role_allows
from pki.choices import MemberMatch
from pki.errors import AuthorizationDenied
from pki.models import AccessRule, Role
from pki.services import roles as svc
from pki.services.roles import EDIT_RULE, VIEW_RULE, MemberSpec, uncovered

CA_ID = 424242  # a per-CA path; the DB-backed tests create the CA and substitute its id

# A small rule tree with nesting on every level (everything under /system_functionality stays out: the
# editor always holds the rules to edit roles, which it is given separately).
TREE = ["/", "/ca", f"/ca/{CA_ID}", "/ca_functionality", "/ca_functionality/view_ca",
        "/ca_functionality/create_certificate", "/ra_functionality", "/ra_functionality/create_end_entity",
        "/cryptotoken", "/cryptotoken/view", "/audit/view"]


def rule_sets(paths: list[str], max_size: int = 6):
    return st.dictionaries(st.sampled_from(paths), st.booleans(), max_size=max_size)


def probes(paths: list[str]) -> list[str]:
    """Every path of the tree and a resource below each that no rule names (e.g. another CA's id)."""
    return sorted(set(paths) | {p.rstrip("/") + "/unnamed" for p in paths} | {"/elsewhere"})


def editor_with(rule_dicts: list[dict[str, bool]]) -> Actor:
    roles = {f"editor-role-{i}": list(rules.items()) for i, rules in enumerate(rule_dicts)}
    roles["may-edit-roles"] = [(EDIT_RULE, True), (VIEW_RULE, True)]
    return Actor("editor", role_rules=roles)


def beyond(editor: Actor, rules: dict[str, bool], paths: list[str]) -> list[str]:
    """Resources a role with ``rules`` would be allowed and the editor is not (brute force over probes)."""
    return [r for r in probes(paths) if role_allows(list(rules.items()), r) and not editor.is_allowed(r)]


# --- The check itself, many examples (no database) ---------------------------------------------------

@settings(max_examples=1500, deadline=None, database=None)
@given(editor_rules=st.lists(rule_sets(TREE), min_size=1, max_size=2), grant=rule_sets(TREE))
def test_uncovered_finds_exactly_the_grants_beyond_the_editor(editor_rules, grant):
    editor = editor_with(editor_rules)
    found = uncovered(editor, list(grant.items()))
    violations = beyond(editor, grant, TREE)
    assert (found is None) == (not violations), (found, violations)
    if found is not None:
        assert role_allows(list(grant.items()), found) and not editor.is_allowed(found)


@pytest.mark.parametrize(("editor_rules", "grant", "refused_at"), [
    # The attack: allowed /ca but denied one CA, the editor grants /ca (or lifts the deny) to a role.
    ({"/ca": True, f"/ca/{CA_ID}": False}, {"/ca": True}, f"/ca/{CA_ID}"),
    ({"/ca": True, f"/ca/{CA_ID}": False}, {"/": True}, "/"),
    ({"/ca_functionality": True, "/ca_functionality/create_certificate": False}, {"/ca_functionality": True},
     "/ca_functionality/create_certificate"),
    # The grant carries the editor's deny: allowed.
    ({"/ca": True, f"/ca/{CA_ID}": False}, {"/ca": True, f"/ca/{CA_ID}": False}, None),
    # Denying more than the editor is always fine; so is a deny the editor does not hold.
    ({"/ca": True}, {"/ca": False, "/cryptotoken": False}, None),
    ({"/": True, "/audit/view": False}, {"/": True, "/audit/view": False}, None),
    ({"/": True, "/audit/view": False}, {"/audit": True}, "/audit/view"),
])
def test_grants_below_a_denied_path(editor_rules, grant, refused_at):
    assert uncovered(editor_with([editor_rules]), list(grant.items())) == refused_at


# --- Through the roles service, against the database --------------------------------------------------

class _Rollback(Exception):
    pass


def _in_rollback(fn) -> None:
    """Run ``fn`` in a transaction that is always rolled back (one Hypothesis example each)."""
    try:
        with transaction.atomic():
            fn()
            raise _Rollback
    except _Rollback:
        pass


@pytest.fixture
def tree(root_ca) -> list[str]:
    return [p.replace(str(CA_ID), str(root_ca.pk)) for p in TREE]


DB_SETTINGS = settings(max_examples=80, deadline=None, database=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture])


@DB_SETTINGS
@given(data=st.data())
def test_a_successful_rule_edit_never_allows_what_the_editor_is_denied(tree, data):
    editor_rules = data.draw(st.lists(rule_sets(tree), min_size=1, max_size=2), label="editor")
    grant = data.draw(rule_sets(tree), label="grant")
    editor = editor_with(editor_rules)

    def example():
        role = svc.create_role(editor, "Escalation target")
        try:
            svc.set_rules(editor, role, grant)
        except AuthorizationDenied as exc:
            assert beyond(editor, grant, tree), f"refused {exc.resource} though the grant is within the editor"
            assert not AccessRule.objects.filter(role=role).exists()
            return
        saved = dict(AccessRule.objects.filter(role=role).values_list("resource", "allowed"))
        assert saved == grant
        assert beyond(editor, saved, tree) == []

    _in_rollback(example)


@DB_SETTINGS
@given(data=st.data())
def test_joining_a_more_powerful_role_is_refused(tree, data):
    editor_rules = data.draw(st.lists(rule_sets(tree), min_size=1, max_size=2), label="editor")
    target_rules = data.draw(rule_sets(tree), label="target role")
    editor = editor_with(editor_rules)

    def example():
        target = Role.objects.create(name="Target")
        AccessRule.objects.bulk_create([AccessRule(role=target, resource=p, allowed=a)
                                        for p, a in target_rules.items()])
        more_powerful = bool(beyond(editor, target_rules, tree))
        for who in ("editor", "somebody-else"):  # adding oneself or anyone else
            try:
                svc.add_member(editor, target, MemberSpec(MemberMatch.LOCAL_USER, who))
            except AuthorizationDenied:
                assert more_powerful
            else:
                assert not more_powerful
        assert target.members.exists() is not more_powerful

    _in_rollback(example)


def test_create_and_join_a_role_carrying_a_lifted_deny_is_refused(root_ca):
    """The attack end to end: denied one CA, an editor creates a role, joins it and grants it /ca."""
    editor = editor_with([{"/ca": True, f"/ca/{root_ca.pk}": False, "/ca_functionality": True}])
    role = svc.create_role(editor, "Side door")
    svc.add_member(editor, role, MemberSpec(MemberMatch.LOCAL_USER, "editor"))
    with pytest.raises(AuthorizationDenied, match=f"/ca/{root_ca.pk}"):
        svc.set_rules(editor, role, {"/ca": True, "/ca_functionality": True})
    assert not role.rules.exists()
    svc.set_rules(editor, role, {"/ca": True, f"/ca/{root_ca.pk}": False})  # carrying the deny is fine
    assert dict(role.rules.values_list("resource", "allowed")) == {"/ca": True, f"/ca/{root_ca.pk}": False}
