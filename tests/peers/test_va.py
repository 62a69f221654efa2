"""A CA node and a VA node as real processes on loopback, each with its own PostgreSQL database, mTLS between them
(the CA's connector with its key binding; the VA's listener verifying and forwarding the client certificate). The
connector resynchronises the VA on connect and then pushes status changes as they happen; the VA answers OCSP
with its OWN OCSP key binding (its key, a certificate the CA issued for it) and serves the CA's CRLs. ``openssl
ocsp`` asks the VA before and after a revocation at the CA, and the time until the VA's answer says revoked is
printed."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.protocols.scep.live import BIN, ROOT, SETUP, free_port

from .live import Node, _stop
from .tlsproxy import TlsProxy

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("peers-va")]

CA_SETUP = """
import json
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from keybindings import services as kb
from peers import services as peers
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile
from pki.x509.dn import parse_dn

out = Path(%(out)r)
kbt = tokens.create_token(a, name="PeerToken", token_type="SoftCryptoToken", auth_code="foo123", auto_activate=True)
link = kb.create_binding(a, name="va-link", binding_type="AuthenticationKeyBinding", crypto_token=kbt,
                         key_spec="P-256", trusted_certificates=[{"ca": "ScepCA", "serial": ""}])
kb.issue_certificate(a, link, ca=ca, profile=CertificateProfile.objects.get(name="ENDUSER"),
                     subject_dn="CN=ca-va-connector,O=Test")
link = kb.set_status(a, link, "ACTIVE")

