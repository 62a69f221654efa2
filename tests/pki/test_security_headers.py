"""Response headers and session limits (issue 11, item 13): a Content-Security-Policy without inline script on
every HTML page, ``Cache-Control: no-store`` on admin/RA pages and REST answers (not on the public CRL and CA
certificate downloads), and server-side idle and absolute limits of a browser session."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from pki.choices import MemberMatch
from pki.crl import create_crl
from pki.http.sessions import LAST_SEEN, LOGIN_TIME
from pki.models import AccessRule, Role, RoleMember

V1 = "/ejbca/ejbca-rest-api/v1"
ROOT = Path(django_settings.BASE_DIR)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin(db) -> Client:
    """A browser logged in as an administrator with every right."""
    user = get_user_model().objects.create_user("hdr-admin", password="pw-hdr-admin")
    role = Role.objects.create(name="hdr-admins")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="hdr-admin")
    client = Client()
    client.force_login(user)
    return client


def _csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in policy.split(";")) if part}


# --- Content-Security-Policy and Cache-Control on every kind of page ---------------------------------------

PAGES = [
    ("login page (anonymous)", "anonymous", "/login/", 200),
    ("dashboard", "admin", "/", 200),
    ("CA list", "admin", "/cas/", 200),
    ("crypto tokens", "admin", "/cryptotokens/", 200),
    ("create crypto token", "admin", "/cryptotokens/new/", 200),
    ("end entity profiles", "admin", "/endentityprofiles/", 200),
    ("roles", "admin", "/roles/", 200),
    ("OAuth providers", "admin", "/system/oauth-providers/", 200),
    ("SCEP aliases", "admin", "/system/scep/", 200),
    ("RA portal", "admin", "/ra/", 200),
    ("not found page", "admin", "/no-such-page/", 404),
    ("browsable REST API", "admin", f"{V1}/ca", 200),
]


@pytest.mark.parametrize(("case", "who", "path", "status"), PAGES, ids=[p[0] for p in PAGES])
def test_html_pages_carry_the_policy_and_no_store(admin, root_ca, case, who, path, status):
    client = admin if who == "admin" else Client()
    r = client.get(path, HTTP_ACCEPT="text/html")
    assert r.status_code == status, r.content[:300]
    assert r["Content-Type"].startswith("text/html")
    csp = _csp(r)
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no other host
    assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'self'"] and csp["base-uri"] == ["'self'"]
    assert "no-store" in r["Cache-Control"]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", f"{V1}/ca", 200),
    ("get", f"{V1}/ca/status", 200),
    ("get", "/api/v1/oauth-providers/", 200),
    ("post", f"{V1}/endentity/search", 400),  # an error answer too
    ("get", f"{V1}/no-such-resource", 404),
])
def test_rest_answers_are_not_stored(root_ca, method, path, status):
    import base64

    get_user_model().objects.create_user("hdr-api", password="pw-hdr-api")
    role = Role.objects.create(name="hdr-api")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="hdr-api")
    auth = "Basic " + base64.b64encode(b"hdr-api:pw-hdr-api").decode()
    r = getattr(Client(), method)(path, HTTP_AUTHORIZATION=auth, content_type="application/json")
    assert r.status_code == status, r.content
    assert "no-store" in r["Cache-Control"]


def test_public_downloads_keep_their_caching(root_ca, actor):
    create_crl(actor, root_ca)
    for path in (f"/crl/{root_ca.name}.crl", f"/ca/{root_ca.name}.crt"):
        r = Client().get(path)
        assert r.status_code == 200, path
        assert "no-store" not in r["Cache-Control"] and "public" in r["Cache-Control"], r["Cache-Control"]


def test_static_files_keep_their_caching(db):
    r = Client().get("/static/pki/confirm.js")
    assert r.status_code == 200
    assert "no-store" not in r.get("Cache-Control", "")


def test_api_docs_work_under_a_policy_without_inline_script(db):
    r = Client().get("/api/docs/")
    assert r.status_code == 200
    assert _csp(r)["script-src"] == ["'self'"]
    page = r.content.decode()
    # Every script of the page is a file of this site (the start-up script too)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts), scripts
    start = [re.search(r'src="([^"]+)"', a)[1] for a, _ in scripts if "script=" in a]
    assert start, scripts
    js = Client().get(start[0].replace("&amp;", "&"))
    assert js.status_code == 200 and b"SwaggerUIBundle" in js.content


# --- no inline script in any template (the policy would block it) -----------------------------------------

TEMPLATE_DIRS = ["templates", "pki/templates", "endentities/templates", "protocols/scep/templates",
                 "keybindings/templates", "cryptotokens/templates"]
TEMPLATES = sorted(str(p.relative_to(ROOT)) for d in TEMPLATE_DIRS for p in (ROOT / d).rglob("*.html"))
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
JS_URL = re.compile(r"""(href|action|src)\s*=\s*["']?\s*javascript:""", re.I)


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_have_no_inline_script(template):
    text = (ROOT / template).read_text()
    assert not INLINE_SCRIPT.search(text), "inline <script>: move it to a file under static/"
    assert not INLINE_HANDLER.search(text), "inline event handler: use data-confirm or a static script"
    assert not JS_URL.search(text)


