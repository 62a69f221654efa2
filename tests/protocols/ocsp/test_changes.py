"""Nothing the responder keeps per process outlives a change: a revocation, a binding disabled or renewed and a
CA renewed with a new key, each made through the services in ANOTHER process, are in the very next answers of
every process and thread that answers OCSP on make run's own serving path (the Makefile's run line: nginx in
front of gunicorn 2 x 4, on PostgreSQL with kept connections; protocols/ocsp/wsgi.py keeps the same per-process
state, tests/protocols/ocsp/test_wsgi.py holds it to the same answers). And
the one statement an answer reads on PostgreSQL says what the ORM says on any other database."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from django.db import connection
from django.utils import timezone

from pki.db import execute
from protocols.ocsp import services
from tests.deploy.test_serving import MakeRunServer, serve

PRELUDE = """
import json
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from keybindings import services as kb
from keybindings.models import InternalKeyBinding
from pki.auth.access import Actor
from pki.issuance import IssuanceRequest, issue
from pki.models import Certificate, CertificateAuthority, CertificateProfile
from pki.revocation import revoke
from pki.services.cas import renew_ca
actor = Actor.system_actor("ocsp-test")
ca = CertificateAuthority.objects.get(name="ScepCA")
pem = lambda cert: cert.public_bytes(Encoding.PEM).decode()
def leaf(name):
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                                 subject_dn=f"CN={name},O=Test,C=SE", username=name)).row
"""

SETUP = """
binding = kb.create_binding(actor, name="ocsp-live", binding_type="OcspKeyBinding", crypto_token=ca.crypto_token,
                            key_spec="P-256")
kb.issue_certificate(actor, binding, ca=ca, profile=CertificateProfile.objects.get(name="OCSPSIGNER"))
kb.set_status(actor, InternalKeyBinding.objects.get(pk=binding.pk), "ACTIVE")
binding = InternalKeyBinding.objects.get(pk=binding.pk)
print(json.dumps({"ca": pem(ca.certificate), "leaf": pem(leaf("live-leaf").certificate),
                  "binding": pem(binding.certificate.certificate)}))
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    assert serve.nginx_binary(), "nginx is not installed: scripts/install-test-deps.sh installs it"
    with MakeRunServer(tmp_path_factory.mktemp("ocsp-live")) as server:
        yield server


def _shell(live, code: str) -> dict:
    out = live.manage("shell", "-c", PRELUDE + code)
    return json.loads(out.strip().splitlines()[-1])


def _load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _key_hash(cert: x509.Certificate) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _answers(live, issuer: x509.Certificate, cert: x509.Certificate, n: int = 16) -> list[x509_ocsp.OCSPResponse]:
    """``n`` answers, eight at a time on fresh connections: spread over both workers and their threads."""
    data = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).add_extension(
        x509.OCSPNonce(b"live-nonce-16byte"), critical=False).build().public_bytes(Encoding.DER)
    out: list = [None] * n
    lock = threading.Lock()
    todo = iter(range(n))

    def client() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            r = requests.post(live.base + "/ocsp", data=data, timeout=30,
                              headers={"Content-Type": "application/ocsp-request", "Connection": "close"})
            out[i] = x509_ocsp.load_der_ocsp_response(r.content)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _signed_by(answer: x509_ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    assert answer.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.responder_key_hash == _key_hash(signer)
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm))
    else:
        key.verify(answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), answer.signature_hash_algorithm)


