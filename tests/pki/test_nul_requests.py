"""A NUL character in a request's path or query string is a 400 before any view runs (pki.http.nul).

Every route of the URL table with a path parameter is tried with a NUL in each of its text parameters: before
the middleware, twelve of them (the public ``/crl/<name>.crl`` and ``/ca/<name>.crt`` among them, and REST
lookups by name) answered 500 with a traceback, as PostgreSQL's text cannot hold the character. make run's nginx
refuses a ``%00`` in a path by itself, but passes one in a query string: there the public certificate
distribution (``certdist?issuer=``) and the header's search box answered 500 too, through nginx."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from pki.http.nul import MESSAGE
from tests.pki.test_views_auth import ui_client


def _routes(patterns=None, prefix: str = ""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _with_nul() -> list[str]:
    """Each route with a text parameter, every such parameter holding a NUL (integers hold 1)."""
    paths = set()
    for route in _routes():
        if route.startswith("^") or not re.search(r"<(?:(?:str|slug|path):)?\w+>", route):
            continue
        path = re.sub(r"<int:\w+>", "1", route)
        path = re.sub(r"<(?:(?:str|slug|path):)?\w+>", "a%00b", path)
        if "%00" in path:
            paths.add("/" + path)
    return sorted(paths)


ROUTES = _with_nul()


def test_the_route_table_gives_enough_paths_to_try():
    assert len(ROUTES) > 40 and "/crl/a%00b.crl" in ROUTES and "/ca/a%00b.crt" in ROUTES


@pytest.fixture
def admin(db, builtin_profiles, root_ca):
    client = ui_client("uiadmin", ["/"])
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("path", ROUTES)
def test_a_nul_in_any_path_parameter_is_a_400(admin, path, tracebacks):
    response = admin.get(path)
    assert response.status_code == 400, (path, response.status_code)
    if path.startswith(("/api/", "/ejbca/ejbca-rest-api/")):
        assert response.json() == {"error_code": 400, "error_message": MESSAGE}
    else:
        assert response.content.decode() == MESSAGE
    assert not tracebacks.records


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "/crl/a%00b.crl",  # public: anyone
    "/ca/a%00b.crt",
    "/ejbca/publicweb/apply/scep/scep/pkiclient.exe?operation=GetCACert&message=a%00b",
    "/ejbca/ejbca-rest-api/v1/certificate/search?x=a%00",
    "/ejbca/publicweb/webdist/certdist?cmd=cacert&issuer=CN%3Da%00b",
])
def test_a_nul_anywhere_from_anyone_is_a_400(url, tracebacks):
    assert Client(raise_request_exception=False).get(url).status_code == 400
    assert not tracebacks.records


def test_a_nul_in_the_search_box_is_a_400(admin, tracebacks):
    assert admin.get("/search/?q=a%00b").status_code == 400
    assert not tracebacks.records


@pytest.mark.django_db
def test_a_percent_sign_followed_by_00_as_text_is_not_a_nul():
    """``%2500`` is the text ``%00``, not a NUL: passed on (here to the CRL view, which knows no such CA)."""
    assert Client().get("/crl/a%2500b.crl").status_code == 404
