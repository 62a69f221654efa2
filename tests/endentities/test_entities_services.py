"""End entity services: add, edit, status, passwords, revoke, delete, search, access rules, audit."""

from __future__ import annotations

import pytest

from endentities.choices import EndEntityStatus, TokenType
from endentities.models import EndEntity
from endentities.services import (
    EndEntityQuery,
    add_end_entity,
    delete_end_entity,
    edit_end_entity,
    find_end_entity,
    revoke_end_entity,
    search_end_entities,
    set_clear_password,
    set_password,
    set_status,
)
from endentities.services.passwords import check_password, decrypt_clear_password
from endentities.validation import EndEntityInput
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from pki.models import AuditEvent

from .entities_support import *  # noqa: F403  (the shared fixtures)

pytestmark = pytest.mark.django_db(transaction=False)


def test_add_stores_hash_never_the_password(entity_factory):
    ee = entity_factory("alice", password="foo123")
    row = EndEntity.objects.get(username="alice")
    assert row.status == EndEntityStatus.NEW == 10
    assert row.password_hash.startswith("pbkdf2_sha256$") and "foo123" not in row.password_hash
    assert row.clear_password == ""  # the profile keeps no recoverable copy
    assert check_password("foo123", row.password_hash) and not check_password("foo124", row.password_hash)
    assert row.token_type == TokenType.USERGENERATED == 1
    assert row.subject_dn == "CN=alice,O=Test,C=SE"
    assert row.ca_id == ee.ca_id and row.request_counter == 1
    event = AuditEvent.objects.filter(event_type="RA_ADDENDENTITY", object_id="alice").get()
    assert event.details["subject"] == "CN=alice,O=Test,C=SE"


def test_username_taken_is_conflict_and_changes_nothing(entity_factory):
    entity_factory("alice")
    with pytest.raises(ConflictError) as exc:
        entity_factory("alice", subject_dn="CN=other")
    assert exc.value.field == "username"
    assert EndEntity.objects.get(username="alice").subject_dn == "CN=alice,O=Test,C=SE"
    assert AuditEvent.objects.filter(event_type="RA_ADDENDENTITY").count() == 1


def test_profile_rule_refusal_stores_nothing(entity_factory):
    with pytest.raises(ValidationError) as exc:
        entity_factory("nocn", subject_dn="O=Test,C=SE")  # CN is required by the profile
    assert exc.value.field == "subject_dn"
    assert not EndEntity.objects.filter(username="nocn").exists()


def test_redacted_profile_hides_subject_in_audit(ee_profile_factory, root_ca, entity_factory):
    secret = ee_profile_factory("Secret", ca=root_ca, redact_subject=True)
    entity_factory("bob", profile=secret, subject_alt_name="DNSNAME=bob.example")
    event = AuditEvent.objects.get(event_type="RA_ADDENDENTITY", object_id="bob")
    assert "bob" not in str(event.details.get("subject")) and event.details["subject"]
    assert "bob.example" not in str(event.details)


def test_recoverable_password_only_when_profile_keeps_it(ee_profile_factory, root_ca, entity_factory, actor):
    keeper = ee_profile_factory("Keeper", ca=root_ca, clear_password_use=True, clear_password_default=True)
    ee = entity_factory("carol", password="foo123", profile=keeper)
    assert decrypt_clear_password("carol", ee.clear_password) == "foo123"
    assert "foo123" not in ee.clear_password
    # The copy is bound to its username: moved to another row it does not decrypt.
    assert decrypt_clear_password("mallory", ee.clear_password) is None
    entity_factory("dave", password="foo123")
    with pytest.raises(ValidationError):
        set_clear_password(actor, "dave", "bar456")
    assert set_clear_password(actor, "carol", "bar456").clear_password
    # Enrolled (GENERATED): the recoverable copy is dropped; the hash stays.
    from endentities.services import enroll

    from .entities_support import csr_for

    enroll("carol", "bar456", csr=csr_for("CN=carol"), interface="cli")
    carol = EndEntity.objects.get(username="carol")
    assert carol.clear_password == "" and check_password("bar456", carol.password_hash)


def test_set_status_new_resets_request_counter(ee_profile_factory, root_ca, entity_factory, actor):
    multi = ee_profile_factory("Multi", ca=root_ca, allowed_requests_use=True, allowed_requests_default=3,
                               allowed_requests_max=5)
    ee = entity_factory("erin", profile=multi)
    assert (ee.allowed_requests, ee.request_counter) == (3, 3)
    EndEntity.objects.filter(pk=ee.pk).update(request_counter=0, status=EndEntityStatus.GENERATED,
                                              failed_login_count=2)
    ee = set_status(actor, "erin", "NEW")
    assert (ee.status, ee.request_counter, ee.failed_login_count) == (EndEntityStatus.NEW, 3, 0)
    assert set_status(actor, "erin", 40).status == EndEntityStatus.GENERATED
    with pytest.raises(ValidationError) as exc:
        set_status(actor, "erin", "BOGUS")
    assert exc.value.field == "status"


def test_edit_keeps_password_unless_given(entity_factory, actor):
    entity_factory("frank", password="foo123")
    before = EndEntity.objects.get(username="frank").password_hash
    ee = edit_end_entity(actor, "frank", EndEntityInput(subject_dn="CN=Frank Franksson,O=Test"))
    assert ee.subject_dn == "CN=Frank Franksson,O=Test" and ee.password_hash == before
    ee = edit_end_entity(actor, "frank", EndEntityInput(subject_dn="CN=Frank", password="newpass1"))
    assert check_password("newpass1", ee.password_hash)
    assert AuditEvent.objects.filter(event_type="RA_EDITENDENTITY", object_id="frank").count() == 2