@pytest.mark.multiprocess
def test_changes_from_another_process_are_in_the_next_answers(live):
    made = _shell(live, SETUP)
    ca, leaf, binding = _load(made["ca"]), _load(made["leaf"]), _load(made["binding"])
    for answer in _answers(live, ca, leaf):  # every worker and thread now holds its per-process state
        _signed_by(answer, binding)
        assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
        assert answer.certificates == [binding]

    _shell(live, 'revoke(actor, Certificate.objects.get(username="live-leaf"), 1); print("{}")')
    for answer in _answers(live, ca, leaf):
        assert answer.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
        assert answer.revocation_reason == x509.ReasonFlags.key_compromise

    _shell(live, 'kb.set_status(actor, InternalKeyBinding.objects.get(name="ocsp-live"), "DISABLED"); print("{}")')
    for answer in _answers(live, ca, leaf):
        _signed_by(answer, ca)
        assert answer.certificates == []

    renewed = _load(_shell(live, """
b = InternalKeyBinding.objects.get(name="ocsp-live")
kb.set_status(actor, b, "ACTIVE")
row = kb.renew(actor, InternalKeyBinding.objects.get(pk=b.pk))
print(json.dumps({"binding": pem(InternalKeyBinding.objects.get(pk=b.pk).certificate.certificate)}))
""")["binding"])
    assert _key_hash(renewed) != _key_hash(binding)
    for answer in _answers(live, ca, leaf):
        _signed_by(answer, renewed)
        assert answer.certificates == [renewed]

    after = _shell(live, """
kb.set_status(actor, InternalKeyBinding.objects.get(name="ocsp-live"), "DISABLED")
ca = renew_ca(actor, ca, new_key_alias="signKey2", new_key_spec="RSA2048")
print(json.dumps({"ca": pem(ca.certificate), "leaf": pem(leaf("after-renewal").certificate)}))
""")
    new_ca, new_leaf = _load(after["ca"]), _load(after["leaf"])
    assert _key_hash(new_ca) != _key_hash(ca)
    for answer in _answers(live, new_ca, new_leaf):  # new issuer hashes, new CA key
        _signed_by(answer, new_ca)
        assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    for answer in _answers(live, ca, leaf, n=8):  # the old certificate's issuer hashes still name this CA
        _signed_by(answer, new_ca)
        assert answer.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED


# --- the statement and the ORM agree -------------------------------------------------------------------------


@pytest.fixture
def ocsp_ca(ca_factory):
    return ca_factory("StateCA", key_spec="P-256")


def _both(monkeypatch, ca_id: int, serials: list[str], now) -> tuple[tuple | None, tuple | None]:
    """(the prepared statement's row, the ORM's) for the same question."""
    statement = services.answer_state(ca_id, serials, now)
    with monkeypatch.context() as m:
        m.setattr(connection, "vendor", "sqlite")  # what answer_state does on any other database
        orm = services.answer_state(ca_id, serials, now)
    return _normal(statement), _normal(orm)


def _normal(state):
    if state is None:
        return None
    found = state[-1]
    if isinstance(found, str):
        found = json.loads(found)
    return (*state[:-1], sorted(tuple(row) for row in found or ()))