def test_the_template_scan_sees_the_templates():
    assert len(TEMPLATES) > 40 and "templates/base.html" in TEMPLATES


# --- session limits ----------------------------------------------------------------------------------------

def _set_times(client: Client, login_ago: int, seen_ago: int) -> None:
    session = client.session
    now = int(time.time())
    session[LOGIN_TIME] = now - login_ago
    session[LAST_SEEN] = now - seen_ago
    session.save()


def _logged_out(client: Client, response) -> bool:
    return response.status_code == 302 and "/login/" in response["Location"] and SESSION_KEY not in client.session


@pytest.mark.parametrize(("case", "login_ago", "seen_ago", "logged_out"), [
    ("fresh", 60, 10, False),
    ("idle just under 30 minutes", 3600, 29 * 60, False),
    ("idle over 30 minutes", 3600, 31 * 60, True),
    ("active but logged in 12 h ago", 12 * 3600 + 60, 5, True),
    ("active, logged in 11 h ago", 11 * 3600, 5, False),
])
def test_session_limits_with_the_defaults(admin, case, login_ago, seen_ago, logged_out):
    assert admin.get("/").status_code == 200
    _set_times(admin, login_ago, seen_ago)
    r = admin.get("/")
    assert _logged_out(admin, r) is logged_out, (r.status_code, r.get("Location"))
    if logged_out:  # and it stays out: the cookie's session is gone
        assert _logged_out(admin, admin.get("/cas/"))


def test_limits_come_from_the_settings(admin, settings):
    settings.PKI_SESSION_IDLE_TIMEOUT = 120
    settings.PKI_SESSION_MAX_AGE = 600
    _set_times(admin, 300, 100)
    assert admin.get("/").status_code == 200
    _set_times(admin, 300, 130)
    assert _logged_out(admin, admin.get("/"))


def test_activity_moves_the_idle_clock(admin):
    _set_times(admin, 3600, 25 * 60)
    assert admin.get("/").status_code == 200
    assert int(time.time()) - admin.session[LAST_SEEN] < 5
    assert int(time.time()) - admin.session[LOGIN_TIME] >= 3600  # the login time does not move


def test_login_starts_the_clocks(db):
    get_user_model().objects.create_user("hdr-login", password="pw-hdr-login")
    client = Client()
    r = client.post("/login/", {"username": "hdr-login", "password": "pw-hdr-login"})
    assert r.status_code == 302
    assert abs(client.session[LOGIN_TIME] - time.time()) < 5 and abs(client.session[LAST_SEEN] - time.time()) < 5


def test_an_expired_session_does_not_reach_the_api(admin):
    _set_times(admin, 13 * 3600, 5)
    r = admin.get(f"{V1}/ca")
    assert r.status_code in (401, 403) and "certificate_authorities" not in r.content.decode()


def test_session_cookie_lifetime_is_the_absolute_limit():
    assert django_settings.SESSION_COOKIE_AGE == django_settings.PKI_SESSION_MAX_AGE == 12 * 3600
    assert django_settings.PKI_SESSION_IDLE_TIMEOUT == 30 * 60
