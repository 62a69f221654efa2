"""Error pages with navigation (issue 16): 400, 403 (Django's and a refused CSRF token) and 404 keep the layout, so a
logged-in user has the menu and a way on; a visitor gets the login link. And the favicon."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.views.defaults import bad_request, permission_denied

from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("erradmin", ["/"])


def _with_nav(html: str) -> bool:
    return 'id="side-nav"' in html and 'href="/start/"' in html


@pytest.mark.parametrize(("view", "status", "heading"), [
    (bad_request, 400, "400 · Bad request"),
    (permission_denied, 403, "403 · Not allowed"),
])
def test_django_error_pages_have_the_layout(admin, view, status, heading):
    request = RequestFactory().get("/somewhere/")
    request.user = get_user_model().objects.get(username="erradmin")
    request.session = {}
    response = view(request, PermissionDenied())
    html = response.content.decode()
    assert response.status_code == status and heading in html and _with_nav(html)
    request.user = AnonymousUser()
    html = view(request, PermissionDenied()).content.decode()
    assert heading in html and 'href="/login/"' in html and 'id="side-nav"' not in html


def test_csrf_refusal_is_a_page_with_navigation(admin):
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = admin.cookies
    r = strict.post("/certificates/revoke/", {"id": ["1"], "reason": "0"})
    html = r.content.decode()
    assert r.status_code == 403 and "The form could not be accepted" in html and _with_nav(html)
    assert "CSRF verification failed" not in html


def test_404_and_a_disallowed_host(admin):
    html = admin.get("/no/such/page/").content.decode()
    assert "404 · Page not found" in html and _with_nav(html)
    r = Client().get("/login/", HTTP_HOST="attacker.example")
    assert r.status_code == 400 and "400 · Bad request" in r.content.decode()


def test_favicon(db):
    r = Client().get("/favicon.ico")
    assert r.status_code == 301 and r["Location"].endswith(".svg") and "/static/pki/logo" in r["Location"]
