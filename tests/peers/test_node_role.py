"""The admin UI shows what each node does: a line naming the role on every page; on an RA node no CA key
operation (create/renew a CA, create a CRL, issue for a CSR, crypto tokens and key generation) is offered in the
navigation or on a page, nor reachable by its URL or REST path; a VA names its OCSP role and keeps its crypto
tokens (its OCSP key bindings' keys live there) but no CA key operation either."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from pki.choices import MemberMatch
from pki.models import AccessRule, Role, RoleMember


@pytest.fixture
def superadmin(db) -> Client:
    user = User.objects.create_user("nodeadmin", password="Initial-Pass-123")
    role = Role.objects.create(name="Node supers")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="nodeadmin")
    client = Client()
    client.force_login(user)
    return client


# Pages, and what each node answers: 200 offered, 403 not on this node.
PAGES = [
    ("/cas/new/", {"ca": 200, "ra": 403, "va": 403}),
    ("/certificates/issue/", {"ca": 200, "ra": 403, "va": 403}),
    ("/cryptotokens/new/", {"ca": 200, "ra": 403, "va": 200}),
    ("/cas/import/", {"ca": 200, "ra": 200, "va": 200}),  # the CA's certificate is imported on every node
    ("/cas/", {"ca": 200, "ra": 200, "va": 200}),
]


@pytest.mark.parametrize("role", ["ca", "ra", "va"])
@pytest.mark.parametrize(("path", "expected"), PAGES, ids=[p for p, _ in PAGES])
def test_ca_key_pages_are_not_reachable_on_an_ra_or_va(superadmin, settings, role, path, expected):
    settings.PKI_NODE_ROLE = role
    r = superadmin.get(path)
    assert r.status_code == expected[role], r.content[:400]
    if r.status_code == 403:
        assert "holds no CA keys" in r.content.decode()


@pytest.mark.parametrize("role", ["ra", "va"])
def test_posting_to_a_blocked_view_changes_nothing(superadmin, settings, root_ca, role):
    from pki.models import CRL

    settings.PKI_NODE_ROLE = role
    before = CRL.objects.filter(ca=root_ca).count()
    r = superadmin.post(f"/crls/{root_ca.pk}/create/", {})
    assert r.status_code == 403
    r = superadmin.post(f"/cas/{root_ca.pk}/renew/", {})
    assert r.status_code == 403
    assert CRL.objects.filter(ca=root_ca).count() == before


@pytest.mark.parametrize("role", ["va"])  # an RA carries createcrl to the CA (test_rest_routes_through_ra)
def test_rest_calls_that_need_ca_keys_are_refused(superadmin, settings, root_ca, role):
    from urllib.parse import quote

    settings.PKI_NODE_ROLE = role
    dn = quote(root_ca.certificate.subject.rfc4514_string(), safe="")
    r = superadmin.post(f"/ejbca/ejbca-rest-api/v1/ca/{dn}/createcrl", HTTP_ACCEPT="application/json")
    assert r.status_code == 403 and "holds no CA keys" in r.json()["error_message"]


@pytest.mark.parametrize(("role", "title", "nav_absent", "nav_present"), [
    ("ca", "CA node", [], ["Issue for CSR", "Certificate authorities"]),
    ("ra", "RA node", ["Issue for CSR"], ["Certificate authorities", "Peer Systems"]),
    ("va", "VA node", ["Issue for CSR"], ["Certificate authorities"]),
])
def test_every_page_names_the_node_and_the_navigation_offers_only_what_it_does(superadmin, settings, role, title,
                                                                               nav_absent, nav_present):
    settings.PKI_NODE_ROLE = role
    html = superadmin.get("/cas/").content.decode()
    assert f'data-node-role="{role}"' in html and f"<strong>{title}</strong>" in html
    nav = html[html.index('id="side-nav"'):html.index("</nav>")]
    for label in nav_absent:
        assert label not in nav
    for label in nav_present:
        assert label in nav
    # The buttons follow: no "Create CA" where no CA key is held; importing a CA certificate stays.
    assert ("Create CA</a>" in html) is (role == "ca")
    assert "Import CA certificate" in html
    if role == "va":
        assert "answers OCSP" in html


def test_an_ra_hides_key_buttons(superadmin, settings, root_ca):
    settings.PKI_NODE_ROLE = "ra"
    assert "Create CRL</button>" not in superadmin.get("/crls/").content.decode()
    assert "Create crypto token" not in superadmin.get("/cryptotokens/").content.decode()
    assert f"/cas/{root_ca.pk}/renew/" not in superadmin.get(f"/cas/{root_ca.pk}/").content.decode()
    settings.PKI_NODE_ROLE = "ca"
    assert "Create CRL</button>" in superadmin.get("/crls/").content.decode()
    assert f"/cas/{root_ca.pk}/renew/" in superadmin.get(f"/cas/{root_ca.pk}/").content.decode()