def test_password_strength_rule(ee_profile_factory, root_ca, entity_factory, actor):
    strong = ee_profile_factory("Strong", ca=root_ca, password_min_strength_bits=55)
    with pytest.raises(ValidationError) as exc:
        entity_factory("gina", password="foobar12", profile=strong)  # 8 characters: 49 bits
    assert exc.value.field == "password"
    entity_factory("gina", password="foobar123", profile=strong)  # 9 characters: 55 bits
    with pytest.raises(ValidationError):
        set_password(actor, "gina", "short")


def test_revoke_end_entity_revokes_all_certificates(entity_factory, actor, csr_factory):
    from endentities.services import enroll
    from pki.choices import CertificateStatus
    from pki.models import Certificate

    entity_factory("henry", password="foo123")
    csr, _ = csr_factory("CN=henry")
    issued = enroll("henry", "foo123", csr=csr, interface="cli")
    ee = revoke_end_entity(actor, "henry", "KEY_COMPROMISE")
    assert ee.status == EndEntityStatus.REVOKED
    cert = Certificate.objects.get(pk=issued.row.pk)
    assert cert.status == CertificateStatus.REVOKED and cert.revocation_reason == 1
    with pytest.raises(ConflictError):
        revoke_end_entity(actor, "henry", 0)
    assert AuditEvent.objects.filter(event_type="RA_REVOKEDENDENTITY", object_id="henry").count() == 1


def test_delete(entity_factory, actor):
    entity_factory("ivan")
    delete_end_entity(actor, "ivan")
    assert not EndEntity.objects.filter(username="ivan").exists()
    with pytest.raises(NotFoundError):
        delete_end_entity(actor, "ivan")
    assert AuditEvent.objects.filter(event_type="RA_DELETEENDENTITY", object_id="ivan").exists()


def _operator(*rules: str) -> Actor:
    return Actor(name="op", role_rules={"RA": [(r, True) for r in rules]})


def test_access_rules(entity_factory, ee_profile, root_ca):
    entity_factory("judy")
    pid, cid = ee_profile.pk, root_ca.pk
    data = EndEntityInput(username="kim", password="foo123", subject_dn="CN=kim")
    # Each of the three rules is needed: the RA function, the profile's rule, the CA's.
    for missing in range(3):
        rules = ["/ra_functionality/create_end_entity", f"/endentityprofilesrules/{pid}/create_end_entity",
                 f"/ca/{cid}"]
        del rules[missing]
        with pytest.raises(AuthorizationDenied):
            add_end_entity(_operator(*rules), data, profile=ee_profile)
    assert not EndEntity.objects.filter(username="kim").exists()
    op = _operator("/ra_functionality/create_end_entity", f"/endentityprofilesrules/{pid}/create_end_entity",
                   f"/ca/{cid}")
    add_end_entity(op, data, profile=ee_profile)
    with pytest.raises(AuthorizationDenied):
        set_status(op, "kim", "GENERATED")  # no edit rule
    viewer = _operator("/ra_functionality/view_end_entity", f"/endentityprofilesrules/{pid}/view_end_entity")
    # Without the CA rule the end entities of that CA are invisible.
    assert list(search_end_entities(viewer, EndEntityQuery())) == []
    with pytest.raises(NotFoundError):
        find_end_entity(viewer, "judy")
    viewer.role_rules["RA"].append((f"/ca/{cid}", True))
    assert [e.username for e in search_end_entities(viewer, EndEntityQuery())] == ["judy", "kim"]


@pytest.mark.parametrize("query, expected", [
    (EndEntityQuery(text="ali"), ["alice"]),
    (EndEntityQuery(usernames=[("bob", "EQUAL")]), ["bob"]),
    (EndEntityQuery(usernames=[("o", "LIKE")]), ["bob", "carol"]),
    (EndEntityQuery(subjects=[("O=Acme", "LIKE")]), ["carol"]),
    (EndEntityQuery(statuses=[40]), ["bob"]),
    (EndEntityQuery(statuses=[10], usernames=[("carol", "EQUAL"), ("alice", "EQUAL")]), ["alice", "carol"]),
])
def test_search(entity_factory, actor, query, expected):
    entity_factory("alice")
    entity_factory("bob", status="GENERATED")
    entity_factory("carol", subject_dn="CN=carol,O=Acme")
    assert [e.username for e in search_end_entities(actor, query)] == expected


@pytest.mark.parametrize("value, code", [
    ("NEW", 10), ("FAILED", 11), ("INITIALIZED", 20), ("INPROCESS", 30), ("GENERATED", 40), ("REVOKED", 50),
    ("HISTORICAL", 60), ("KEYRECOVERY", 70), ("new", 10), ("40", 40), (50, 50),
])
def test_ejbca_status_codes(value, code):
    assert int(EndEntityStatus.parse(value)) == code


@pytest.mark.parametrize("value, code", [
    ("USERGENERATED", 1), ("P12", 2), ("PKCS12", 2), ("JKS", 3), ("PEM", 4), ("BCFKS", 5), ("1", 1), (3, 3),
])
def test_ejbca_token_codes(value, code):
    assert int(TokenType.parse(value)) == code


@pytest.mark.parametrize("bad", ["SLEEPING", "12", ""])
def test_unknown_status(bad):
    with pytest.raises(ValueError):
        EndEntityStatus.parse(bad)
