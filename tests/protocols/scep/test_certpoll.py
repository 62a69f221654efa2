"""CertPoll (GetCertInitial) answers only the requester: the transaction must exist and the poll be signed by
the key of the request that opened it. Anyone else (another key, another transactionID with the same subject)
gets FAILURE badCertId and no certificate, and an approved request is not issued on a stranger's poll. The owner
can fetch its certificate again (a lost SUCCESS reply).

Also the request body: a POST with ``Transfer-Encoding: chunked`` and no Content-Length is read when the server
de-chunks it (gunicorn; WSGI ``wsgi.input_terminated``), else refused with 411 instead of read as empty."""

from __future__ import annotations

import http.client
import io
import sys
from urllib.parse import urlsplit

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_started
from django.db import close_old_connections

from pki.models import Certificate
from pki.models.approvals import ApprovalRequest
from protocols.scep import approvals
from protocols.scep.messages import FailInfo, PkiStatus
from protocols.scep.messages import client as scep_client

from .live import LiveScepServer
from .server_fixtures import *  # noqa: F403
from .server_fixtures import URL, client_key, make_csr, own, self_signed


def _poll(scep, scep_ca, key, signer, transaction_id, subject) -> scep_client.CertRepResult:
    request = scep_client.build_get_cert_initial(scep_ca.certificate.subject, subject, signer, key,
                                                 scep_ca.certificate, transaction_id=transaction_id)
    return scep.exchange(request, key, signer, scep_ca.certificate)


def _victim(scep, scep_ca, n: int = 90, cn: str = "victim"):
    key = client_key(n)
    signer = self_signed(key, "client")
    csr = make_csr(key, f"CN={cn},O=Test", "s3cret")
    return key, signer, csr, scep.enroll(csr, key, scep_ca.certificate, signer_cert=signer)


@pytest.mark.django_db
@pytest.mark.parametrize("transaction", ["victim's", "made up"])
def test_a_stranger_polling_gets_failure(scep, scep_ca, ra, transaction):
    _key, _signer, csr, issued = _victim(scep, scep_ca)
    assert issued.status == PkiStatus.SUCCESS
    stranger = client_key(91)
    stranger_cert = self_signed(stranger, "stranger")
    tid = issued.transaction_id if transaction == "victim's" else "0123456789ABCDEF"
    result = _poll(scep, scep_ca, stranger, stranger_cert, tid, csr.subject)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)
    assert result.certificates == []


@pytest.mark.django_db
def test_the_requester_polls_its_certificate_again(scep, scep_ca, ra):
    key, signer, csr, issued = _victim(scep, scep_ca, 92, "owner")
    again = _poll(scep, scep_ca, key, signer, issued.transaction_id, csr.subject)
    assert again.status == PkiStatus.SUCCESS and own(again, key) == own(issued, key)
    # Signed with a new self-signed certificate of the same key: the key is what identifies the requester.
    other_signer = self_signed(key, "same key")
    assert own(_poll(scep, scep_ca, key, other_signer, issued.transaction_id, csr.subject), key) == own(issued, key)
    assert Certificate.objects.filter(username="owner").count() == 1


@pytest.mark.django_db
def test_a_stranger_polling_an_approved_request_gets_nothing_issued(scep, scep_ca, ra, actor):
    approvals.set_required(actor, ca=scep_ca)
    key, signer, csr, pending = _victim(scep, scep_ca, 93, "approved")
    assert pending.status == PkiStatus.PENDING
    stranger = client_key(94)
    stranger_cert = self_signed(stranger, "stranger")
    assert _poll(scep, scep_ca, stranger, stranger_cert, pending.transaction_id, csr.subject).status == \
        PkiStatus.FAILURE
    approvals.decide(actor, ApprovalRequest.objects.get().pk, approve=True)
    result = _poll(scep, scep_ca, stranger, stranger_cert, pending.transaction_id, csr.subject)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)
    assert not Certificate.objects.filter(username="approved").exists()
    mine = _poll(scep, scep_ca, key, signer, pending.transaction_id, csr.subject)
    assert mine.status == PkiStatus.SUCCESS and own(mine, key).public_key() == key.public_key()
    assert Certificate.objects.filter(username="approved").count() == 1


# --- chunked request bodies -------------------------------------------------------------------------------------

def _wsgi_post(path: str, body: bytes, *, terminated: bool) -> tuple[str, bytes]:
    """POST through Django's WSGI handler as a server that de-chunked (or did not) a chunked body calls it."""
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "operation=PKIOperation",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver",
        "HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_TYPE": "application/x-pki-message",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    status: list[str] = []
    # As Django's test client does: the test's database connection must outlive the request.
    request_started.disconnect(close_old_connections)
    try:
        chunks = WSGIHandler()(environ, lambda s, headers, *exc: status.append(s))
    finally:
        request_started.connect(close_old_connections)
    return status[0], b"".join(chunks)


@pytest.mark.django_db
def test_chunked_body_is_read_when_the_server_dechunks_it(scep_ca, ra):
    key = client_key(95)
    signer = self_signed(key, "client")
    request = scep_client.build_pkcs_req(make_csr(key, "CN=chunked,O=Test", "s3cret"), signer, key,
                                         scep_ca.certificate)
    status, body = _wsgi_post(URL.format(alias="scep"), request.data, terminated=True)
    assert status.startswith("200"), body
    result = scep_client.parse_cert_rep(body, key, signer, ca_certs=[scep_ca.certificate])
    assert result.status == PkiStatus.SUCCESS and own(result, key).public_key() == key.public_key()


@pytest.mark.django_db
@pytest.mark.parametrize("terminated, size, expected", [(False, 2000, "411"), (True, 70000, "413")])
def test_chunked_body_refused(scep_ca, ra, terminated, size, expected):
    status, _body = _wsgi_post(URL.format(alias="scep"), b"\x30" * size, terminated=terminated)
    assert status.startswith(expected)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with LiveScepServer(tmp_path_factory.mktemp("scep-chunked"), workers=1, threads=2,
                        users=("chunky",)) as server:
        yield server


def test_chunked_enrollment_through_gunicorn(live):
    import urllib.request

    from cryptography import x509

    ca_cert = x509.load_der_x509_certificate(
        urllib.request.urlopen(live.url("scep") + "?operation=GetCACert", timeout=10).read())
    key = client_key(96)
    signer = self_signed(key, "client")
    request = scep_client.build_pkcs_req(make_csr(key, "CN=chunky,O=Test,C=SE", "foo123"), signer, key, ca_cert)
    url = urlsplit(live.url("scep"))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    # An iterable body without a length: http.client sends it chunked, with no Content-Length.
    conn.request("POST", url.path + "?operation=PKIOperation", body=iter([request.data[:500], request.data[500:]]),
                 headers={"Content-Type": "application/x-pki-message"}, encode_chunked=True)
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    result = scep_client.parse_cert_rep(body, key, signer, ca_certs=[ca_cert])
    assert result.status == PkiStatus.SUCCESS, result.fail_info_text
    assert live.query("SELECT count(*) FROM pki_certificate WHERE username = %s", ("chunky",)) == [(1,)]