def issued(name, profile, san=""):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(f"CN={name},O=Test")).sign(key, hashes.SHA256())
    row = issue(IssuanceRequest(ca=ca, actor=a, profile=CertificateProfile.objects.get(name=profile), csr=csr,
                                subject_alt_name=san, username=name)).row
    (out / f"{name}.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return row

issued("va-server", "SERVER", "IPADDRESS=127.0.0.1")
subscriber = issued("subscriber", "ENDUSER")
# The VA's OCSP signer: its key stays on the VA; the CA certifies the VA's request.
csr = x509.load_pem_x509_csr((out / "va-ocsp.csr").read_bytes())
row = issue(IssuanceRequest(ca=ca, actor=a, profile=CertificateProfile.objects.get(name="OCSPSIGNER"), csr=csr,
                            username="va-ocsp")).row
(out / "va-ocsp.pem").write_bytes(row.certificate.public_bytes(serialization.Encoding.PEM))
peers.add_connector(a, name="va", url=%(url)r, binding="va-link")
(out / "ca.pem").write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
(out / "ids.json").write_text(json.dumps({"link_serial": link.certificate.serial, "subscriber": subscriber.serial}))
"""

VA_KEY = """
from pathlib import Path
from cryptotokens import services as tokens
from keybindings import services as kb
from pki.auth.access import Actor

a = Actor.system_actor("setup")
token = tokens.create_token(a, name="VaToken", token_type="SoftCryptoToken", auth_code="foo123", auto_activate=True)
binding = kb.create_binding(a, name="va-ocsp", binding_type="OcspKeyBinding", crypto_token=token, key_spec="P-256")
Path(%(out)r, "va-ocsp.csr").write_bytes(kb.generate_csr(a, binding, subject_dn="CN=va-ocsp,O=Test"))
"""

VA_SETUP = """
import json
from pathlib import Path
from keybindings import services as kb
from pki.auth.access import Actor
from pki.choices import MemberMatch
from pki.services import roles
from pki.services.cas import import_ca

a = Actor.system_actor("setup")
out = Path(%(out)r)
ca = import_ca(a, "ScepCA", (out / "ca.pem").read_bytes())
binding = kb.get_binding(a, "va-ocsp")
kb.import_certificate(a, binding, (out / "va-ocsp.pem").read_bytes())
kb.set_status(a, binding, "ACTIVE")
role = roles.create_role(a, "CA peers")
serial = json.loads((out / "ids.json").read_text())["link_serial"]
roles.add_member(a, role, roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, serial, issuer_ca=ca))
roles.set_rules(a, role, {"/peer/incoming": True})
"""

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


class VaPair:
    """The CA node (no web server: it only connects out) and the VA node (gunicorn + mTLS listener)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        tag = secrets.token_hex(3)
        self.ca = Node(tmp, "ca", f"h6_ca_{tag}")
        self.va = Node(tmp, "va", f"h6_va_{tag}", PKI_BEHIND_TLS_PROXY="1", PKI_TRUSTED_PROXIES="127.0.0.1")
        self.out = tmp / "shared"
        self.out.mkdir(exist_ok=True)
        self.gunicorn = self.connector = self.proxy = None

    def start(self) -> VaPair:
        self.ca.create()
        self.va.create()
        listener_port = free_port()
        self.va.manage("shell", "-c", VA_KEY % {"out": str(self.out)})
        self.ca.manage("shell", "-c", SETUP % {"secret": "s3cret", "users": [], "include_ca": False}
                       + CA_SETUP % {"out": str(self.out), "url": f"https://127.0.0.1:{listener_port}"})
        self.va.manage("shell", "-c", VA_SETUP % {"out": str(self.out)})
        port = free_port()
        self.gunicorn = subprocess.Popen(
            [str(BIN / "gunicorn"), "pki.wsgi", "-c", "python:pki.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4"],
            cwd=ROOT, env=self.va.env, stdout=(self.tmp / "va.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.base = f"http://127.0.0.1:{port}"
        self.proxy = TlsProxy(self.out / "va-server.pem", self.out / "va-server.key", self.out / "ca.pem", port,
                              port_hint=listener_port)
        deadline = time.monotonic() + 60
        while True:
            assert self.gunicorn.poll() is None, self.logs("va")
            try:
                urllib.request.urlopen(self.base + "/login/", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, self.logs("va")
                time.sleep(0.3)
        self.connector = subprocess.Popen([sys.executable, "manage.py", "peer", "run"], cwd=ROOT, env=self.ca.env,
                                          stdout=(self.tmp / "connector.log").open("w"), stderr=subprocess.STDOUT,
                                          start_new_session=True)
        return self

    def logs(self, which: str) -> str:
        path = self.tmp / f"{which}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def close(self) -> None:
        _stop(self.connector)
        _stop(self.gunicorn, signal.SIGINT)
        if self.proxy is not None:
            self.proxy.close()
        self.ca.drop()
        self.va.drop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    assert shutil.which("openssl"), "openssl is missing"
    p = VaPair(tmp_path_factory.mktemp("peers-va"))
    try:
        p.start()
        yield p
    finally:
        p.close()


def _ids(pair: VaPair) -> dict:
    return json.loads((pair.out / "ids.json").read_text())


def _wait(pair: VaPair, what, timeout: float = 60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = what()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out\n{pair.logs('connector')}\n{pair.logs('va')}")


def _ocsp_status(pair: VaPair, cert_file: str) -> ocsp.OCSPCertStatus:
    """The VA's answer for a certificate (Python: the polling loop; openssl checks the answers below)."""
    cert = x509.load_pem_x509_certificate((pair.out / cert_file).read_bytes())
    issuer = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    request = urllib.request.Request(pair.base + "/ocsp", data=der,
                                     headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = ocsp.load_der_ocsp_response(reply.read())
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, answer.response_status
    return answer.certificate_status


def openssl_ocsp(pair: VaPair, cert_file: str) -> str:
    out = subprocess.run(["openssl", "ocsp", "-issuer", str(pair.out / "ca.pem"), "-cert", str(pair.out / cert_file),
                          "-url", pair.base + "/ocsp", "-CAfile", str(pair.out / "ca.pem"), "-no_nonce"],
                         capture_output=True, text=True, timeout=30)
    assert "Response verify OK" in out.stderr + out.stdout, out.stdout + out.stderr
    return out.stdout


def test_the_va_answers_ocsp_with_its_own_binding_from_the_resynchronisation(pair):
    serial = _ids(pair)["subscriber"]
    _wait(pair, lambda: pair.va.query("SELECT 1 FROM pki_certificate WHERE serial = %s", (serial,)))
    assert ": good" in openssl_ocsp(pair, "subscriber.pem")
    # Signed by the VA's own OCSP key: the responder certificate in the answer is the VA binding's.
    cert = x509.load_pem_x509_certificate((pair.out / "subscriber.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build().public_bytes(
        serialization.Encoding.DER)
    with urllib.request.urlopen(urllib.request.Request(pair.base + "/ocsp", data=der, headers={
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
    _wait(pair, lambda: pair.va.query("SELECT 1 FROM peers_pushedcrl"))
    with urllib.request.urlopen(pair.base + "/crl/ScepCA.crl", timeout=10) as reply:
        crl = x509.load_der_x509_crl(reply.read())
    issuer = x509.load_pem_x509_certificate((pair.out / "ca.pem").read_bytes())
    assert crl.is_signature_valid(issuer.public_key())
    (ca_crl,) = pair.ca.query("SELECT der FROM pki_crl WHERE is_delta = false ORDER BY crl_number DESC LIMIT 1")
    assert bytes(ca_crl[0]) == crl.public_bytes(serialization.Encoding.DER)


def test_a_revocation_at_the_ca_is_in_the_vas_answer_within_seconds(pair):
    assert _ocsp_status(pair, "subscriber.pem") == ocsp.OCSPCertStatus.GOOD
    serial = _ids(pair)["subscriber"]
    out = pair.ca.manage("ca", "revokecert", "--caname", "ScepCA", "--serial", serial, "--reason", "keyCompromise")
    committed = time.monotonic()  # the revocation is committed when the command has returned
    _wait(pair, lambda: _ocsp_status(pair, "subscriber.pem") == ocsp.OCSPCertStatus.REVOKED, timeout=30)
    seconds = time.monotonic() - committed
    print(f"VA OCSP says revoked {seconds * 1000:.0f} ms after the CA's revocation returned ({out.stdout.strip()})")
    assert seconds < 5
    text = openssl_ocsp(pair, "subscriber.pem")
    assert ": revoked" in text and "Reason: keyCompromise" in text


def test_a_new_certificate_then_its_hold_and_reactivation_reach_the_va(pair):
    # Issued after the connect: pushed as it is issued (the VA would answer unknown otherwise).
    pair.ca.manage("shell", "-c", ISSUE_LATE % {"out": str(pair.out)})
    _wait(pair, lambda: _ocsp_status(pair, "late.pem") == ocsp.OCSPCertStatus.GOOD, timeout=30)
    serial = format(x509.load_pem_x509_certificate((pair.out / "late.pem").read_bytes()).serial_number, "x")
    pair.ca.manage("shell", "-c", HOLD % {"serial": serial, "hold": True})
    _wait(pair, lambda: _ocsp_status(pair, "late.pem") == ocsp.OCSPCertStatus.REVOKED, timeout=30)
    assert "certificateHold" in openssl_ocsp(pair, "late.pem")
    pair.ca.manage("shell", "-c", HOLD % {"serial": serial, "hold": False})
    _wait(pair, lambda: _ocsp_status(pair, "late.pem") == ocsp.OCSPCertStatus.GOOD, timeout=30)
    assert ": good" in openssl_ocsp(pair, "late.pem")
