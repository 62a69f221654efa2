"""Tamper evidence of the audit log beyond single rows (issue 12 item 2): the head authenticates itself, every
certificate has its CERT_CREATION event, anchors recorded outside the database, and every break is listed."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from pki import audit
from pki.issuance import IssuanceRequest, issue
from pki.models import AuditChainHead, AuditEvent, Certificate, CertificateProfile


@pytest.fixture
def issue_cert(actor, csr_factory, root_ca):
    def make(cn: str = "leaf") -> Certificate:
        csr, _ = csr_factory(f"CN={cn}")
        return issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                     csr=csr)).row

    return make


@pytest.fixture
def chain(issue_cert):
    """Events #n: some plain events, then two issued certificates, then more plain events."""
    for i in range(3):
        audit.record("TEST_EVENT", "tester", object_id=i)
    certs = [issue_cert("one"), issue_cert("two")]
    for i in range(3):
        audit.record("TEST_EVENT", "tester", object_id=10 + i)
    assert audit.verify_chain().ok
    return certs


def _head() -> AuditChainHead:
    return AuditChainHead.objects.get(pk=1)


def _event_of(cert: Certificate) -> AuditEvent:
    return AuditEvent.objects.get(event_type="CERT_CREATION", object_id=cert.serial)


def _kinds(report: audit.ChainReport) -> list[tuple[str, int | None]]:
    return [(b.kind, b.sequence) for b in report.breaks]


def test_intact_chain_with_certificates_verifies(chain, capsys):
    report = audit.verify_chain()
    assert report.ok and report.breaks == [] and report.checked == _head().last_sequence
    call_command("audit", "verify")
    assert "Audit chain OK" in capsys.readouterr().out


def test_head_is_authenticated_by_every_append_path(chain):
    head = _head()
    assert head.head_mac == audit.head_mac(head.last_sequence, head.last_mac)


def test_truncated_tail_with_rewritten_head_is_detected(chain):
    """The attack of the issue: cut the tail and point the head at an earlier event, without the key."""
    cut_from = _event_of(chain[0]).sequence
    keep = AuditEvent.objects.get(sequence=cut_from - 1)
    AuditEvent.objects.filter(sequence__gte=cut_from).delete()
    AuditChainHead.objects.filter(pk=1).update(last_sequence=keep.sequence, last_mac=keep.mac)
    report = audit.verify_chain()
    assert not report.ok
    assert ("HEAD", keep.sequence) in _kinds(report)
    unaudited = [b.message for b in report.breaks if b.kind == "UNAUDITED"]
    assert len(unaudited) == 2 and all(any(c.serial in m for m in unaudited) for c in chain)


def test_replayed_old_head_is_caught_by_certificates_and_by_the_anchor(chain, tmp_path):
    """An attacker who saved an earlier (authentic) head row restores it after cutting the tail: the head's
    own MAC then passes, so the certificates without events and the external anchor must tell."""
    anchors = tmp_path / "anchors.log"
    cut_from = _event_of(chain[0]).sequence
    old = AuditEvent.objects.get(sequence=cut_from - 1)
    saved = {"last_sequence": old.sequence, "last_mac": old.mac, "head_mac": audit.head_mac(old.sequence, old.mac)}
    call_command("audit", "anchor", "--file", str(anchors))
    newest = _head().last_sequence
    AuditEvent.objects.filter(sequence__gte=cut_from).delete()
    AuditChainHead.objects.filter(pk=1).update(**saved)
    report = audit.verify_chain(audit.parse_anchors(anchors.read_text()))
    kinds = _kinds(report)
    assert ("ANCHOR", newest) in kinds and sum(k == "UNAUDITED" for k, _ in kinds) == 2
    assert "HEAD" not in {k for k, _ in kinds}  # the head itself is authentic: only the others can tell
    with pytest.raises(CommandError, match="BROKEN"):
        call_command("audit", "verify", "--anchor", str(anchors))


