"""The OCSP endpoint at the WSGI level (protocols.ocsp.endpoint), in both applications that run it: gunicorn's
(pki.wsgi: Django with the endpoint's paths answered before its handler) and the responder's own processes'
(protocols.ocsp.wsgi): the same status, headers and body as the Django project gives on those paths, the same
metrics, tryLater when the database is gone; the responder's processes answer a 404 for anything else, gunicorn's
hands it to Django."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from django.core.signals import request_finished, request_started
from django.db import OperationalError, close_old_connections
from django.test import RequestFactory, override_settings

from pki import wsgi as project
from pki.metrics import OCSP_RESPONSES
from protocols.ocsp import endpoint, services
from protocols.ocsp import wsgi as responder

pytestmark = pytest.mark.django_db

NO_CA_REQUEST = bytes.fromhex(  # one SHA-1 CertID of an issuer no CA here has, no nonce
    "30423040303e303c303a300906052b0e03021a05000414" + "11" * 20 + "0414" + "22" * 20 + "020101")
GET_PATH = "/ocsp/" + quote(base64.b64encode(NO_CA_REQUEST).decode(), safe="")
OCSP_TYPE = "application/ocsp-request"


APPS = {"responder": responder.application, "gunicorn": project.application}


@pytest.fixture(params=list(APPS))
def app(request):
    return APPS[request.param]


def _lean(method: str, path: str, app=responder.application, **kw) -> tuple[int, bytes, list]:
    environ = getattr(RequestFactory(), method)(path, **kw).environ
    started = []
    # As Django's test client does: the test's transaction must survive the request's end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(app(environ, lambda status, headers, *exc: started.append((status, headers))))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    (status, headers), = started
    return int(status.split()[0]), body, sorted(headers)


def _django(client, method: str, path: str, **kw) -> tuple[int, bytes, list]:
    resp = getattr(client, method)(path, **kw)
    return resp.status_code, resp.content, sorted(resp.headers.items())


@pytest.mark.parametrize(("method", "path", "kw", "status"), [
    ("post", "/ocsp", {"data": NO_CA_REQUEST, "content_type": OCSP_TYPE}, "unauthorized"),
    ("post", "/ejbca/publicweb/status/ocsp", {"data": b"garbage", "content_type": OCSP_TYPE}, "malformed_request"),
    ("post", "/ocsp", {"data": b"x", "content_type": "text/plain"}, "malformed_request"),
    ("get", GET_PATH, {}, "unauthorized"),
    ("get", "/ejbca/publicweb/status" + GET_PATH, {}, "unauthorized"),
    ("get", "/ejbca/publicweb/status/ocsp/%25%25", {}, "malformed_request"),
    ("get", "/ocsp", {}, "malformed_request"),
    ("put", "/ocsp", {}, None),
    ("post", "/ocsp", {"data": b"\x30" * 20000, "content_type": OCSP_TYPE}, None),
])
def test_the_same_answer_as_the_django_project(client, app, method, path, kw, status):
    lean = _lean(method, path, app, **kw)
    assert lean == _django(client, method, path, **kw)
    headers = dict(lean[2])
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Length"] == str(len(lean[1])) and "Cache-Control" in headers
    if status is not None:
        assert lean[0] == 200 and asn1_ocsp.OCSPResponse.load(lean[1])["response_status"].native == status
    else:
        assert lean[0] in (405, 413)


@pytest.fixture
def signed_request(ca_factory, actor, csr_factory):
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    ca = ca_factory("LeanCA", key_spec="P-256")
    csr, _ = csr_factory("CN=lean-leaf,O=Test,C=SE", key_spec="P-256")
    leaf = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"), csr=csr,
                                 username="lean-leaf")).row
    return ca, (x509_ocsp.OCSPRequestBuilder().add_certificate(leaf.certificate, ca.certificate, hashes.SHA1())
                .add_extension(x509.OCSPNonce(b"lean-nonce-16byt"), critical=False).build().public_bytes(Encoding.DER))


def test_a_signed_answer_as_the_django_project(client, app, signed_request):
    ca, data = signed_request
    lean = _lean("post", "/ocsp", app, data=data, content_type=OCSP_TYPE)
    whole = _django(client, "post", "/ocsp", data=data, content_type=OCSP_TYPE)
    assert lean[0] == whole[0] == 200
    assert [k for k, _ in lean[2]] == [k for k, _ in whole[2]]  # the same headers (the length may differ by a byte)
    for _, body, _ in (lean, whole):  # ECDSA signatures differ from one signing to the next: compare what they say
        answer = x509_ocsp.load_der_ocsp_response(body)
        assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
        assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"lean-nonce-16byt"
        ca.certificate.public_key().verify(answer.signature, answer.tbs_response_bytes,
                                           ec.ECDSA(answer.signature_hash_algorithm))


@pytest.mark.parametrize("path", ["/", "/ocspx", "/ocsp/", "/admin/", "/api/v1/ca"])
def test_other_paths_are_not_found_here(path):
    status, body, headers = _lean("get", path)
    assert status == 404 and body == b"Not found.\n"
    assert dict(headers)["X-Content-Type-Options"] == "nosniff"


def test_health_probe_answers_here():
    status, body, _ = _lean("get", "/healthz")
    assert status == 200 and b'"ok"' in body


@pytest.mark.parametrize("way", ["responder", "gunicorn", "django"])
def test_a_lost_database_is_try_later_on_every_way(client, monkeypatch, way):
    def gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services._ca_index, "index", {("sha1", b"\x11" * 20, b"\x22" * 20): 1})
    monkeypatch.setattr(services, "answer_state", gone)
    kw = {"data": NO_CA_REQUEST, "content_type": OCSP_TYPE}
    status, body, headers = _django(client, "post", "/ocsp", **kw) if way == "django" else _lean(
        "post", "/ocsp", APPS[way], **kw)
    assert status == 200 and asn1_ocsp.OCSPResponse.load(body)["response_status"].native == "try_later"
    assert dict(headers)["Cache-Control"] == "no-cache, no-store"


def test_answers_are_counted_by_response_status(app):
    counter = OCSP_RESPONSES.labels(status="unauthorized")
    before = counter._value.get()
    _lean("post", "/ocsp", app, data=NO_CA_REQUEST, content_type=OCSP_TYPE)
    assert counter._value.get() == before + 1


@pytest.mark.parametrize("path", ["/", "/ocspx", "/ocsp/", "/admin/", "/api/v1/ca", "/ocsp/\u00e9"])
def test_gunicorns_application_hands_every_other_path_to_django(monkeypatch, path):
    seen = []

    def django(environ, start_response):
        seen.append(environ["PATH_INFO"])
        start_response("204 No Content", [])
        return [b""]

    app = endpoint.route(django)
    assert _lean("get", path, app)[0] == 204 and len(seen) == 1


@pytest.mark.parametrize("setting", [{"SECURE_SSL_REDIRECT": True}, {"SECURE_HSTS_SECONDS": 3600}])
def test_settings_that_look_at_the_request_leave_the_endpoint_to_django(setting):
    """SecurityMiddleware's redirect and HSTS depend on the request's scheme: Django answers then."""
    def django(environ, start_response):
        start_response("204 No Content", [])
        return [b""]

    kw = {"data": NO_CA_REQUEST, "content_type": OCSP_TYPE, "secure": True}
    with override_settings(**setting):
        assert _lean("post", "/ocsp", endpoint.route(django), **kw)[0] == 204
    status, body, _ = _lean("post", "/ocsp", endpoint.route(django), **kw)
    assert status == 200 and asn1_ocsp.OCSPResponse.load(body)["response_status"].native == "unauthorized"


# --- serve.py --ocsp-workers N: one granian process per port, nginx takes them in turn -------------------------


def test_nginx_takes_each_responder_process_in_turn(tmp_path):
    """granian's workers of one process share its listening socket, and nginx's kept connections all landed on
    one of them: so one process (``--workers 1``) per port, each port a server of nginx's OCSP upstream."""
    import re
    import subprocess

    from tests.deploy.test_serving import serve

    nginx = serve.nginx_binary()
    assert nginx, "nginx is not installed: scripts/install-test-deps.sh installs it"
    config = serve.render_nginx(tmp_path, "127.0.0.1", 8000, 8001, ocsp_ports=[8002, 8003])
    site = (tmp_path / "pki-run.conf").read_text()
    upstream = re.search(r"upstream pki_ocsp \{(.*?)\}", site, re.DOTALL)[1]
    assert re.findall(r"server (\S+);", upstream) == ["127.0.0.1:8002", "127.0.0.1:8003"]
    out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and "[emerg]" not in out.stderr, out.stderr
    argv = serve.ocsp_argv(8002, 4)
    assert argv[argv.index("--workers") + 1] == "1" and argv[argv.index("--port") + 1] == "8002"
    assert argv[-1] == "protocols.ocsp.wsgi:application"
