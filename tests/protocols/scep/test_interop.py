"""Interoperability: micromdm's ``scepclient`` (the Debian ``scep`` package) against a real gunicorn, and
our replies decoded by ``openssl cms`` from requests built from first principles (``cryptography`` and
asn1crypto, the message layer's client builder). Every certificate that comes back passes ``openssl verify``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from endentities.models import EndEntity
from protocols.scep.messages import client as scep_client

from .live import RA_SECRET, LiveScepServer
from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, openssl_verify, self_signed

CA_USERS = ("router1", "router2", "router3", "router4")


# --- micromdm scepclient against gunicorn -------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory):
    for tool in ("scepclient", "openssl"):
        assert shutil.which(tool), f"{tool} is missing: scripts/install-test-deps.sh installs it (Debian 'scep')"
    # With the CA certificate in every reply (EJBCA's default): the issued certificate must come first.
    with LiveScepServer(tmp_path_factory.mktemp("scep-live"), users=CA_USERS, include_ca=True) as server:
        yield server


@pytest.fixture(scope="module")
def live_ca(live, tmp_path_factory) -> Path:
    import urllib.request

    der = urllib.request.urlopen(live.url() + "?operation=GetCACert", timeout=30).read()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return path


def scepclient(workdir: Path, url: str, cn: str, challenge: str) -> subprocess.CompletedProcess:
    """One enrollment, in a directory of its own (scepclient caches its CSR next to the key)."""
    workdir.mkdir(parents=True)
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", "key.pem", "2048"], cwd=workdir, check=True,
                   capture_output=True)
    return subprocess.run(["scepclient", "-server-url", url, "-private-key", "key.pem", "-challenge", challenge,
                           "-cn", cn, "-organization", "Test", "-country", "SE"],
                          cwd=workdir, capture_output=True, text=True, timeout=120)


@pytest.mark.multiprocess
@pytest.mark.xdist_group("scep-live")  # one live server per run
@pytest.mark.parametrize("where, alias, short, cn, challenge", [
    ("ca-default-url", None, False, "router1", "foo123"),      # CA mode, .../apply/scep/pkiclient.exe
    ("ca-named-alias", "scep", False, "router2", "foo123"),    # CA mode, .../apply/scep/scep/pkiclient.exe
    ("ca-short-url", "scep", True, "router3", "foo123"),       # CA mode, /scep/scep/pkiclient.exe
    ("ra-named-alias", "ra-devices", False, "device1", RA_SECRET),
    ("ra-short-url", "ra-devices", True, "device2", RA_SECRET),
])
def test_scepclient_enrolls(live, live_ca, tmp_path, where, alias, short, cn, challenge):
    out = scepclient(tmp_path / where, live.url(alias, short), cn, challenge)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{live.logs()}"
    cert_path = tmp_path / where / "client.pem"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == cn
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(live_ca), str(cert_path)], capture_output=True,
                            text=True)
    assert verify.stdout.strip().endswith("OK"), verify.stdout + verify.stderr
    # Stored and audited by the server, and the end entity used up (GENERATED = 40).
    serial = format(cert.serial_number, "x")
    assert live.query("SELECT username FROM pki_certificate WHERE serial = %s", (serial,)) == [(cn,)]
    assert live.query("SELECT status FROM endentities_endentity WHERE username = %s", (cn,)) == [(40,)]
    assert live.query("SELECT count(*) FROM pki_auditevent WHERE event_type = 'CERT_CREATION' AND object_id = %s",
                      (serial,)) == [(1,)]


@pytest.mark.multiprocess
@pytest.mark.xdist_group("scep-live")
@pytest.mark.parametrize("alias, cn, challenge", [
    ("scep", "router4", "wrong"),        # CA mode: wrong enrollment code
    ("scep", "nobody", "foo123"),        # CA mode: unknown user
    ("ra-devices", "device9", "wrong"),  # RA mode: wrong shared secret
])
def test_scepclient_refused(live, tmp_path, alias, cn, challenge):
    out = scepclient(tmp_path / "refused", live.url(alias), cn, challenge)
    assert out.returncode != 0
    assert "failInfo: badRequest" in out.stdout + out.stderr
    assert not (tmp_path / "refused" / "client.pem").exists()
    assert live.query("SELECT count(*) FROM pki_certificate WHERE username = %s", (cn,)) == [(0,)]
    if cn in CA_USERS:  # refused: still NEW (10), only the failed-login counter moved
        assert live.query("SELECT status, failed_login_count FROM endentities_endentity WHERE username = %s",
                          (cn,)) == [(10, 1)]


# --- requests from first principles, replies decoded by openssl ---------------------------------------------

def _pem(*certs) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


@pytest.mark.django_db
@pytest.mark.parametrize("cipher, digest, include_ca, openssl_cipher", [
    ("des3", "sha1", True, "des-ede3-cbc"),
    ("des3", "sha256", False, "des-ede3-cbc"),
    ("aes128", "sha256", True, "aes-128-cbc"),
    ("aes256", "sha1", False, "aes-256-cbc"),
])
def test_openssl_decodes_the_certrep(scep, scep_ca, alias_factory, end_entity_factory, openssl, cipher, digest,
                                     include_ca, openssl_cipher):
    alias_factory(default_ca=scep_ca, include_ca=include_ca, allow_legacy_digest=True)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(60)
    signer = self_signed(key, "client")
    request = scep_client.build_pkcs_req(make_csr(key, "CN=router1,O=Test,C=SE"), signer, key, scep_ca.certificate,
                                         cipher=cipher, digest=digest)
    resp = scep.post(request.data)
    assert resp.status_code == 200
    openssl.write("rep.der", resp.content)
    openssl.write("ca.pem", _pem(scep_ca.certificate))
    openssl.write("self.pem", _pem(signer))
    openssl.write("key.pem", key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    # The outer SignedData verifies under the CA certificate; its content is the EnvelopedData.
    openssl("cms", "-verify", "-inform", "DER", "-in", "rep.der", "-CAfile", "ca.pem", "-binary", "-out", "env.der")
    info = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", "env.der").stdout
    assert openssl_cipher.replace("-", "").lower() in info.replace("-", "").lower() or cipher in info.lower()
    openssl("cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", "self.pem", "-inkey", "key.pem",
            "-binary", "-out", "inner.der")
    certs_pem = openssl("pkcs7", "-inform", "DER", "-in", "inner.der", "-print_certs").stdout.encode()
    certs = x509.load_pem_x509_certificates(certs_pem)
    issued = next(c for c in certs if c.public_key() == key.public_key())
    assert (scep_ca.certificate in certs) == include_ca and len(certs) == (2 if include_ca else 1)
    openssl_verify(openssl, issued, [scep_ca.certificate])
    assert EndEntity.objects.get(username="router1").status_name == "GENERATED"


@pytest.mark.django_db
def test_openssl_reads_get_ca_cert_chain_and_crl(scep, scep_ca, ca_factory, alias_factory, end_entity_factory,
                                                 openssl, actor):
    from pki.crl import create_crl

    sub = ca_factory("ScepSub", key_spec="RSA2048", signed_by=scep_ca)
    alias_factory(default_ca=sub)
    resp = scep.get("GetCACert")
    assert resp["Content-Type"] == "application/x-x509-ca-ra-cert"
    openssl.write("chain.p7b", resp.content)
    printed = openssl("pkcs7", "-inform", "DER", "-in", "chain.p7b", "-print_certs").stdout
    assert "CN=ScepSub" in printed.replace(" = ", "=") and "CN=ScepCA" in printed.replace(" = ", "=")
    end_entity_factory("router1", "foo123", ca=sub)
    key = client_key(61)
    signer = self_signed(key, "client")
    result = scep.enroll(make_csr(key, "CN=router1"), key, sub.certificate, signer_cert=signer)
    issued = next(c for c in result.certificates if c.public_key() == key.public_key())
    openssl_verify(openssl, issued, [sub.certificate, scep_ca.certificate])
    create_crl(actor, sub)
    request = scep_client.build_get_crl(sub.certificate.subject, issued.serial_number, issued, key, sub.certificate)
    rep = scep.post(request.data)
    openssl.write("crlrep.der", rep.content)
    openssl.write("sub.pem", _pem(sub.certificate, scep_ca.certificate))
    openssl.write("issued.pem", _pem(issued))
    openssl.write("key.pem", key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    openssl("cms", "-verify", "-inform", "DER", "-in", "crlrep.der", "-CAfile", "sub.pem", "-binary",
            "-out", "env.der")
    openssl("cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", "issued.pem", "-inkey", "key.pem",
            "-binary", "-out", "inner.der")
    crl_text = openssl("pkcs7", "-inform", "DER", "-in", "inner.der", "-print").stdout
    assert "crl" in crl_text.lower() and "ScepSub" in crl_text
