"""Cross-site form POSTs against the REST API from a page on another origin, in headless Chromium (issue 11,
item 1).

The attacker's page is served by a plain http.server on 127.0.0.1 (another origin than the live server on
localhost). It auto-submits an HTML form to the API while the browser holds the operator's HTTP Basic
credentials and sends them by itself, as a browser does once the operator has logged in to the API.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model

from endentities.models import EndEntity
from pki.choices import MemberMatch
from pki.models import CRL, AccessRule, Role, RoleMember

from ..endentities.entities_support import ee_profile, ee_profile_factory  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)

V1 = "/ejbca/ejbca-rest-api/v1"
OPERATOR, PASSWORD = "ra-operator", "operator-basic-pw"


def _form_page(action: str, fields: dict[str, str]) -> bytes:
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<!doctype html><html><body><h1>Win a prize</h1>'
            f'<form id="f" method="post" action="{html.escape(action)}" '
            f'enctype="application/x-www-form-urlencoded">{inputs}</form>'
            f'<script>document.getElementById("f").submit();</script></body></html>').encode()


@pytest.fixture
def attacker_site():
    """An HTTP server on 127.0.0.1 serving the attacker's pages: ``site.pages[path] = html``."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.pages = pages
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def operator(db, settings):
    """An RA operator with every right, who uses the API with HTTP Basic from this browser."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_user_model().objects.create_user(OPERATOR, password=PASSWORD)
    role = Role.objects.create(name="e2e-operators")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=OPERATOR)


@pytest.fixture
def operator_browser(browser, live_server, operator):
    """A browser context that sends the operator's Basic credentials to the live server by itself."""
    context = browser.new_context(http_credentials={"username": OPERATOR, "password": PASSWORD,
                                                    "origin": live_server.url, "send": "always"})
    page = context.new_page()
    # The operator has used the API in this browser: Chromium now sends the credentials to its paths unasked.
    assert page.goto(live_server.url + f"{V1}/ca").status == 200
    yield page
    context.close()


def _submit_from_attacker(page, attacker_site, live_server, path: str, fields: dict[str, str]) -> int:
    """Open the attacker's page; return the status of the API's answer to the form it submits."""
    attacker_site.pages["/prize.html"] = _form_page(live_server.url + path, fields)
    with page.expect_response(lambda r: r.url.startswith(live_server.url + V1)) as answer:
        page.goto(attacker_site.url + "/prize.html")
    page.wait_for_load_state()
    return answer.value.status


def test_the_browser_really_sends_the_operators_credentials(operator_browser, live_server, root_ca):
    """The premise: a same-site read with the credentials the browser adds works."""
    r = operator_browser.goto(live_server.url + f"{V1}/ca")
    assert r.status == 200 and "TestRoot" in r.text()


def test_cross_site_form_cannot_add_an_end_entity(operator_browser, attacker_site, live_server, root_ca,
                                                  ee_profile):  # noqa: F811
    status = _submit_from_attacker(operator_browser, attacker_site, live_server, f"{V1}/endentity", {
        "username": "pki-superadmin", "password": "attacker-code", "subject_dn": "CN=pki-superadmin,O=Test",
        "ca_name": "TestRoot", "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
        "token": "USERGENERATED"})
    assert status == 403
    assert not EndEntity.objects.filter(username="pki-superadmin").exists()


def test_cross_site_form_without_fields_cannot_create_a_crl(operator_browser, attacker_site, live_server, root_ca):
    """No fields, no body: the Origin check alone must refuse it."""
    before = CRL.objects.filter(ca=root_ca).count()
    status = _submit_from_attacker(operator_browser, attacker_site, live_server,
                                   f"{V1}/ca/{quote(root_ca.subject_dn, safe='')}/createcrl", {})
    assert status == 403
    assert CRL.objects.filter(ca=root_ca).count() == before
