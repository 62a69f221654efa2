"""The SCEP endpoint's short way through Django (protocols.scep.middleware): it answers exactly the endpoint
routes of the URLconf, with the same status, body and headers as the whole middleware chain gives."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from protocols.scep.middleware import ENDPOINT_PATH

from .server_fixtures import *  # noqa: F403

pytestmark = pytest.mark.django_db

FAST = "protocols.scep.middleware.ScepEndpointMiddleware"
WITHOUT = [m for m in settings.MIDDLEWARE if m != FAST]


def test_it_sits_right_after_the_security_middleware():
    assert settings.MIDDLEWARE.index(FAST) == settings.MIDDLEWARE.index(
        "django.middleware.security.SecurityMiddleware") + 1


@pytest.mark.parametrize(("name", "args"), [("scep-default", []), ("scep-alias", ["ra-devices"]),
                                            ("scep-short-default", []), ("scep-short", ["a.b_c-1"])])
def test_every_endpoint_route_is_recognized(name, args):
    match = ENDPOINT_PATH.fullmatch(reverse(name, args=args))
    assert match is not None and match["alias"] == (args[0] if args else None)


@pytest.mark.parametrize("path", ["/system/scep/", "/system/scep/scep/edit/", "/approvals/scep/",
                                  "/scep/a/b/pkiclient.exe", "/scep/pkiclient.exe/", "/xscep/pkiclient.exe",
                                  "/ejbca/publicweb/apply/scep/pkiclient.exe.bak"])
def test_other_paths_take_the_whole_chain(path):
    assert ENDPOINT_PATH.fullmatch(path) is None


def _answer(client, method: str, path: str, **kw):
    resp = getattr(client, method)(path, **kw)
    return resp.status_code, resp.content, sorted((k, v) for k, v in resp.headers.items())


@pytest.mark.parametrize(("method", "path", "kw"), [
    ("get", "/ejbca/publicweb/apply/scep/pkiclient.exe", {"data": {"operation": "GetCACaps"}}),
    ("get", "/scep/scep/pkiclient.exe", {"data": {"operation": "GetCACert"}}),
    ("get", "/scep/nosuch/pkiclient.exe", {"data": {"operation": "GetCACaps"}}),
    ("get", "/scep/pkiclient.exe", {"data": {"operation": "Nonsense"}}),
    ("post", "/scep/pkiclient.exe", {"data": b"not a SCEP message", "content_type": "application/x-pki-message"}),
    ("put", "/scep/pkiclient.exe", {}),
])
def test_the_same_answer_as_the_whole_chain(client, scep_ca, alias_factory, method, path, kw):
    alias_factory("scep", default_ca=scep_ca)
    fast = _answer(client, method, path, **kw)
    with override_settings(MIDDLEWARE=WITHOUT):
        assert _answer(client, method, path, **kw) == fast
    assert ("X-Frame-Options", "DENY") in fast[2] and ("X-Content-Type-Options", "nosniff") in fast[2]
    assert ("Content-Length", str(len(fast[1]))) in fast[2]


def test_admin_pages_of_scep_still_need_a_login(client):
    resp = client.get("/system/scep/")
    assert resp.status_code == 302 and "/login/" in resp["Location"]
