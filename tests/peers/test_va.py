"""A CA node and a VA node as real processes on loopback, each with its own PostgreSQL database, mTLS between them
(the CA's connector with its key binding; the VA's listener verifying and forwarding the client certificate). The
connector resynchronises the VA on connect and then pushes status changes as they happen; the VA answers OCSP
with its OWN OCSP key binding (its key, a certificate the CA issued for it) and serves the CA's CRLs. ``openssl
ocsp`` asks the VA before and after a revocation at the CA, and the time until the VA's answer says revoked is
printed."""

from __future__ import annotations

import shutil
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from .live import PeerNodes, ids, openssl_ocsp

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("peers-va")]

HOLD = """
from pki.auth.access import Actor
from pki.choices import RevocationReason
from pki.models import Certificate
from pki.revocation import revoke, unrevoke

a = Actor.system_actor("setup")
cert = Certificate.objects.get(serial=%(serial)r)
if %(hold)r:
    revoke(a, cert, RevocationReason.CERTIFICATE_HOLD)
else:
    unrevoke(a, cert)
"""


ISSUE_LATE = """
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pki.auth.access import Actor
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateAuthority, CertificateProfile
from pki.x509.dn import parse_dn

key = ec.generate_private_key(ec.SECP256R1())
csr = x509.CertificateSigningRequestBuilder().subject_name(parse_dn("CN=late,O=Test")).sign(key, hashes.SHA256())
row = issue(IssuanceRequest(ca=CertificateAuthority.objects.get(name="ScepCA"), actor=Actor.system_actor("setup"),
                            profile=CertificateProfile.objects.get(name="ENDUSER"), csr=csr, username="late")).row
Path(%(out)r, "late.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    assert shutil.which("openssl"), "openssl is missing"
    with PeerNodes(tmp_path_factory.mktemp("peers-va"), ra=False, va=True) as p:
        p.start_connector()
        yield p


def _ocsp_status(pair: PeerNodes, cert_file: str) -> ocsp.OCSPCertStatus:
    """The VA's answer for a certificate (Python: the polling loop; openssl checks the answers below)."""
    cert = x509.load_pem_x509_certificate((pair.out / cert_file).read_bytes())
    issuer = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    request = urllib.request.Request(pair.va_base + "/ocsp", data=der,
                                     headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = ocsp.load_der_ocsp_response(reply.read())
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, answer.response_status
    return answer.certificate_status


def test_the_va_answers_ocsp_with_its_own_binding_from_the_resynchronisation(pair):
    serial = ids(pair)["subscriber"]
    pair.until(lambda: pair.va.query("SELECT 1 FROM pki_certificate WHERE serial = %s", (serial,)))
    assert ": good" in openssl_ocsp(pair, pair.out / "subscriber.pem")
    # Signed by the VA's own OCSP key: the responder certificate in the answer is the VA binding's.
    cert = x509.load_pem_x509_certificate((pair.out / "subscriber.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build().public_bytes(
        serialization.Encoding.DER)
    with urllib.request.urlopen(urllib.request.Request(pair.va_base + "/ocsp", data=der, headers={
            "Content-Type": "application/ocsp-request"}), timeout=10) as reply:
        answer = ocsp.load_der_ocsp_response(reply.read())
    signer = x509.load_pem_x509_certificate((pair.out / "va-ocsp.pem").read_bytes())
    assert answer.certificates == [signer]
    # The VA holds the CA's certificate and no CA key: its only key is its OCSP binding's.
    assert pair.va.query("SELECT status FROM pki_certificateauthority") == [("EXTERNAL",)]
    assert pair.va.query("SELECT count(*) FROM cryptotokens_cryptotoken") == [(1,)]
    state = pair.ca.query("SELECT state, remote_role FROM peers_peerconnector WHERE name = 'va'")
    assert state == [("connected", "va")]


def test_the_va_serves_the_cas_crl(pair):
    pair.until(lambda: pair.va.query("SELECT 1 FROM peers_pushedcrl"))
    with urllib.request.urlopen(pair.va_base + "/crl/ScepCA.crl", timeout=10) as reply:
        crl = x509.load_der_x509_crl(reply.read())
    issuer = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
    assert crl.is_signature_valid(issuer.public_key())
    (ca_crl,) = pair.ca.query("SELECT der FROM pki_crl WHERE is_delta = false ORDER BY crl_number DESC LIMIT 1")
    assert bytes(ca_crl[0]) == crl.public_bytes(serialization.Encoding.DER)


def test_a_revocation_at_the_ca_is_in_the_vas_answer_within_seconds(pair):
    # Known and good at the VA first (this test may run before the one that waits for the resynchronisation).
    pair.until(lambda: _ocsp_status(pair, "subscriber.pem") == ocsp.OCSPCertStatus.GOOD, timeout=30)
    serial = ids(pair)["subscriber"]
    out = pair.ca.manage("ca", "revokecert", "--caname", "ScepCA", "--serial", serial, "--reason", "keyCompromise")
    committed = time.monotonic()  # the revocation is committed when the command has returned
    pair.until(lambda: _ocsp_status(pair, "subscriber.pem") == ocsp.OCSPCertStatus.REVOKED, timeout=30)
    seconds = time.monotonic() - committed
    print(f"VA OCSP says revoked {seconds * 1000:.0f} ms after the CA's revocation returned ({out.stdout.strip()})")
    assert seconds < 5
    text = openssl_ocsp(pair, pair.out / "subscriber.pem")
    assert ": revoked" in text and "Reason: keyCompromise" in text


def test_a_new_certificate_then_its_hold_and_reactivation_reach_the_va(pair):
    # Issued after the connect: pushed as it is issued (the VA would answer unknown otherwise).
    pair.ca.manage("shell", "-c", ISSUE_LATE % {"out": str(pair.out)})
    pair.until(lambda: _ocsp_status(pair, "late.pem") == ocsp.OCSPCertStatus.GOOD, timeout=30)
    serial = format(x509.load_pem_x509_certificate((pair.out / "late.pem").read_bytes()).serial_number, "x")
    pair.ca.manage("shell", "-c", HOLD % {"serial": serial, "hold": True})
    pair.until(lambda: _ocsp_status(pair, "late.pem") == ocsp.OCSPCertStatus.REVOKED, timeout=30)
    assert "certificateHold" in openssl_ocsp(pair, pair.out / "late.pem")
    pair.ca.manage("shell", "-c", HOLD % {"serial": serial, "hold": False})
    pair.until(lambda: _ocsp_status(pair, "late.pem") == ocsp.OCSPCertStatus.GOOD, timeout=30)
    assert ": good" in openssl_ocsp(pair, pair.out / "late.pem")
