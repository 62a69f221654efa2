"""After login each user lands on a page their roles allow (the dashboard for CA administrators and auditors, the
RA portal for RA staff, else the first menu entry they may see, else their own account page), and no link of the
landing page answers 403."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from pki.bootstrap import DEFAULT_ROLES, RA_ROLE
from pki.choices import MemberMatch
from pki.models import Role, RoleMember

from .test_views_auth import ui_client

PASSWORD = "Kite-Bridge-Ocean-91"
_HREF = re.compile(r'href="(/[^"#]*)"')


@pytest.mark.parametrize(("rules", "landing"), [
    (["/"], "/"),
    ([r for r, _ in DEFAULT_ROLES[RA_ROLE][1]], "/ra/"),
    ([r for r, _ in DEFAULT_ROLES["Auditor"][1]], "/"),
    (["/ra_functionality/view_end_entity"], "/ra/"),
    (["/ca_functionality/use_username"], "/ra/"),
    (["/audit/view"], "/audit/"),
    ([], "/account/"),
    (None, "/account/"),
])
def test_start_page_follows_the_roles(db, rules, landing):
    client = ui_client("someone", rules)
    r = client.get("/start/")
    assert r.status_code == 302 and r["Location"] == landing
    assert client.get(landing).status_code == 200


def test_anonymous_start_goes_to_login(db):
    assert Client().get("/start/")["Location"] == "/login/?next=/start/"


def log_in(username: str, role: str) -> tuple[Client, str]:
    get_user_model().objects.create_user(username, password=PASSWORD)
    RoleMember.objects.create(role=Role.objects.get(name=role), match_type=MemberMatch.LOCAL_USER,
                              match_value=username)
    client = Client()
    for nxt in ("", "/"):  # a bare login and one that was sent from the bare address both land where allowed
        r = client.post("/login/", {"username": username, "password": PASSWORD, **({"next": nxt} if nxt else {})},
                        follow=True)
        assert r.status_code == 200, (username, r.redirect_chain)
    return client, r.redirect_chain[-1][0]


@pytest.mark.parametrize(("role", "landing"), [(RA_ROLE, "/ra/"), ("Auditor", "/"),
                                               ("Super Administrator Role", "/")])
def test_no_link_of_the_landing_page_answers_403(cli_init, role, landing):
    client, landed = log_in("person", role)
    assert landed == landing
    html = client.get(landed).content.decode()
    links = sorted({h for h in _HREF.findall(html) if not h.startswith("/static/")})
    assert len(links) >= 3, links
    answers = {link: client.get(link).status_code for link in links}
    assert not [link for link, status in answers.items() if status == 403], answers
    assert all(status in (200, 302) for status in answers.values()), answers
