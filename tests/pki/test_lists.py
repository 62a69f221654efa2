"""List pages of the admin UI and the RA portal: sortable columns (whitelisted ``?o=``) kept with the filters and
by the pagination links, full serial numbers, and bulk revocation of certificates (each row revoked, gated by
its approval profile and audited as a single revocation is)."""

from __future__ import annotations

import re

import pytest

from pki.issuance import IssuanceRequest, issue
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.models.approvals import ApprovalAction, ApprovalProfile, ApprovalRequest, ApprovalSetting
from pki.revocation import revoke
from pki.views import base
from tests.pki.test_views_auth import ui_client

REVOKER = ["/administrator", "/ca_functionality/view_certificate", "/ra_functionality/revoke_end_entity"]


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("listadmin", ["/"])


@pytest.fixture
def certs(root_ca, sub_ca, actor, csr_factory, builtin_profiles):
    """Three certificates: b (root CA), a and c (sub CA), issued in the order b, a, c."""
    server = CertificateProfile.objects.get(name="SERVER")
    out = {}
    for name, ca in (("b", root_ca), ("a", sub_ca), ("c", sub_ca)):
        csr, _ = csr_factory(f"CN={name}-list.example.com,O=Lists")
        out[name] = issue(IssuanceRequest(ca=ca, actor=actor, profile=server, csr=csr, username=f"list-{name}")).row
    return out


def _order(html: str) -> list[str]:
    return [m[0] for m in re.findall(r'>CN=([a-c])-list\.example\.com', html)]


SORTS = [
    ("", ["c", "a", "b"]),  # newest first
    ("o=subject", ["a", "b", "c"]),
    ("o=-subject", ["c", "b", "a"]),
    ("o=issued", ["b", "a", "c"]),
    ("o=ca&q=list", None),  # by CA name: TestRoot < TestSub, the sub CA's two in id order
    ("o=password", ["c", "a", "b"]),  # not a column: the default order, never passed to the database
    ("o=-certificate__private_key", ["c", "a", "b"]),
]


def test_certificate_list_sorts_by_whitelisted_columns(admin, certs):
    # One test walks the table: each row would cost three issuances and two CAs of its own
    for query, expected in SORTS:
        r = admin.get(f"/certificates/?{query}")
        assert r.status_code == 200
        assert _order(r.content.decode()) == (expected or ["b", "a", "c"]), query


def test_sort_links_keep_filters_and_pages_keep_the_order(admin, certs, monkeypatch):
    monkeypatch.setattr(base.paginate, "__defaults__", (2,))  # two to a page: three rows make two pages
    page = admin.get("/certificates/?q=list&o=subject").content.decode()
    assert _order(page) == ["a", "b"]
    # The header of the sorted column flips the direction and keeps the search; the others keep it too
    assert 'aria-sort="ascending"' in page
    assert 'href="?q=list&amp;o=-subject"' in page and 'href="?q=list&amp;o=serial"' in page
    # The filter form keeps the order; the pagination links keep the filters and the order
    assert '<input type="hidden" name="o" value="subject">' in page
    assert 'href="?q=list&amp;o=subject&amp;page=2"' in page
    assert _order(admin.get("/certificates/?q=list&o=subject&page=2").content.decode()) == ["c"]


def test_full_serial_with_copy_button(admin, certs):
    page = admin.get("/certificates/").content.decode()
    serial = certs["a"].serial.upper()
    assert len(serial) > 20  # the list used to cut serials to 20 characters
    assert f"<code>{serial}</code>" in page and f'data-copy="{serial}"' in page


OTHER_SORTS = [
    ("/cas/?o=name", 'data-ca="TestRoot"', 'data-ca="TestSub"'),
    ("/cas/?o=-name", 'data-ca="TestSub"', 'data-ca="TestRoot"'),
    ("/profiles/?o=name", ">ENDUSER<", ">SERVER<"),
    ("/profiles/?o=-name", ">SERVER<", ">ENDUSER<"),
    ("/audit/?o=-event", ">CRYPTOTOKEN_CREATE<", ">CA_CREATION<"),
    ("/audit/?o=event", ">CA_CREATION<", ">CRYPTOTOKEN_CREATE<"),
]


def test_other_lists_sort(admin, certs):
    for url, first, second in OTHER_SORTS:
        r = admin.get(url)
        page = r.content.decode()
        assert r.status_code == 200 and page.index(first) < page.index(second), url
    numbers = [int(n) for n in re.findall(r'<tr><td class="num">(\d+)</td>', admin.get("/audit/?o=sequence").content
                                          .decode())]
    assert len(numbers) > 3 and numbers == sorted(numbers)


