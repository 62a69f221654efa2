"""Prometheus metrics: counts from the audit log (issuances by CA/profile/interface, refusals, crypto token
operations), gauges from the tables (CA health, token state, CRL age), OCSP answers counted from the responder's
bytes; and the same values whichever gunicorn worker answers the scrape."""

from __future__ import annotations

import os
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as x509_ocsp
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from cryptotokens import services as tokens
from cryptotokens.errors import CryptoTokenError
from pki.errors import ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.metrics import ocsp_response_status
from pki.models import CertificateProfile

pytestmark = pytest.mark.django_db


def scrape(client: Client | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    body = (client or Client()).get("/metrics").content.decode()
    return _samples(body)


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _issue(ca, actor, csr_factory, cn: str, profile: str = "SERVER"):
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name=profile),
                                 csr=csr_factory(f"CN={cn}")[0]))


def test_issuances_by_ca_profile_and_interface(root_ca, actor, csr_factory, builtin_profiles):
    from endentities.services import add_end_entity, enroll, ensure_empty_profile
    from endentities.validation import EndEntityInput

    before = scrape()
    # The CA's own certificate was issued when it was created.
    assert value(before, "pki_certificates_issued_total", ca="TestRoot", profile="ROOTCA", interface="direct") == 1
    _issue(root_ca, actor, csr_factory, "a.example")
    _issue(root_ca, actor, csr_factory, "b.example")
    ensure_empty_profile()
    add_end_entity(actor, EndEntityInput(username="user1", password="foo123", subject_dn="CN=user1", ca=root_ca,
                                         certificate_profile="ENDUSER"))
    enroll("user1", "foo123", csr=csr_factory("CN=user1")[0], interface="rest")
    with pytest.raises(ValidationError):
        issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                              csr=csr_factory("CN=bad")[0], subject_alt_name="NOSUCHTYPE=x"))
    after = scrape()
    assert value(after, "pki_certificates_issued_total", ca="TestRoot", profile="SERVER", interface="direct") == 2
    assert value(after, "pki_certificates_issued_total", ca="TestRoot", profile="ENDUSER", interface="rest") == 1
    assert value(after, "pki_issuance_refusals_total", ca="TestRoot", interface="direct") == 1
    # Counted once: a later scrape adds only what was appended since.
    _issue(root_ca, actor, csr_factory, "c.example")
    assert value(scrape(), "pki_certificates_issued_total", ca="TestRoot", profile="SERVER", interface="direct") == 3


def test_a_replaced_audit_log_is_counted_again(root_ca, actor, csr_factory):
    from pki.models import AuditChainHead, AuditEvent

    _issue(root_ca, actor, csr_factory, "a.example")
    assert value(scrape(), "pki_certificates_issued_total", ca="TestRoot", profile="SERVER", interface="direct") == 1
    # As after a restore from an older backup: the events counted are gone, the chain is shorter.
    last = AuditChainHead.objects.get().last_sequence
    AuditEvent.objects.filter(sequence__gt=1).delete()
    AuditChainHead.objects.update(last_sequence=1, last_mac=AuditEvent.objects.get(sequence=1).mac)
    assert last > 1
    assert value(scrape(), "pki_certificates_issued_total", ca="TestRoot", profile="SERVER", interface="direct") == 0


def test_crypto_token_operations_and_failures(soft_token_factory, actor):
    token = soft_token_factory("Manual", auto_activate=False)
    with pytest.raises(CryptoTokenError):
        tokens.activate(actor, token, "wrong")
    tokens.activate(actor, token, "foo123")
    tokens.generate_key_pair(actor, token, "k1", "P-256")
    samples = scrape()
    assert value(samples, "pki_crypto_token_operations_total", operation="activation", outcome="failure") == 1
    assert value(samples, "pki_crypto_token_operations_total", operation="activation", outcome="success") == 1
    assert value(samples, "pki_crypto_token_operations_total", operation="gen_keypair", outcome="success") == 1


def test_ca_health_and_crl_gauges(ca_factory, soft_token_factory, actor):
    token = soft_token_factory("ManualToken", auto_activate=False)
    tokens.activate(actor, token, "foo123")
    ca = ca_factory("Issuing", token=token)
    samples = scrape()
    assert value(samples, "pki_ca_healthy", ca="Issuing") == 1
    assert value(samples, "pki_ca_token_active", ca="Issuing") == 1
    assert 0 <= value(samples, "pki_crl_age_seconds", ca="Issuing") < 60
    assert value(samples, "pki_crl_next_update_seconds", ca="Issuing") > 3600
    assert value(samples, "pki_ca_certificate_expiry_seconds", ca="Issuing") > 300 * 86400
    tokens.deactivate(actor, ca.crypto_token)
    samples = scrape()
    assert value(samples, "pki_ca_healthy", ca="Issuing") == 0
    assert value(samples, "pki_ca_token_active", ca="Issuing") == 0
    assert value(samples, "pki_ca_problem", ca="Issuing", problem="token_offline") == 1
    assert "ManualToken" not in Client().get("/metrics").content.decode()


