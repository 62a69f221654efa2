"""The audit log by object (username, serial in any form, CA, profile), objects as links, and the CSV export
of the filtered view (same rule as the page; the export is itself audited)."""

from __future__ import annotations

import csv
import io
import re

import pytest

from pki import audit
from pki.models import AuditEvent, CertificateProfile
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def events(root_ca, builtin_profiles):
    """Events about a certificate, an end entity, a CA and a certificate profile (beside the fixtures' own)."""
    server = CertificateProfile.objects.get(name="SERVER")
    audit.record("CERT_REVOKED", "bob", object_type="certificate", object_id="a0b1c2d3",
                 details={"reason": "keyCompromise"})
    audit.record("RA_EDITENDENTITY", "bob", object_type="endentity", object_id="=HYPERLINK(\"x\")",
                 details={"status": "NEW"})
    audit.record("RA_ADDENDENTITY", "alice", object_type="endentity", object_id="alice01")
    audit.record("CA_EDITING", "alice", object_type="ca", object_id=root_ca.pk, details={"default": True})
    audit.record("CERTPROFILE_EDIT", "alice", object_type="certificate_profile", object_id=server.pk,
                 details={"name": "SERVER"})
    return {"ca": root_ca, "profile": server}


def _types(html: str) -> set[str]:
    seqs = [int(n) for n in re.findall(r'<tr><td class="num">(\d+)</td>', html)]
    return set(AuditEvent.objects.filter(sequence__in=seqs).values_list("event_type", flat=True))


@pytest.mark.parametrize(("obj", "expected"), [
    ("a0b1c2d3", {"CERT_REVOKED"}),
    ("A0:B1:C2:D3", {"CERT_REVOKED"}),
    ("0xA0B1C2D3", {"CERT_REVOKED"}),
    (str(0xA0B1C2D3), {"CERT_REVOKED"}),
    ("alice01", {"RA_ADDENDENTITY"}),
    ("ALICE01", {"RA_ADDENDENTITY"}),
    ("SERVER", {"CERTPROFILE_EDIT"}),
    ("nothing-of-that-name", set()),
])
def test_filter_by_object(admin, events, obj, expected):
    r = admin.get("/audit/", {"object": obj, "event_type": "RA_"} if obj.startswith("alice") else {"object": obj})
    assert r.status_code == 200
    shown = _types(r.content.decode()) - {"CA_CREATION", "CERT_CREATION", "CRL_CREATION", "LOGIN"}
    assert shown == expected


def test_filter_by_ca_name_finds_the_events_about_it(admin, events):
    shown = _types(admin.get("/audit/", {"object": events["ca"].name.upper()}).content.decode())
    assert {"CA_EDITING", "CA_CREATION", "CRL_CREATION"} <= shown and "CERT_REVOKED" not in shown


def test_objects_are_links_to_their_pages(admin, events):
    html = admin.get("/audit/").content.decode()
    assert f'href="/cas/{events["ca"].pk}/">{events["ca"].pk}</a>' in html
    assert f'href="/profiles/{events["profile"].pk}/">' in html
    assert 'href="/search/?q=a0b1c2d3">a0b1c2d3</a>' in html
    assert 'href="/endentities/?text=alice01">alice01</a>' in html


def test_csv_export_of_the_filtered_view_is_audited(admin, events):
    before = AuditEvent.objects.count()
    r = admin.get("/audit/", {"actor": "bob", "format": "csv"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0][:3] == ["sequence", "timestamp", "event_type"]
    assert sorted(row[2] for row in rows[1:]) == ["CERT_REVOKED", "RA_EDITENDENTITY"]
    # a value that a spreadsheet would run as a formula is written as text
    assert "'=HYPERLINK(\"x\")" in [row[6] for row in rows[1:]]
    export = AuditEvent.objects.get(event_type="AUDIT_EXPORT")
    assert AuditEvent.objects.count() == before + 1
    assert export.actor == "uiadmin" and export.details == {"filters": {"actor": "bob"}, "events": 2}


def test_csv_export_needs_the_audit_rule(db, events):
    r = ui_client("noaudit", ["/administrator"]).get("/audit/", {"format": "csv"})
    assert r.status_code == 403 and not AuditEvent.objects.filter(event_type="AUDIT_EXPORT").exists()


def test_csv_export_with_bad_filters_is_the_page_with_errors(admin, events, tracebacks):
    r = admin.get("/audit/", {"format": "csv", "since": "not-a-date", "object": "x" * 300})
    assert r.status_code == 400 and r["Content-Type"].startswith("text/html")
    assert not AuditEvent.objects.filter(event_type="AUDIT_EXPORT").exists() and not tracebacks.records