def test_bulk_revoke_outcome_per_row(admin, certs, root_ca, actor):
    """a is revoked, b (root CA, revocation needs approval) becomes an approval request, c (already revoked) is
    refused, an unknown id is not found; each revocation is audited as on its own page."""
    approvers = ApprovalProfile.objects.create(name="Two officers", approvals_required=1)
    ApprovalSetting.objects.create(action=ApprovalAction.REVOCATION, approval_profile=approvers, ca=root_ca)
    revoke(actor, certs["c"], "keyCompromise")
    before = AuditEvent.objects.filter(event_type="CERT_REVOKED").count()
    r = admin.post("/certificates/revoke/", {
        "id": [certs["a"].pk, certs["b"].pk, certs["c"].pk, 999999], "reason": "1", "back": "q=list&o=subject"})
    assert r.status_code == 200
    page = r.content.decode()
    assert Certificate.objects.get(pk=certs["a"].pk).status == "REVOKED"
    assert Certificate.objects.get(pk=certs["a"].pk).revocation_reason == 1
    assert Certificate.objects.get(pk=certs["b"].pk).status == "ACTIVE"
    request = ApprovalRequest.objects.get()
    assert request.action == ApprovalAction.REVOCATION and request.data["certificate"] == certs["b"].pk
    assert AuditEvent.objects.filter(event_type="CERT_REVOKED").count() == before + 1
    states = dict(re.findall(r'<tr data-state="(\w+)"><td class="mono wrap">(?:<a href="[^"]+">)?([^<]+)<', page))
    assert states == {"done": certs["a"].serial.upper(), "approval": certs["b"].serial.upper(),
                      "refused": certs["c"].serial.upper(), "missing": "#999999"}
    assert f"/ra/approvals/{request.pk}/" in page and "already revoked" in page
    assert 'href="/certificates/?q=list&amp;o=subject"' in page  # back to the list as it was


@pytest.mark.parametrize(("data", "message"), [
    ({"reason": "1"}, "Select at least one row"),
    ({"id": ["x"], "reason": "1"}, "not a list of row numbers"),
    ({"id": ["-3"], "reason": "1"}, "not a list of row numbers"),
    ({"id": [str(i) for i in range(10**6, 10**6 + 51)], "reason": "1"}, "at most 50 rows"),
    ({"id": ["1"], "reason": "8"}, "Select a valid choice"),  # removeFromCRL is not a revocation
    ({"id": ["1"]}, "This field is required"),
])
def test_bulk_revoke_bad_input_is_a_400_and_changes_nothing(admin, root_ca, actor, csr_factory, data, message):
    csr, _ = csr_factory("CN=one-list.example.com")
    one = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                csr=csr)).row
    data = {**data, "id": [str(one.pk) if i == "1" else i for i in data.get("id", [])]}
    r = admin.post("/certificates/revoke/", data)
    assert r.status_code == 400 and message in r.content.decode()
    assert Certificate.objects.get(pk=one.pk).status == "ACTIVE"


def test_bulk_revoke_is_authorized_per_row(certs, sub_ca, root_ca):
    """Without the revoke rule: the page refuses. With it but only the root CA visible: the sub CA's rows are
    not found (their pages would answer 404), the root CA's is revoked."""
    viewer = ui_client("viewer", ["/administrator", "/ca_functionality/view_certificate", f"/ca/{sub_ca.pk}"])
    assert viewer.post("/certificates/revoke/", {"id": [certs["a"].pk], "reason": "0"}).status_code == 403
    assert viewer.get("/certificates/revoke/").status_code in (403, 405)
    revoker = ui_client("revoker", REVOKER + [f"/ca/{root_ca.pk}"])
    page = revoker.post("/certificates/revoke/", {"id": [certs["a"].pk, certs["b"].pk], "reason": "0"}
                        ).content.decode()
    assert 'data-state="missing"' in page and 'data-state="done"' in page
    assert set(Certificate.objects.filter(status="REVOKED").values_list("pk", flat=True)) == {certs["b"].pk}
    assert "Revoke selected" in revoker.get("/certificates/").content.decode()
    assert "Revoke selected" not in viewer.get("/certificates/").content.decode()


def test_ra_portal_lists_sort_and_bulk_revoke(admin, certs):
    page = admin.get("/ra/certificates/?o=-subject").content.decode()
    assert _order(page) == ["c", "b", "a"] and "Revoke selected" in page
    r = admin.post("/ra/certificates/revoke/", {"id": [certs["c"].pk], "reason": "6", "back": "o=-subject"})
    assert r.status_code == 200 and "On hold." in r.content.decode() and "ra-main" in r.content.decode()
    assert Certificate.objects.get(pk=certs["c"].pk).status == "ON_HOLD"
