"""The dashboard: counts, the latest CRL of each CA, and the two server-side SVG charts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pki.crl import create_crl
from pki.issuance import IssuanceRequest, issue
from pki.models import Certificate, CertificateProfile
from pki.revocation import revoke
from pki.views.charts import bar_chart, gridlines, nice_ceiling
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


def _issue(ca, actor, csr_factory, cn: str) -> Certificate:
    csr, _ = csr_factory(f"CN={cn}")
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr)).row


def _stat(html: str, name: str) -> int:
    return int(re.search(rf'id="count-{name}">(\d+)<', html).group(1))


def test_counts_and_charts(admin, sub_ca, actor, csr_factory):
    leaves = [_issue(sub_ca, actor, csr_factory, f"leaf{i}.example.com") for i in range(4)]
    revoke(actor, leaves[0], 1)
    revoke(actor, leaves[1], 6)  # on hold counts as revoked here
    soon = timezone.now() + timedelta(days=10)
    Certificate.objects.filter(pk=leaves[2].pk).update(not_after=soon)

    r = admin.get("/")
    html = r.content.decode()
    assert r.status_code == 200
    assert _stat(html, "cas") == 2
    # root and sub-CA certificates, leaves 2 and 3 are active; 0 and 1 are revoked / on hold
    assert (_stat(html, "active"), _stat(html, "revoked"), _stat(html, "expiring")) == (4, 2, 1)

    assert html.count("<svg") == 2
    assert "Certificates issued per day (last 30 days)" in html and "expiring per week (next 12 weeks)" in html
    today = timezone.now().strftime("%d %b")
    assert f"<title>{today}: 6</title>" in html  # 2 CA certificates + 4 leaves issued today
    assert html.count("</rect>") == 30 + 12  # a bar for every day and every week, even empty ones
    week = (soon - timedelta(days=soon.weekday())).strftime("%d %b")
    assert f"<title>wk {week}: 1</title>" in html


def test_latest_crl_per_ca_with_next_update(admin, root_ca, sub_ca, actor):
    root_ca.crls.all().delete()  # the CA was created with its first CRL: take it away
    create_crl(actor, sub_ca)
    latest = create_crl(actor, sub_ca)
    html = admin.get("/").content.decode()
    row = html.split(">TestSub</a>", 1)[1].split("</tr>", 1)[0]
    assert f"#{latest.crl_number}" in row and latest.next_update.strftime("%Y-%m-%d %H:%M") in row
    root_row = html.split(">TestRoot</a>", 1)[1].split("</tr>", 1)[0]
    assert "none yet" in root_row


def test_dashboard_queries_do_not_grow_with_cas_crls_or_certificates(admin, ca_factory, actor, csr_factory):
    first = ca_factory("First")
    create_crl(actor, first)
    admin.get("/")  # warm up the session and the actor lookups
    with CaptureQueriesContext(connection) as small:
        assert admin.get("/").status_code == 200
    for i in range(3):
        ca = ca_factory(f"More{i}")
        create_crl(actor, ca)
        _issue(ca, actor, csr_factory, f"more{i}.example.com")
    with CaptureQueriesContext(connection) as large:
        assert admin.get("/").status_code == 200
    assert len(large) == len(small), [q["sql"][:120] for q in large.captured_queries]


@pytest.mark.parametrize(("value", "top", "steps"), [(0, 1, 1), (1, 1, 1), (3, 5, 5), (7, 10, 5), (11, 20, 4),
                                                      (20, 20, 4), (21, 50, 5), (101, 200, 4), (999, 1000, 5)])
def test_chart_axis_is_a_round_number_in_whole_steps(value, top, steps):
    assert nice_ceiling(value) == top and gridlines(top) == steps
    assert all(top * i % steps == 0 for i in range(steps + 1))


def test_bar_chart_scales_bars_and_escapes_text():
    svg = str(bar_chart(["<b>", "x"], [5, 10], "T & <script>", height=230))
    assert "<script>" not in svg and "T &amp; &lt;script&gt;" in svg and "&lt;b&gt;: 5" in svg
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([\d.]+)"', svg)]
    assert heights[1] == pytest.approx(2 * heights[0]) and heights[1] == pytest.approx(230 - 28 - 30)
    with pytest.raises(ValueError):
        bar_chart(["a"], [1, 2], "mismatch")
