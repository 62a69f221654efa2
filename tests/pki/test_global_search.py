"""The global search box: every form of a serial number, fingerprints, subject text, usernames and CA names;
straight to the one object found, else a list; never anything of a CA the caller may not see."""

from __future__ import annotations

import re

import pytest

from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile
from tests.pki.test_views_auth import ui_client

VIEW = ["/administrator", "/ca_functionality/view_ca", "/ca_functionality/view_certificate"]


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def leaf(sub_ca, actor, csr_factory, builtin_profiles):
    csr, _ = csr_factory("CN=search-leaf.example.com,O=Findme", san=["search-leaf.example.com"])
    profile = CertificateProfile.objects.get(name="SERVER")
    return issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=profile, csr=csr, username="searchuser")).row


def _serial_forms(serial: str) -> dict[str, str]:
    padded = serial.zfill(len(serial) + len(serial) % 2)
    return {
        "lower": serial, "upper": serial.upper(), "0x": "0x" + serial.upper(),
        "colons": ":".join(re.findall("..", padded)), "colons-upper": ":".join(re.findall("..", padded.upper())),
        "leading-zeros": "00" + serial, "decimal": str(int(serial, 16)), "blanks": f"  {serial}  ",
    }


@pytest.mark.parametrize("form", ["lower", "upper", "0x", "colons", "colons-upper", "leading-zeros", "decimal",
                                  "blanks"])
def test_serial_in_any_form_goes_to_the_certificate(admin, leaf, form):
    r = admin.get("/search/", {"q": _serial_forms(leaf.serial)[form]})
    assert r.status_code == 302 and r["Location"] == f"/certificates/{leaf.pk}/"


@pytest.mark.parametrize("how", ["plain", "colons-upper"])
def test_fingerprint_goes_to_the_certificate(admin, leaf, how):
    fp = leaf.fingerprint_sha256
    q = fp if how == "plain" else ":".join(re.findall("..", fp.upper()))
    r = admin.get("/search/", {"q": q})
    assert r.status_code == 302 and r["Location"] == f"/certificates/{leaf.pk}/"


@pytest.mark.parametrize("q", ["searchuser", "search-leaf.example", "O=FINDME"])
def test_username_and_subject_text_find_the_certificate(admin, leaf, q):
    r = admin.get("/search/", {"q": q})
    assert r.status_code == 302 and r["Location"] == f"/certificates/{leaf.pk}/"


def test_ca_name_goes_to_the_ca(admin, root_ca, sub_ca):
    r = admin.get("/search/", {"q": sub_ca.name.lower()})
    assert r.status_code == 302 and r["Location"] == f"/cas/{sub_ca.pk}/"


def test_several_matches_give_a_list_with_links_to_the_filtered_lists(admin, sub_ca, actor, csr_factory):
    profile = CertificateProfile.objects.get(name="SERVER")
    for n in range(2):
        csr, _ = csr_factory(f"CN=twin{n}.example.com,O=Twins", san=[f"twin{n}.example.com"])
        issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=profile, csr=csr, username=f"twin{n}"))
    r = admin.get("/search/", {"q": "O=Twins"})
    html = r.content.decode()
    assert r.status_code == 200
    assert html.count("CN=twin") == 2 and 'href="/certificates/?q=O%3DTwins"' in html
    assert 'href="/endentities/?text=O%3DTwins"' in html


def test_nothing_found_says_so(admin, leaf):
    r = admin.get("/search/", {"q": "no-such-thing-anywhere"})
    assert r.status_code == 200 and b'id="search-none"' in r.content


@pytest.mark.parametrize("q", ["", "x" * 5000, "0x", "::", "%", "' OR 1=1 --", "9" * 400, "f" * 41])
def test_odd_input_is_answered_not_raised(admin, leaf, q, tracebacks):
    r = admin.get("/search/", {"q": q})
    assert r.status_code == 200
    assert not tracebacks.records


def test_a_user_of_one_ca_does_not_find_another_cas_certificate(root_ca, sub_ca, leaf):
    own = ui_client("rootonly", VIEW + [f"/ca/{root_ca.pk}"])
    for q in (leaf.serial, str(int(leaf.serial, 16)), leaf.fingerprint_sha256, "searchuser", "search-leaf",
              sub_ca.name):
        r = own.get("/search/", {"q": q})
        # (the sub CA's name may find its CA certificate: the root, which the user may see, issued it)
        where = r.get("Location", "") + r.content.decode()
        assert f"/certificates/{leaf.pk}/" not in where and f"/cas/{sub_ca.pk}/" not in where, q
    # ... while its own CA is still found
    r = own.get("/search/", {"q": root_ca.name})
    assert r.status_code == 302 and r["Location"] == f"/cas/{root_ca.pk}/"


def test_certificates_need_the_view_certificate_rule(root_ca, sub_ca, leaf):
    client = ui_client("caviewer", ["/administrator", "/ca_functionality/view_ca", f"/ca/{sub_ca.pk}"])
    r = client.get("/search/", {"q": leaf.serial})
    assert r.status_code == 200 and f"/certificates/{leaf.pk}/" not in r.content.decode()


def test_the_box_is_in_the_header_of_admins_only(admin, db):
    assert b'class="global-search"' in admin.get("/certificates/").content
    assert ui_client("nobody", None).get("/search/", {"q": "x"}).status_code == 403


def test_a_list_of_hits_costs_a_fixed_number_of_queries(admin, sub_ca, actor, csr_factory,
                                                         django_assert_max_num_queries):
    profile = CertificateProfile.objects.get(name="SERVER")
    for n in range(25):
        csr, _ = csr_factory(f"CN=many{n}.example.com,O=Many")
        issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=profile, csr=csr))
    with django_assert_max_num_queries(20):
        r = admin.get("/search/", {"q": "O=Many"})
    html = r.content.decode()
    assert r.status_code == 200 and html.count("CN=many") == 20 and "More certificates match" in html
