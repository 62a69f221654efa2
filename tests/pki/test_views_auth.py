"""Admin UI access: login and logout (audited), the login redirect, 'not authorized' pages naming the
rule, and navigation and buttons limited to what a role allows.

``ui_client`` is imported by the other test_views_* modules.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

import pki.views.urls  # noqa: F401 (the URLconf connects the login audit receivers; tests may log in before it loads)
from pki.choices import MemberMatch
from pki.models import AccessRule, AuditEvent, CertificateProfile, Role, RoleMember


def ui_client(username: str, rules: list[str] | None) -> Client:
    """A test client logged in as a local user who is a member of a role with ``rules`` (None: no role)."""
    user = get_user_model().objects.create_user(username)
    if rules is not None:
        role = Role.objects.create(name=f"role-{username}")
        AccessRule.objects.bulk_create([AccessRule(role=role, resource=r) for r in rules])
        RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value=username)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def nobody(db):
    return ui_client("nobody", None)


VIEW_RULES = ["/administrator", "/ca_functionality/view_ca", "/ca_functionality/view_certificate_profiles",
              "/ca_functionality/view_certificate", "/audit/view"]


def test_login_page_has_a_csrf_protected_form_and_no_navigation(db):
    r = Client().get("/login/")
    html = r.content.decode()
    assert r.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in html and 'id="id_username"' in html and 'id="id_password"' in html
    assert 'class="side"' not in html and "Log out" not in html


def test_login_failure_success_and_logout_are_audited(db):
    get_user_model().objects.create_user("alice", password="correct-horse-1")
    client = Client(enforce_csrf_checks=False)

    r = client.post("/login/", {"username": "alice", "password": "wrong-battery-9"})
    assert r.status_code == 200 and b"errorlist" in r.content
    failed = AuditEvent.objects.get(event_type="LOGIN", outcome="FAILURE")
    assert failed.actor == "alice"
    assert "wrong-battery-9" not in str(failed.details) and "correct-horse-1" not in str(failed.details)

    r = client.post("/login/", {"username": "alice", "password": "correct-horse-1", "next": "/cas/"})
    assert r.status_code == 302 and r["Location"] == "/cas/"
    ok = AuditEvent.objects.get(event_type="LOGIN", outcome="SUCCESS")
    assert ok.actor == "alice" and "correct-horse-1" not in str(ok.details)

    assert client.get("/logout/").status_code == 405  # logging out is a POST (the header's button)
    r = client.post("/logout/")
    assert r.status_code == 302 and r["Location"] == "/login/"
    assert AuditEvent.objects.filter(event_type="LOGOUT", actor="alice").exists()
    assert client.get("/").status_code == 302


def test_header_shows_user_and_logout_button(admin):
    html = admin.get("/").content.decode()
    assert "uiadmin" in html and 'action="/logout/"' in html and "Log out" in html
    assert "https://" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


@pytest.mark.parametrize("url", ["/", "/cas/", "/cas/new/", "/cas/import/", "/profiles/", "/profiles/new/",
                                 "/certificates/", "/certificates/issue/", "/crls/", "/audit/", "/tasks/x/"])
def test_anonymous_is_sent_to_login(db, url):
    r = Client().get(url)
    assert r.status_code == 302 and r["Location"] == f"/login/?next={url}"


# (method, url, the rule the page names); {ca}, {cert} and {profile} are filled in with real objects.
DENIED = [
    ("get", "/", "/administrator"),
    ("get", "/cas/", "/ca_functionality/view_ca"),
    ("get", "/cas/{ca}/", "/ca_functionality/view_ca"),
    ("get", "/cas/{ca}/download/pem/", "/ca_functionality/view_ca"),
    ("get", "/cas/new/", "/ca_functionality/create_ca"),
    ("post", "/cas/new/", "/ca_functionality/create_ca"),
    ("get", "/cas/import/", "/ca_functionality/create_ca"),
    ("post", "/cas/{ca}/edit/", "/ca_functionality/edit_ca"),
    ("post", "/cas/{ca}/renew/", "/ca_functionality/renew_ca"),
    ("get", "/profiles/", "/ca_functionality/view_certificate_profiles"),
    ("get", "/profiles/{profile}/", "/ca_functionality/view_certificate_profiles"),
    ("post", "/profiles/new/", "/ca_functionality/edit_certificate_profiles"),
    ("post", "/profiles/{profile}/clone/", "/ca_functionality/edit_certificate_profiles"),
    ("post", "/profiles/{profile}/delete/", "/ca_functionality/edit_certificate_profiles"),
    ("get", "/certificates/", "/ca_functionality/view_certificate"),
    ("get", "/certificates/{cert}/", "/ca_functionality/view_certificate"),
    ("get", "/certificates/{cert}/download/der/", "/ca_functionality/view_certificate"),
    ("post", "/certificates/{cert}/revoke/", "/ra_functionality/revoke_end_entity"),
    ("post", "/certificates/{cert}/unhold/", "/ra_functionality/revoke_end_entity"),
    ("get", "/certificates/issue/", "/ca_functionality/create_certificate"),
    ("post", "/certificates/issue/", "/ca_functionality/create_certificate"),
    ("get", "/crls/", "/ca_functionality/view_ca"),
    ("post", "/crls/{ca}/create/", "/ca_functionality/create_crl"),
    ("get", "/audit/", "/audit/view"),
    ("get", "/audit/?verify=1", "/audit/view"),
    ("get", "/tasks/some-task/", "/administrator"),
]


@pytest.mark.parametrize(("method", "url", "rule"), DENIED)
def test_user_without_role_gets_not_authorized_naming_the_rule(nobody, root_ca, method, url, rule):
    from pki.models import Certificate

    cert = Certificate.objects.get(ca=root_ca)
    profile = CertificateProfile.objects.get(name="SERVER")
    r = getattr(nobody, method)(url.format(ca=root_ca.pk, cert=cert.pk, profile=profile.pk))
    html = r.content.decode()
    assert r.status_code == 403
    assert "Not authorized" in html and f"<code>{rule}</code>" in html and "Traceback" not in html
    assert Certificate.objects.count() == 1 and root_ca.crls.count() == 1  # nothing happened (its first CRL)


def test_a_ca_outside_the_roles_ca_rules_is_hidden_and_refused(db, ca_factory):
    visible, hidden = ca_factory("Visible"), ca_factory("Hidden")
    client = ui_client("operator", ["/ca_functionality/view_ca", f"/ca/{visible.pk}"])
    html = client.get("/cas/").content.decode()
    assert "Visible" in html and "Hidden" not in html
    r = client.get(f"/cas/{hidden.pk}/")
    assert r.status_code == 403 and f"<code>/ca/{hidden.pk}</code>" in r.content.decode()


@pytest.mark.parametrize(
    ("rules", "shown", "hidden"),
    [
        (["/"], ["Dashboard", "Certificate authorities", "Certificate profiles", "Certificates", "Issue for CSR",
                 "CRLs", "Audit log"], []),
        (["/administrator", "/audit/view"], ["Dashboard", "Audit log"],
         ["Certificate authorities", "Issue for CSR", "Certificate profiles", "CRLs"]),
        (["/administrator", "/ca_functionality/view_certificate"], ["Dashboard", "Certificates"],
         ["Issue for CSR", "Audit log", "Certificate authorities"]),
    ],
)
def test_navigation_shows_only_what_the_role_allows(db, rules, shown, hidden):
    client = ui_client("navuser", rules)
    nav = client.get("/").content.decode().split('<nav class="side"', 1)[1].split("</nav>", 1)[0]
    for label in shown:
        assert f">{label}</a>" in nav, label
    for label in hidden:
        assert f">{label}</a>" not in nav, label


def test_viewer_does_not_see_buttons_for_actions_it_cannot_take(db, builtin_profiles, sub_ca):
    from pki.models import Certificate

    viewer = ui_client("viewer", VIEW_RULES + ["/ca/"])
    pages = {
        "/cas/": ["Create CA", "Import CA certificate"],
        f"/cas/{sub_ca.pk}/": [f'href="/cas/{sub_ca.pk}/edit/"', f'href="/cas/{sub_ca.pk}/renew/"'],
        "/profiles/": ["Add profile"],
        f"/profiles/{CertificateProfile.objects.get(name='SERVER').pk}/": ["Clone", "Delete"],
        "/certificates/": ["Issue for CSR"],
        f"/certificates/{Certificate.objects.get(subject_dn=sub_ca.subject_dn).pk}/": ["Revoke", "Take off hold"],
        "/crls/": ["Create CRL"],
    }
    for url, buttons in pages.items():
        r = viewer.get(url)
        assert r.status_code == 200, url
        for button in buttons:
            assert button not in r.content.decode(), (url, button)


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        ("crypto", 400, "No key pair 'k' here"),
        ("offline", 503, "is offline"),
        ("conflict", 409, "taken already"),
        ("denied", 403, "<code>/ca/7</code>"),
    ],
)
def test_refusals_escaping_a_view_become_pages_not_500(db, rf, error, status, text):
    from django.contrib.messages.storage.fallback import FallbackStorage

    from cryptotokens.errors import CryptoTokenOfflineError, KeyPairNotFoundError
    from pki.errors import AuthorizationDenied, ConflictError
    from pki.views.base import requires

    raised = {"crypto": KeyPairNotFoundError("No key pair 'k' here"), "offline": CryptoTokenOfflineError("T"),
              "conflict": ConflictError("taken already"), "denied": AuthorizationDenied("/ca/7")}[error]

    @requires("/administrator")
    def view(request):
        raise raised

    request = rf.get("/somewhere/")
    request.user = get_user_model().objects.create_user("refused")
    role = Role.objects.create(name="admins")
    AccessRule.objects.create(role=role, resource="/administrator")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="refused")
    request.session = {}
    request._messages = FallbackStorage(request)
    r = view(request)
    assert r.status_code == status and text in r.content.decode().replace("&#x27;", "'")
