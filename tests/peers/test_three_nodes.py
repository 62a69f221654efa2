"""A CA, an RA and a VA as real processes on loopback, each with its own PostgreSQL database, and the CA's one
connector process carrying the RA's work and pushing status to the VA over mTLS: micromdm's ``scepclient``
enrolls through the RA, the CA revokes that certificate, and ``openssl ocsp`` at the VA says revoked within
seconds; with the VA down, the RA still answers GetCACert and enrolls (the connector's trouble with one node is
not the other's)."""

from __future__ import annotations

import shutil
import time
import urllib.request

import pytest
from cryptography import x509

from .live import PeerNodes, openssl_ocsp, scepclient

pytestmark = [pytest.mark.multiprocess, pytest.mark.xdist_group("peers-three")]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    for tool in ("scepclient", "openssl"):
        assert shutil.which(tool), f"{tool} is missing: scripts/install-test-deps.sh installs it (Debian 'scep')"
    with PeerNodes(tmp_path_factory.mktemp("peers-three"), ra=True, va=True, request_timeout=15, lease=4) as p:
        p.start_connector()
        p.wait_connected()
        yield p


def _enroll(nodes: PeerNodes, workdir, cn: str) -> str:
    """A device enrolled through the RA (RA mode); the serial of its certificate, which the CA holds."""
    out = scepclient(workdir / cn, nodes.scep_url("ra-devices"), cn, "s3cret")
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{nodes.logs('ra')}\n{nodes.logs('connector')}"
    serial = format(x509.load_pem_x509_certificate((workdir / cn / "client.pem").read_bytes()).serial_number, "x")
    assert nodes.ca.query("SELECT username FROM pki_certificate WHERE serial = %s", (serial,)) == [(cn,)]
    return serial


def test_enrolled_through_the_ra_revoked_at_the_ca_revoked_at_the_va(nodes, tmp_path):
    serial = _enroll(nodes, tmp_path, "device3")
    cert = tmp_path / "device3" / "client.pem"
    # The connector pushed the new certificate to the VA as it was issued: the VA knows it (not "unknown").
    nodes.until(lambda: nodes.va.query("SELECT 1 FROM pki_certificate WHERE serial = %s", (serial,)), 30,
                "the VA never got the certificate")
    assert ": good" in openssl_ocsp(nodes, cert)
    nodes.ca.manage("ca", "revokecert", "--caname", "ScepCA", "--serial", serial, "--reason", "keyCompromise")
    revoked_at_ca = time.monotonic()  # committed: the command has returned

    def revoked() -> str | None:
        text = openssl_ocsp(nodes, cert)
        return text if ": revoked" in text else None

    text = nodes.until(revoked, 30, "the VA never said revoked")
    seconds = time.monotonic() - revoked_at_ca
    print(f"three nodes: openssl ocsp at the VA says revoked {seconds * 1000:.0f} ms after the CA's revocation")
    assert seconds < 5 and "Reason: keyCompromise" in text
    # The same connector process pushed the revocation to the RA too, and holds no certificate or key there.
    nodes.until(lambda: nodes.ra.query("SELECT status FROM peers_pushedrevocation WHERE serial = %s", (serial,)), 30,
                "the RA never got the revocation")
    assert nodes.ra.query("SELECT count(*) FROM pki_certificate") == [(0,)]
    assert nodes.va.query("SELECT count(*) FROM cryptotokens_cryptotoken") == [(1,)]  # its OCSP binding's only


def test_the_ra_answers_and_enrolls_while_the_va_is_down(nodes, tmp_path):
    # Last: the VA stays down.
    nodes.va_web.close()
    with urllib.request.urlopen(nodes.scep_url("ra-devices") + "?operation=GetCACert", timeout=30) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/x-x509-ca-cert"
        assert x509.load_der_x509_certificate(r.read()) == x509.load_pem_x509_certificate(
            (nodes.out / "ca.pem").read_bytes())
    _enroll(nodes, tmp_path, "device4")
    # The push of that new certificate found the VA gone: that connector is failing, the RA's is not.
    nodes.until(lambda: nodes.ca.query("SELECT 1 FROM peers_peerconnector WHERE name = 'va' AND state <> 'connected'"),
                30, "the VA's connector never noticed")
    assert nodes.ca.query("SELECT state FROM peers_peerconnector WHERE name = 'dmz-ra'") == [("connected",)]