def _ocsp_request(ca, cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return (x509_ocsp.OCSPRequestBuilder().add_certificate(cert, ca.certificate, hashes.SHA1()).build()
            .public_bytes(Encoding.DER))


def test_ocsp_answers_by_response_status(ca_factory, actor, csr_factory):
    ca = ca_factory("OcspCA", key_spec="RSA2048")
    leaf = _issue(ca, actor, csr_factory, "leaf.example").certificate
    client = Client()
    before = scrape()
    for _ in range(3):
        r = client.post("/ocsp", _ocsp_request(ca, leaf), content_type="application/ocsp-request")
        assert r.status_code == 200
    client.post("/ejbca/publicweb/status/ocsp", b"\x30\x03\x02\x01\x00", content_type="application/ocsp-request")
    client.put("/ocsp")
    after = scrape()
    assert value(after, "pki_ocsp_responses_total", status="successful") - \
        value(before, "pki_ocsp_responses_total", status="successful") == 3
    assert value(after, "pki_ocsp_responses_total", status="malformedRequest") - \
        value(before, "pki_ocsp_responses_total", status="malformedRequest") == 1
    assert value(after, "pki_ocsp_responses_total", status="http_405") - \
        value(before, "pki_ocsp_responses_total", status="http_405") == 1


@pytest.mark.parametrize("body, expected", [
    (b"\x30\x03\x0a\x01\x00", "successful"),
    (b"\x30\x03\x0a\x01\x01", "malformedRequest"),
    (b"\x30\x82\x01\x00\x0a\x01\x06" + b"\x00" * 250, "unauthorized"),  # long-form length
    (b"\x30\x03\x0a\x01\x04", "unreadable"),  # 4 is not a responseStatus
    (b"", "unreadable"),
    (b"Request too large.\n", "unreadable"),
    (b"\x30\x81", "unreadable"),
])
def test_ocsp_response_status_from_the_first_bytes(body, expected):
    assert ocsp_response_status(body) == expected


# --- several processes ------------------------------------------------------------------------------------

@pytest.mark.multiprocess
def test_every_worker_answers_the_same_totals(tmp_path):
    """gunicorn with two workers: OCSP answers counted by whichever worker served them, and a certificate issued
    by another process (the CLI); every scrape, whichever worker answers it, reports the same totals."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.protocols.scep.live import LiveScepServer

    server = LiveScepServer(tmp_path, workers=2, threads=2)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    server.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    with server:
        def post(_: int) -> int:
            request = urllib.request.Request(server.base + "/ocsp", data=b"\x30\x03\x02\x01\x00",
                                             headers={"Content-Type": "application/ocsp-request"})
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status

        sent = 0
        deadline = time.monotonic() + 60
        # Until both workers have answered some (the kernel hands connections to whichever accepts first).
        while len({p.name for p in metrics_dir.glob("counter_*.db")}) < 2 or sent < 40:
            assert time.monotonic() < deadline, "one worker answered everything: the test proves nothing"
            with ThreadPoolExecutor(8) as pool:
                assert set(pool.map(post, range(40))) == {200}
            sent += 40
        csr = tmp_path / "req.csr"
        key = tmp_path / "key.pem"
        os.system(f"openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {key} "  # noqa: S605
                  f"-subj /CN=cli.example -out {csr} 2>/dev/null")
        server.manage("ca", "issuecert", "--caname", "ScepCA", "--csr", str(csr), "--certprofile", "SERVER",
                      "-o", str(tmp_path / "out.pem"))

        def totals(_: int) -> tuple[float, float]:
            with urllib.request.urlopen(server.base + "/metrics", timeout=30) as r:
                samples = _samples(r.read().decode())
            return (value(samples, "pki_ocsp_responses_total", status="malformedRequest"),
                    value(samples, "pki_certificates_issued_total", ca="ScepCA", profile="SERVER",
                          interface="direct"))

        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(totals, range(12))) == {(float(sent), 1.0)}, server.logs()


def test_make_run_starts_with_empty_counters(tmp_path):
    """scripts/serve.py empties the multiprocess directory: a previous run's files would be added up too."""
    from tests.deploy.test_serving import serve

    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "counter_4242.db").write_bytes(b"old")
    (chosen / "README").write_text("not ours")
    assert serve.fresh_metrics_dir({"PROMETHEUS_MULTIPROC_DIR": str(chosen)}) == chosen
    assert sorted(p.name for p in chosen.iterdir()) == ["README"]
    default = serve.fresh_metrics_dir({"PKI_VAR_DIR": str(tmp_path / "var")})
    assert default == tmp_path / "var" / "metrics" and default.is_dir()


def test_a_server_a_test_starts_leaves_this_processs_counters_alone(tmp_path):
    """serve.py empties its multiprocess directory at its start, as make run must. A server a test starts gets the
    environment of tests.support.environ, so it empties a directory of its own, not this test process's, whose
    counts a later scrape here still adds up. (A make-run test that passed its os.environ on once left the SCEP
    metrics test after it on the same pytest-xdist worker a delta of 0.)"""
    from pki.metrics import count_scep_response
    from tests.deploy.test_serving import serve
    from tests.support.environ import child_environ

    def counted() -> float:
        return value(scrape(), "pki_scep_responses_total", alias="probe", status="SUCCESS", fail_info="")

    count_scep_response("probe", "SUCCESS")
    before = counted()
    assert before >= 1
    served = serve.fresh_metrics_dir({**child_environ(), "PKI_VAR_DIR": str(tmp_path / "var")})
    assert served == tmp_path / "var" / "metrics"
    count_scep_response("probe", "SUCCESS")
    assert counted() == before + 1
