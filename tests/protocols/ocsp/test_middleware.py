"""The OCSP endpoint's short way through Django (protocols.ocsp.middleware): it answers exactly the responder's
routes of the URLconf, with the same status, body and headers as the whole middleware chain gives."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as asn1_ocsp
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

from protocols.ocsp.middleware import ENDPOINT_PATH

pytestmark = pytest.mark.django_db

FAST = "protocols.ocsp.middleware.OcspEndpointMiddleware"
WITHOUT = [m for m in settings.MIDDLEWARE if m != FAST]
NO_CA_REQUEST = bytes.fromhex(  # one SHA-1 CertID of an issuer no CA here has, no nonce
    "30423040303e303c303a300906052b0e03021a05000414" + "11" * 20 + "0414" + "22" * 20 + "020101")


def test_it_sits_below_security_and_above_the_session_work():
    order = settings.MIDDLEWARE.index
    assert order("django.middleware.security.SecurityMiddleware") < order(FAST)
    for later in ("django.contrib.sessions.middleware.SessionMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
                  "django.contrib.auth.middleware.AuthenticationMiddleware"):
        assert order(FAST) < order(later)


@pytest.mark.parametrize(("name", "args", "encoded"), [
    ("ocsp", [], None), ("ocsp-ejbca", [], None),
    ("ocsp-get", ["MEIwQDA+MDwwCQYFKw4DAhoFAAQU"], "MEIwQDA+MDwwCQYFKw4DAhoFAAQU"),
    ("ocsp-ejbca-get", ["a/b+c=="], "a/b+c=="),
])
def test_every_endpoint_route_is_recognized(name, args, encoded):
    match = ENDPOINT_PATH.fullmatch(reverse(name, args=args))
    assert match is not None and match["encoded"] == encoded


@pytest.mark.parametrize("path", ["/ocsp/", "/ocspx", "/xocsp", "/ejbca/publicweb/status/ocsp/", "/ejbca/ocsp",
                                  "/api/ocsp", "/system/ocsp/", "/ejbca/publicweb/status/ocspx"])
def test_other_paths_take_the_whole_chain(path):
    assert ENDPOINT_PATH.fullmatch(path) is None


def _answer(client, method: str, path: str, **kw):
    resp = getattr(client, method)(path, **kw)
    return resp.status_code, resp.content, sorted((k, v) for k, v in resp.headers.items())


GET_PATH = "/ocsp/" + quote(base64.b64encode(NO_CA_REQUEST).decode(), safe="")


@pytest.mark.parametrize(("method", "path", "kw", "status"), [
    ("post", "/ocsp", {"data": NO_CA_REQUEST, "content_type": "application/ocsp-request"}, "unauthorized"),
    ("post", "/ejbca/publicweb/status/ocsp", {"data": b"garbage", "content_type": "application/ocsp-request"},
     "malformed_request"),
    ("post", "/ocsp", {"data": b"x", "content_type": "text/plain"}, "malformed_request"),
    ("get", GET_PATH, {}, "unauthorized"),
    ("get", "/ejbca/publicweb/status/ocsp/%25%25", {}, "malformed_request"),
    ("get", "/ocsp", {}, "malformed_request"),
    ("put", "/ocsp", {}, None),
    ("post", "/ocsp", {"data": b"\x30" * 20000, "content_type": "application/ocsp-request"}, None),
])
def test_the_same_answer_as_the_whole_chain(client, method, path, kw, status):
    fast = _answer(client, method, path, **kw)
    with override_settings(MIDDLEWARE=WITHOUT):
        assert _answer(client, method, path, **kw) == fast
    headers = dict(fast[2])
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Length"] == str(len(fast[1])) and "Cache-Control" in headers
    if status is not None:
        assert fast[0] == 200 and asn1_ocsp.OCSPResponse.load(fast[1])["response_status"].native == status
    else:
        assert fast[0] in (405, 413)


def test_no_session_or_csrf_cookie_on_the_way(client):
    resp = client.post("/ocsp", data=NO_CA_REQUEST, content_type="application/ocsp-request")
    assert not resp.cookies and "Vary" not in resp.headers