def test_forged_head_mac_is_detected(chain):
    AuditChainHead.objects.filter(pk=1).update(head_mac="0" * 64)
    report = audit.verify_chain()
    assert _kinds(report) == [("HEAD", _head().last_sequence)]
    assert "fails its own MAC" in report.problem


def test_head_set_back_is_detected_as_events_past_it(chain):
    last = _head().last_sequence
    earlier = AuditEvent.objects.get(sequence=last - 2)
    AuditChainHead.objects.filter(pk=1).update(last_sequence=earlier.sequence, last_mac=earlier.mac)
    kinds = _kinds(audit.verify_chain())
    assert ("HEAD", earlier.sequence) in kinds and ("ALTERED", earlier.sequence + 1) in kinds


def test_deleted_cert_creation_event_is_named(chain):
    event = _event_of(chain[1])
    event.delete()
    report = audit.verify_chain()
    assert ("MISSING", event.sequence) in _kinds(report)
    assert any(b.kind == "UNAUDITED" and chain[1].serial in b.message for b in report.breaks)
    assert not any(chain[0].serial in b.message for b in report.breaks)


def test_every_break_is_listed_not_only_the_first(chain, capsys):
    """Delete one event in the middle, alter two others apart from it, forge the head: four breaks."""
    last = _head().last_sequence
    AuditEvent.objects.filter(sequence=2).delete()
    AuditEvent.objects.filter(sequence=4).update(actor="mallory")
    AuditEvent.objects.filter(sequence=last - 1).update(details={"n": "forged"})
    AuditChainHead.objects.filter(pk=1).update(head_mac="f" * 64)
    report = audit.verify_chain()
    assert _kinds(report) == [("MISSING", 2), ("ALTERED", 4), ("ALTERED", last - 1), ("HEAD", last)]
    assert report.broken_at == 2
    with pytest.raises(CommandError, match=r"BROKEN at event #2: .*\(4 breaks in all"):
        call_command("audit", "verify")
    err = capsys.readouterr().err
    assert err.count("BROKEN: ") == 4 and "event #4 does not match its MAC" in err


def test_altered_mac_breaks_its_event_and_the_next_as_one_run(chain):
    AuditEvent.objects.filter(sequence=3).update(mac="a" * 64)
    report = audit.verify_chain()
    assert _kinds(report) == [("ALTERED", 3)] and "events #3..#4 do not match their MACs" in report.problem


def test_inserted_event_past_the_head_is_detected(chain):
    last = AuditEvent.objects.get(sequence=_head().last_sequence)
    AuditEvent.objects.create(sequence=last.sequence + 1, timestamp=last.timestamp, event_type="CERT_REVOKED",
                              actor="mallory", mac="b" * 64)
    kinds = _kinds(audit.verify_chain())
    assert ("ALTERED", last.sequence + 1) in kinds  # its MAC is not one the key made
    assert sum(k == "ALTERED" and s == last.sequence + 1 for k, s in kinds) == 2  # and it lies past the head


@pytest.mark.parametrize("value", ["", "é" * 64, "0" * 63])
def test_garbage_head_mac_is_a_break_not_a_crash(chain, value):
    AuditChainHead.objects.filter(pk=1).update(head_mac=value)
    assert [k for k, _ in _kinds(audit.verify_chain())] == ["HEAD"]


def test_certificate_events_folded_by_combined_count(chain, actor):
    """audit.combined() folds a second CERT_CREATION of one block into the first event's details."""
    twin = Certificate.objects.filter(pk=chain[0].pk).values().get()
    twin.pop("id")
    twin.update(serial="abcdef0123", fingerprint_sha256="c" * 64)
    twin = Certificate.objects.create(**twin)
    with transaction.atomic(), audit.combined("CERT_CREATION"):
        audit.record("CERT_CREATION", actor.name, object_type="certificate", object_id="feed", in_transaction=True)
        audit.record("CERT_CREATION", actor.name, object_type="certificate", object_id=twin.serial,
                     in_transaction=True)
    assert AuditEvent.objects.filter(object_id=twin.serial).count() == 0  # folded, not on its own
    assert audit.verify_chain().ok
    AuditEvent.objects.filter(object_id="feed").delete()
    assert any(b.kind == "UNAUDITED" and twin.serial in b.message for b in audit.verify_chain().breaks)


