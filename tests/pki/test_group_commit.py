"""Group commit of concurrent issuances (pki.group_commit, used by pki.issuance): certificates signed by
several threads of a process meanwhile are stored in one transaction, each caller returns after the commit that
holds its certificate, a refused certificate costs only itself, and a batch that fails as a whole is stored one
by one."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.db import connection, transaction

from pki import audit, issuance, issuance_store
from pki.audit import verify_chain
from pki.errors import ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.uniqueness import Candidate, refusals

DN_REFUSED = "is not allowed to use same subject DN"


@pytest.fixture
def watch_batches(monkeypatch):
    """Call it to record the sizes of the storing transactions from then on; the first one waits 0.5 s, so the
    certificates that other threads sign meanwhile queue up behind it and go together into the next one."""

    def watch() -> list[int]:
        sizes: list[int] = []
        plain = issuance_store.store

        def store(items):
            if not sizes:
                time.sleep(0.5)
            sizes.append(len(items))
            return plain(items)

        monkeypatch.setattr(issuance_store, "store", store)
        return sizes

    return watch


def _run(calls):
    """Run each call in its own thread (the first one started a little ahead); returns results and errors."""
    results: dict[int, object] = {}

    def work(i, call):
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - compared by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, call)) for i, call in enumerate(calls)]
    threads[0].start()
    time.sleep(0.1)  # the first thread leads; the others sign while it stores
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in range(len(calls))]


def _request(ca, actor, csr_factory, dn, username=""):
    profile = CertificateProfile.objects.get(name="ENDUSER")
    csr, _ = csr_factory(dn)
    return lambda: issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csr, username=username))


@pytest.mark.django_db(transaction=True)
def test_concurrent_certificates_share_a_commit_and_each_is_stored_and_audited(ca_factory, actor, csr_factory,
                                                                               watch_batches):
    ca = ca_factory("GroupCA")
    batches = watch_batches()
    calls = [_request(ca, actor, csr_factory, f"CN=group{i}", username=f"user{i}") for i in range(6)]
    issued = _run(calls)
    assert all(not isinstance(r, Exception) for r in issued), issued
    assert max(batches) > 1, batches  # some certificates were committed together
    assert sum(batches) == 6
    rows = Certificate.objects.filter(ca=ca, is_ca=False)
    assert sorted(rows.values_list("username", flat=True)) == [f"user{i}" for i in range(6)]
    serials = {r.row.serial for r in issued}
    assert len(serials) == 6 and set(rows.values_list("serial", flat=True)) == serials
    events = AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="SUCCESS", object_id__in=serials)
    assert events.count() == 6
    assert {e.details["username"] for e in events} == {f"user{i}" for i in range(6)}
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_a_refused_certificate_in_a_batch_costs_only_itself(ca_factory, actor, csr_factory, watch_batches):
    ca = ca_factory("GroupUniqueCA")
    batches = watch_batches()
    assert ca.enforce_unique_dn
    calls = [_request(ca, actor, csr_factory, "CN=leader", "leader"),
             _request(ca, actor, csr_factory, "CN=same", "alice"),
             _request(ca, actor, csr_factory, "CN=same", "bob"),
             _request(ca, actor, csr_factory, "CN=other", "carol")]
    leader, alice, bob, carol = _run(calls)
    assert batches[0] == 1 and 3 in batches[1:], batches  # alice, bob and carol went into one transaction
    refused = [r for r in (alice, bob) if isinstance(r, ValidationError)]
    assert len(refused) == 1 and DN_REFUSED in refused[0].message
    assert not isinstance(carol, Exception) and not isinstance(leader, Exception)
    holders = list(Certificate.objects.filter(ca=ca, subject_dn="CN=same").values_list("username", flat=True))
    assert len(holders) == 1 and holders[0] in ("alice", "bob")
    assert Certificate.objects.filter(ca=ca, is_ca=False).count() == 3
    failure = AuditEvent.objects.get(event_type="CERT_CREATION", outcome="FAILURE")
    assert DN_REFUSED in failure.details["reason"]
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_a_role_member_refusal_in_a_batch_holds_nothing_for_the_others(ca_factory, actor, csr_factory,
                                                                      watch_batches):
    """The role member check is made with the batch's uniqueness reads: a certificate it refuses is not stored, so
    it neither takes the DN from a later one of the same batch nor costs the others theirs."""
    from pki.auth.access import Actor
    from pki.choices import MemberMatch
    from pki.errors import RoleMemberMatchDenied
    from pki.models import AccessRule, Role, RoleMember

    ca = ca_factory("GroupMemberCA")
    role = Role.objects.create(name="GroupSupers")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.CERTIFICATE_CN, match_value="group-admin",
                              issuer_ca=ca)
    operator = Actor("operator", role_rules={"r": [("/ca", True), ("/ca_functionality", True)]})
    batches = watch_batches()
    leader, evil, admin, other = _run([_request(ca, actor, csr_factory, "CN=leader", "leader"),
                                       _request(ca, operator, csr_factory, "CN=group-admin", "evil"),
                                       _request(ca, actor, csr_factory, "CN=group-admin", "admin"),
                                       _request(ca, operator, csr_factory, "CN=other", "other")])
    assert batches[0] == 1 and 3 in batches[1:], batches
    assert isinstance(evil, RoleMemberMatchDenied) and "GroupSupers" in evil.message
    assert not any(isinstance(r, Exception) for r in (leader, admin, other)), (leader, admin, other)
    assert list(Certificate.objects.filter(ca=ca, subject_dn="CN=group-admin").values_list("username", flat=True)) \
        == ["admin"]
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE", actor="operator").count() == 1
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_fails_is_stored_one_by_one(ca_factory, actor, csr_factory, watch_batches, monkeypatch,
                                                 caplog):
    ca = ca_factory("GroupCollisionCA")
    taken = int(_request(ca, actor, csr_factory, "CN=first", "first")().row.serial, 16)
    batches = watch_batches()
    plain_serial = issuance.new_serial
    collided = threading.Event()

    def serial():  # the "collider" thread's first certificate gets a serial the CA has used already
        if threading.current_thread().name == "collider" and not collided.is_set():
            collided.set()
            return taken
        return plain_serial()

    monkeypatch.setattr(issuance, "new_serial", serial)
    calls = [_request(ca, actor, csr_factory, f"CN=batch{i}", f"batch{i}") for i in range(4)]
    real_thread = threading.Thread

    def named(*args, **kwargs):  # the last thread started is the collider
        t = real_thread(*args, **kwargs)
        if kwargs.get("args", (None,))[0] == 3:
            t.name = "collider"
        return t

    monkeypatch.setattr(threading, "Thread", named)
    with caplog.at_level(logging.WARNING, logger="pki.issuance"):
        issued = _run(calls)
    monkeypatch.setattr(threading, "Thread", real_thread)
    assert all(not isinstance(r, Exception) for r in issued), issued
    assert collided.is_set()
    assert "Group commit of 3 certificates failed (IntegrityError)" in caplog.text
    assert "Serial collision on CA GroupCollisionCA" in caplog.text  # the collider signed again, alone
    assert 3 in batches, batches
    rows = Certificate.objects.filter(ca=ca, is_ca=False)
    serials = set(rows.values_list("serial", flat=True))
    assert rows.count() == 5 and len(serials) == 5
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="SUCCESS", object_id__in=serials).count() == 5
    assert verify_chain().ok


def test_candidates_of_one_batch_are_checked_against_each_other(root_ca):
    key = "ab" * 32
    with transaction.atomic():
        found = refusals([Candidate(root_ca, "alice", "CN=Shared", "01" * 32),
                          Candidate(root_ca, "alice", "CN=Shared", "02" * 32),  # same user: a renewal, fine
                          Candidate(root_ca, "bob", "CN=Shared", "03" * 32),
                          Candidate(root_ca, "carol", "CN=Carol", key),
                          Candidate(root_ca, "dave", "CN=Dave", key)])
    assert found[:2] == [None, None] and found[3] is None
    assert DN_REFUSED in found[2].message and "'alice'" in found[2].message
    assert found[4].message == "User 'dave' is not allowed to use same key as another user is using."


def test_record_many_chains_events_in_order(db):
    with transaction.atomic():
        audit.record("FIRST", "tester")
        written = audit.record_many([audit.Entry("BATCH", "tester", "certificate", f"s{i}", {"n": i})
                                     for i in range(5)])
    sequences = written
    assert sequences == list(range(sequences[0], sequences[0] + 5))
    stored = AuditEvent.objects.filter(event_type="BATCH").order_by("sequence")
    stored = list(stored.values_list("object_id", "details"))
    assert stored == [(f"s{i}", {"n": i}) for i in range(5)]
    assert verify_chain().ok