@pytest.mark.django_db(transaction=True)
def test_statement_and_orm_agree(ocsp_ca, actor, soft_token_factory, monkeypatch):
    from cryptotokens import services as tokens
    from keybindings.models import InternalKeyBinding
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke

    def leaf(name, profile="ENDUSER", key=None):
        return issue(IssuanceRequest(ca=ocsp_ca, actor=actor, profile=CertificateProfile.objects.get(name=profile),
                                     public_key=key or ec.generate_private_key(ec.SECP256R1()).public_key(),
                                     subject_dn=f"CN={name},O=Test,C=SE", username=name)).row

    good, revoked, held = leaf("good"), leaf("revoked"), leaf("held")
    revoke(actor, revoked, 1)
    revoke(actor, held, 6)
    token = soft_token_factory("StateToken", auto_activate=False)
    tokens.activate(actor, token, "foo123")
    tokens.generate_key_pair(actor, token, "ocspKey", "P-256")
    responder = leaf("responder", "OCSPSIGNER", tokens.get_private_key(token, "ocspKey").public_key())
    now = timezone.now()
    serials = [good.serial, revoked.serial, held.serial, "abcdef"]
    cases = []
    cases.append(("no binding", _both(monkeypatch, ocsp_ca.pk, serials, now)))
    binding = InternalKeyBinding.objects.create(name="state", binding_type="OcspKeyBinding", crypto_token=token,
                                                key_pair_alias="ocspKey", certificate=responder)
    cases.append(("binding", _both(monkeypatch, ocsp_ca.pk, serials, now)))
    cases.append(("one serial", _both(monkeypatch, ocsp_ca.pk, [revoked.serial], now)))
    cases.append(("binding expired then", _both(monkeypatch, ocsp_ca.pk, serials, responder.not_after)))
    tokens.deactivate(actor, token)
    cases.append(("token off", _both(monkeypatch, ocsp_ca.pk, serials, now)))
    binding.status = InternalKeyBinding.Status.DISABLED
    binding.save()
    cases.append(("binding disabled", _both(monkeypatch, ocsp_ca.pk, serials, now)))
    cases.append(("no such CA", _both(monkeypatch, ocsp_ca.pk + 1000, serials, now)))
    for name, (statement, orm) in cases:
        assert statement == orm, name
    states = dict(cases)
    assert states["binding"][0][8] == responder.pk and states["no binding"][0][8] is None
    assert states["binding expired then"][0][8] is None and states["binding disabled"][0][8] is None
    assert states["binding"][0][10] is True and states["token off"][0][10] is False
    assert {row[0]: row[1] for row in states["binding"][0][-1]} == {
        good.serial: "ACTIVE", revoked.serial: "REVOKED", held.serial: "ON_HOLD"}
    assert states["no such CA"] == (None, None)


# --- the answer's read is the connection's health check ----------------------------------------------------


def _request_for(ocsp_ca, actor) -> bytes:
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    row = issue(IssuanceRequest(ca=ocsp_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                                subject_dn="CN=kept,O=Test,C=SE", username="kept")).row
    return x509_ocsp.OCSPRequestBuilder().add_certificate(row.certificate, ocsp_ca.certificate, hashes.SHA1()) \
        .build().public_bytes(Encoding.DER)


def _new_request() -> None:
    """What Django does when a request starts: kept connections are to be health-checked again."""
    from django.core.signals import request_started

    request_started.send(sender=None)
    assert connection.connection is not None and not connection.health_check_done


@pytest.mark.django_db(transaction=True)
def test_no_select_1_round_trip_before_an_answer(ocsp_ca, actor, monkeypatch):
    data = _request_for(ocsp_ca, actor)
    services.respond(data)
    checks = []
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or True)
    sent = []
    _new_request()
    # The answer's statement runs on the driver's cursor (no Django execute wrapper sees it): record that one.
    monkeypatch.setattr(services, "execute", lambda cur, *a: execute(_Recording(cur, sent), *a))
    with connection.execute_wrapper(lambda run, sql, *a: sent.append(sql) or run(sql, *a)):
        answer = x509_ocsp.load_der_ocsp_response(services.respond(data).der)
    assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    assert checks == [] and len(sent) == 1 and sent[0].startswith("EXECUTE pki_ocsp_answer_state_")


class _Recording:
    """A cursor that notes each statement it sends."""

    def __init__(self, cur, sent: list) -> None:
        self.cur, self.sent = cur, sent

    def execute(self, sql, *args):
        self.sent.append(sql)
        return self.cur.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.cur, name)


@pytest.mark.django_db(transaction=True)
def test_a_kept_session_that_is_gone_is_answered_on_a_new_one(ocsp_ca, actor):
    import psycopg2

    data = _request_for(ocsp_ca, actor)
    services.respond(data)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    params = connection.get_connection_params()
    admin = psycopg2.connect(**{k: v for k, v in params.items() if k in ("host", "port", "user", "password",
                                                                           "dbname", "database")})
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", [pid])
    admin.close()
    _new_request()
    answer = x509_ocsp.load_der_ocsp_response(services.respond(data).der)
    assert answer.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] != pid
