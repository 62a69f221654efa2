"""Health at a glance: one service (pki.services.health) says what is wrong with each CA, and the CA list, the CA
page and the dashboard show it: a CA whose token is offline is not "Active", a missing or stale CRL, a CA
certificate about to expire; the dashboard's cards link to the lists they count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from cryptotokens import services as tokens
from pki.models import CRL, Certificate, CertificateAuthority
from pki.services.health import ca_health, local_cas
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def manual_ca(ca_factory, soft_token_factory, actor):
    """A CA on a manually activated token (deactivation takes it offline)."""
    token = soft_token_factory("ManualToken", auto_activate=False)
    tokens.activate(actor, token, "foo123")
    return ca_factory("ManualCA", token=token)


def _codes(ca: CertificateAuthority, now=None) -> list[str]:
    ca = local_cas().get(pk=ca.pk)
    return [p.code for p in ca_health([ca], now)[ca.pk].problems]


def _take_offline(actor, ca: CertificateAuthority) -> None:
    tokens.deactivate(actor, ca.crypto_token)


def _no_crl(actor, ca) -> None:
    CRL.objects.filter(ca=ca).delete()


def _crl_expired(actor, ca) -> None:
    CRL.objects.filter(ca=ca).update(next_update=timezone.now() - timedelta(minutes=1))


def _crl_overdue(actor, ca) -> None:
    # Due (nextUpdate - overlap) five minutes ago, over two of the scheduler's looks, and not yet expired.
    CRL.objects.filter(ca=ca).update(next_update=timezone.now() + ca.crl_overlap / 2)


def _crl_just_due(actor, ca) -> None:
    # Due a few seconds ago: the scheduler's next look renews it, nothing to report yet.
    CRL.objects.filter(ca=ca).update(next_update=timezone.now() + ca.crl_overlap - timedelta(seconds=5))


def _disabled(actor, ca) -> None:
    CertificateAuthority.objects.filter(pk=ca.pk).update(status="OFFLINE")


@pytest.mark.parametrize("breakage, expected", [
    (None, []),
    (_take_offline, ["token_offline"]),
    (_no_crl, ["crl_missing"]),
    (_crl_expired, ["crl_expired"]),
    (_crl_overdue, ["crl_renewal_overdue"]),
    (_crl_just_due, []),
    (_disabled, ["ca_disabled"]),
])
def test_ca_problems(manual_ca, actor, breakage, expected):
    if breakage:
        breakage(actor, manual_ca)
    assert _codes(manual_ca) == expected


@pytest.mark.parametrize("validity, days_left, expected", [
    ("10y", 100, []),                               # outside the 90-day window
    ("10y", 80, ["certificate_expiring"]),
    ("30d", 10, []),                                # a short-lived CA: the window is a fifth of 30 days
    ("30d", 5, ["certificate_expiring"]),
])
def test_ca_certificate_expiring_within_its_renewal_window(ca_factory, validity, days_left, expected):
    ca = ca_factory("Short", validity=validity)
    not_after = ca.certificate.not_valid_after_utc
    codes = [c for c in _codes(ca, now=not_after - timedelta(days=days_left)) if not c.startswith("crl")]
    assert codes == expected


def test_expired_ca_certificate(root_ca):
    codes = _codes(root_ca, now=root_ca.certificate.not_valid_after_utc + timedelta(seconds=1))
    assert "certificate_expired" in codes and "certificate_expiring" not in codes


def test_external_ca_is_never_a_problem(db):
    ext = CertificateAuthority.objects.create(name="ExternalTrust", subject_dn="CN=Ext", status="EXTERNAL")
    assert ca_health([ext])[ext.pk].ok  # no token, no CRL of its own: nothing here to run


# --- pages -----------------------------------------------------------------------------------------------

def test_ca_list_shows_token_offline_in_red_with_what_to_do(admin, manual_ca, root_ca, actor):
    _take_offline(actor, manual_ca)
    html = admin.get("/cas/").content.decode()
    row = re.search(r'<tr data-ca="ManualCA" data-health="(\w+)">(.*?)</tr>', html, re.S)
    assert row and row.group(1) == "token_offline"
    assert '<span class="badge b-error"' in row.group(2) and ">token offline</span>" in row.group(2)
    assert "Active</span>" not in row.group(2)
    assert "Activate crypto token &#x27;ManualToken&#x27;" in row.group(2)
    healthy = re.search(r'<tr data-ca="TestRoot" data-health="ok">(.*?)</tr>', html, re.S).group(1)
    assert 'b-ACTIVE">Active</span>' in healthy


def test_ca_list_attention_filter(admin, manual_ca, root_ca, actor):
    _take_offline(actor, manual_ca)
    html = admin.get("/cas/?attention=1").content.decode()
    assert 'data-ca="ManualCA"' in html and 'data-ca="TestRoot"' not in html
    tokens.activate(actor, manual_ca.crypto_token, "foo123")
    assert "No CA needs attention." in admin.get("/cas/?attention=1").content.decode()


def test_ca_page_says_what_is_wrong_and_what_to_do(admin, manual_ca, actor):
    _take_offline(actor, manual_ca)
    _no_crl(actor, manual_ca)
    html = admin.get(f"/cas/{manual_ca.pk}/").content.decode()
    assert '<span class="badge b-error">token offline</span>' in html.split("</h1>")[0]
    section = html.split('id="health"')[1].split("</div>\n<div")[0]
    assert 'data-problem="token_offline"' in section and 'data-problem="crl_missing"' in section
    assert "Create a CRL" in section and "cryptotoken activate ManualToken" in section


def test_healthy_ca_page_has_no_attention_section(admin, root_ca):
    html = admin.get(f"/cas/{root_ca.pk}/").content.decode()
    assert 'id="health"' not in html and 'b-ACTIVE">Active</span>' in html


def _stat(html: str, name: str) -> int:
    return int(re.search(rf'id="count-{name}">(\d+)<', html).group(1))


def _link(html: str, name: str) -> str:
    return re.search(rf'href="([^"]+)" id="link-{name}"', html).group(1).replace("&amp;", "&")


def test_dashboard_cards_count_and_link_to_the_filtered_lists(admin, manual_ca, root_ca, actor, csr_factory):
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke

    profile = CertificateProfile.objects.get(name="SERVER")
    leaves = [issue(IssuanceRequest(ca=root_ca, actor=actor, profile=profile, csr=csr_factory(f"CN=l{i}")[0])).row
              for i in range(3)]
    revoke(actor, leaves[0], 1)
    Certificate.objects.filter(pk=leaves[1].pk).update(not_after=timezone.now() + timedelta(days=5))
    _take_offline(actor, manual_ca)

    html = admin.get("/").content.decode()
    assert _stat(html, "attention") == 1
    attention = html.split('id="attention"')[1]
    assert "CA ManualCA" in attention and 'data-problem="token_offline"' in attention
    assert "CA TestRoot" not in attention
    # Each card's link lists exactly what the card counts.
    for name in ("active", "expiring", "revoked"):
        listed = admin.get(_link(html, name)).content.decode()
        rows = len(re.findall(r'<td><a href="/certificates/\d+/"', listed))  # one subject link a row
        assert rows == _stat(html, name), (name, _link(html, name))
    listed = admin.get(_link(html, "attention")).content.decode()
    assert 'data-ca="ManualCA"' in listed and 'data-ca="TestRoot"' not in listed


def test_dashboard_stays_within_its_query_budget(admin, ca_factory):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ca_factory("A")
    admin.get("/")
    with CaptureQueriesContext(connection) as few:
        admin.get("/")
    for name in ("B", "C", "D"):
        ca_factory(name)
    with CaptureQueriesContext(connection) as more:
        admin.get("/")
    assert len(more) == len(few)  # health for every CA in a fixed number of queries