def test_anchor_file_workflow(chain, issue_cert, tmp_path, capsys):
    anchors = tmp_path / "anchors.log"
    call_command("audit", "anchor", "--file", str(anchors))
    first = _head().last_sequence
    issue_cert("three")
    call_command("audit", "anchor", "--file", str(anchors))
    lines = anchors.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("pki-audit-anchor sequence=") for line in lines)
    assert [a.sequence for a in audit.parse_anchors(anchors.read_text())] == [first, _head().last_sequence]
    assert oct(anchors.stat().st_mode & 0o777) == "0o600"
    capsys.readouterr()
    call_command("audit", "verify", "--anchor", str(anchors))
    assert f"reaching anchor #{_head().last_sequence}" in capsys.readouterr().out
    # The chain goes on after an anchor: still OK.
    audit.record("TEST_EVENT", "tester")
    call_command("audit", "verify", "--anchor", str(anchors))


def test_anchor_from_syslog_lines_and_a_rewritten_anchored_event(chain, tmp_path):
    head = _head()
    syslog = tmp_path / "messages"
    syslog.write_text(f"Dec  6 10:00:00 host pki.audit: {audit.Anchor(head.last_sequence, head.last_mac).line()}\n"
                      "Dec  6 10:00:01 host other: unrelated line\n")
    anchors = audit.parse_anchors(syslog.read_text())
    assert anchors == [audit.Anchor(head.last_sequence, head.last_mac)]
    assert audit.verify_chain(anchors).ok
    forged = audit.Anchor(head.last_sequence - 1, "d" * 64)
    assert ("ANCHOR", head.last_sequence - 1) in _kinds(audit.verify_chain([*anchors, forged]))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "Cannot read anchor file"), ("no anchors here\n", "No audit anchors")],
)
def test_verify_with_unusable_anchor_file(chain, tmp_path, content, message):
    path = tmp_path / "anchors.log"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("audit", "verify", "--anchor", str(path))


def test_anchor_refuses_a_forged_head_and_an_empty_log(chain, tmp_path):
    path = tmp_path / "anchors.log"
    AuditChainHead.objects.filter(pk=1).update(head_mac="0" * 64)
    with pytest.raises(CommandError, match="fails its MAC"):
        call_command("audit", "anchor", "--file", str(path))
    assert not path.exists()
    AuditEvent.objects.all().delete()
    AuditChainHead.objects.filter(pk=1).update(last_sequence=0, last_mac="", head_mac="")
    with pytest.raises(CommandError, match="empty"):
        call_command("audit", "anchor")


def test_admin_ui_lists_every_break(chain, builtin_profiles):
    from tests.pki.test_views_auth import ui_client

    client = ui_client("auditor", ["/audit/view"])
    AuditEvent.objects.filter(sequence=2).delete()
    AuditEvent.objects.filter(sequence=5).update(actor="mallory")
    AuditChainHead.objects.filter(pk=1).update(head_mac="0" * 64)
    html = client.get("/audit/?verify=1").content.decode()
    assert "Chain broken" in html and "3 breaks found" in html
    assert "event #2 is missing" in html and "event #5 does not match its MAC" in html
    assert "fails its own MAC" in html


def test_deleted_crl_creation_event_is_named(chain, actor, root_ca):
    from pki.crl import create_crl

    first, second = create_crl(actor, root_ca), create_crl(actor, root_ca)
    assert audit.verify_chain().ok
    event = AuditEvent.objects.get(event_type="CRL_CREATION", details__crl_number=second.crl_number)
    event.delete()
    unaudited = [b.message for b in audit.verify_chain().breaks if b.kind == "UNAUDITED"]
    assert unaudited == [f"CRL #{second.crl_number} of CA '{root_ca.name}' has no CRL_CREATION event: its event was "
                         "deleted"]
    assert first.crl_number != second.crl_number
