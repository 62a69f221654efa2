"""The audit log page: filters, pagination, and the 'Verify chain' button."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from pki import audit
from pki.models import AuditEvent
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def events(db):
    audit.record("CERT_CREATION", "alice", object_type="certificate", object_id="ab12", details={"ca": "One"})
    audit.record("CERT_REVOKED", "bob", object_type="certificate", object_id="ab12",
                 details={"reason": "keyCompromise"})
    audit.record_failure("CA_CREATION", "alice", "name taken", object_type="ca")


def _sequences(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr><td class="num">(\d+)</td>', html)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["CERT_CREATION", "CERT_REVOKED", "CA_CREATION", "LOGIN"]),
        ("event_type=CERT_REVOKED", ["CERT_REVOKED"]),
        ("event_type=cert_", ["CERT_CREATION", "CERT_REVOKED"]),
        ("actor=ali", ["CERT_CREATION", "CA_CREATION"]),
        ("outcome=FAILURE", ["CA_CREATION"]),
        ("actor=alice&outcome=SUCCESS", ["CERT_CREATION"]),
        ("since={today}&until={today}", ["CERT_CREATION", "CERT_REVOKED", "CA_CREATION", "LOGIN"]),
        ("since={tomorrow}", []),
        ("until={yesterday}", []),
    ],
)
def test_filters(admin, events, query, expected):
    today = timezone.now().date()
    query = query.format(today=today, tomorrow=today + timedelta(days=1), yesterday=today - timedelta(days=1))
    r = admin.get(f"/audit/?{query}")
    assert r.status_code == 200
    shown = AuditEvent.objects.filter(sequence__in=_sequences(r.content.decode())).values_list("event_type", flat=True)
    assert sorted(shown) == sorted(expected)


def test_details_are_shown_newest_first(admin, events):
    html = admin.get("/audit/").content.decode()
    seqs = _sequences(html)
    assert seqs == sorted(seqs, reverse=True)
    assert "keyCompromise" in html and "name taken" in html


def test_filter_errors_are_shown(admin, events):
    r = admin.get("/audit/?since=2030-01-02&until=2030-01-01&outcome=MAYBE")
    assert r.status_code == 400
    assert b"Select a valid choice" in r.content


def test_pages_of_50_keep_the_filter(admin):
    for i in range(60):
        audit.record("BULK_EVENT", "bulk", object_id=i)
    first = admin.get("/audit/?event_type=BULK").content.decode()
    assert len(_sequences(first)) == 50 and "Page 1 of 2" in first and "event_type=BULK&amp;page=2" in first
    assert len(_sequences(admin.get("/audit/?event_type=BULK&page=2").content.decode())) == 10


def test_verify_chain_button(admin, events):
    html = admin.get("/audit/?verify=1").content.decode()
    assert "Chain intact" in html and "4 events verified" in html
    assert "Chain intact" not in admin.get("/audit/").content.decode()  # only when asked
    AuditEvent.objects.filter(event_type="CERT_REVOKED").update(actor="mallory")
    tampered = AuditEvent.objects.get(event_type="CERT_REVOKED").sequence
    html = admin.get("/audit/?verify=1&outcome=SUCCESS").content.decode()
    assert "Chain broken" in html and f"event #{tampered}" in html


def test_audit_needs_its_rule(db, events):
    client = ui_client("noaudit", ["/administrator"])
    r = client.get("/audit/?verify=1")
    assert r.status_code == 403 and b"/audit/view" in r.content
    assert b">Audit log</a>" not in client.get("/").content
