"""The TLS client context of an authentication binding against a real TLS server on 127.0.0.1 (ssl in a thread):
trusted entries (any local CA, a CA, a CA + serial), the client certificate presented, and each protocol/cipher
mapping onto Python's ssl."""

from __future__ import annotations

import socket
import ssl
import threading
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives import serialization

from keybindings import services, tls
from pki.errors import ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.models import CertificateProfile
from tests.conftest import pem


def _server_credentials(ca, actor, csr_factory, tmp_path, name: str):
    csr, key = csr_factory(f"CN={name},O=Test", key_spec="P-256")
    row = issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"), csr=csr,
                                subject_alt_name="IPADDRESS=127.0.0.1", username=name)).row
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(pem(row.certificate))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return row, cert_path, key_path


@contextmanager
def tls_server(cert_path, key_path, client_ca, *, max_version=None):
    """A TLS server on 127.0.0.1 that requires a client certificate from ``client_ca`` and records what it saw."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=pem(client_ca.certificate).decode())
    if max_version:
        ctx.maximum_version = max_version
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)  # accept() wakes to see `stop`: closing the socket does not interrupt it
    seen: list = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    seen.append(tls_conn.getpeercert())
                    tls_conn.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass  # the client refused us: that is what some tests want

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=15)


def connect(ctx: ssl.SSLContext, port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            return conn.recv(5)


@pytest.fixture
def world(actor, root_ca, ca_factory, binding_factory, csr_factory, tmp_path):
    other = ca_factory("OtherCA")
    binding = binding_factory("client")
    services.issue_certificate(actor, binding, ca=root_ca, profile=CertificateProfile.objects.get(name="ENDUSER"),
                               subject_dn="CN=client,O=Test")
    services.set_status(actor, binding, "ACTIVE")
    ours = _server_credentials(root_ca, actor, csr_factory, tmp_path, "ours")
    theirs = _server_credentials(other, actor, csr_factory, tmp_path, "theirs")
    return {"binding": binding, "root": root_ca, "other": other, "ours": ours, "theirs": theirs}


def _trust(world, entries):
    names = {"root": world["root"].name, "other": world["other"].name}
    out = []
    for ca, serial in entries:
        serial = {"ours": world["ours"][0].serial, "theirs": world["theirs"][0].serial}.get(serial, serial)
        out.append({"ca": names[ca], "serial": serial})
    return out


# (trusted entries, which server, accepted?)
TRUST_CASES = [
    ([], "ours", True),                         # any CA known here
    ([], "theirs", True),                       # OtherCA is known here too
    ([("root", "")], "ours", True),             # that CA
    ([("root", "")], "theirs", False),          # a certificate from another CA
    ([("other", "")], "ours", False),
    ([("root", "ours")], "ours", True),         # the pinned certificate
    ([("root", "1234abcd")], "ours", False),    # the CA's, but not the pinned one
    ([("root", "1234abcd"), ("other", "")], "ours", False),
    ([("root", "1234abcd"), ("other", "")], "theirs", True),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("entries", "server", "accepted"), TRUST_CASES)
def test_trusted_server_certificates(actor, world, entries, server, accepted):
    binding = world["binding"]
    services.edit_binding(actor, binding, trusted_certificates=_trust(world, entries))
    _, cert_path, key_path = world[server]
    with tls_server(cert_path, key_path, world["root"]) as (port, seen):
        ctx = services.ssl_context_for(binding)
        if accepted:
            assert connect(ctx, port) == b"hello"
            # The server saw our client certificate (it requires one from TestRoot).
            assert dict(x[0] for x in seen[0]["subject"])["commonName"] == "client"
        else:
            with pytest.raises(ssl.SSLError):
                connect(ctx, port)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("suites", "max_version", "expected"), [
    (["TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], None, ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2")),
    (["TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"], None, ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2")),
    (["TLSv1.3;TLS_AES_256_GCM_SHA384"], None, ("TLS_AES_256_GCM_SHA384", "TLSv1.3")),
    # The server only speaks TLS 1.2: a TLS 1.3-only binding cannot connect.
    (["TLSv1.3;TLS_AES_256_GCM_SHA384"], ssl.TLSVersion.TLSv1_2, None),
    # TLS 1.3 suites cannot be restricted in the offer; the negotiated one (AES-256) is refused after the handshake.
    (["TLSv1.3;TLS_AES_128_GCM_SHA256"], None, None),
])
def test_protocol_and_cipher_on_the_wire(actor, world, suites, max_version, expected):
    binding = world["binding"]
    services.edit_binding(actor, binding, protocol_and_cipher_suites=suites)
    _, cert_path, key_path = world["ours"]
    with tls_server(cert_path, key_path, world["root"], max_version=max_version) as (port, _):
        ctx = services.ssl_context_for(binding)
        if expected is None:
            with pytest.raises(ssl.SSLError):
                connect(ctx, port)
            return
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                assert conn.cipher()[:2] == expected
                assert conn.recv(5) == b"hello"


# Each entry and what Python's ssl makes of it: (entry, OpenSSL name or the refusal's words).
MAPPING = [
    ("TLSv1.3;TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    ("TLSv1.3;TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    ("TLSv1.3;TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
    ("TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLSv1.2;TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("TLSv1.2;TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "DHE-RSA-AES128-GCM-SHA256"),
    ("TLSv1.2;TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
    ("TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
    ("TLSv1.2;TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
    ("TLSv1.3;TLS_AES_128_CCM_SHA256", "no set_ciphersuites"),
    ("TLSv1.1;TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS 1.1 or older"),
    ("TLSv1;TLS_RSA_WITH_AES_128_CBC_SHA", "TLS 1.1 or older"),
    ("TLSv1.2;TLS_RSA_WITH_3DES_EDE_CBC_SHA", "not one OpenSSL offers"),
    ("TLSv1.2;TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "not available"),
    ("TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_CCM", "cannot select"),
    ("TLSv1.2;ECDHE-RSA-AES128-GCM-SHA256", "not an IANA"),
    ("TLSv1.4;TLS_AES_256_GCM_SHA384", "unknown protocol"),
    ("TLS_AES_256_GCM_SHA384", "not of the form"),
]


@pytest.mark.parametrize(("entry", "expected"), MAPPING)
def test_each_entry_maps_onto_python_ssl_or_is_refused_with_the_reason(entry, expected):
    if expected.startswith(("TLS_", "ECDHE", "DHE", "AES")):
        suite = tls.parse_entry(entry)
        assert suite.openssl_name == expected
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.apply_suites(ctx, [suite])
        assert ctx.minimum_version == ctx.maximum_version == suite.version
        offered = {c["name"] for c in ctx.get_ciphers()}
        assert expected in offered
        if suite.protocol == "TLSv1.2":  # set_ciphers left exactly this TLS 1.2 suite
            assert {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"} == {expected}
        return
    with pytest.raises(tls.CipherSuiteError, match=expected):
        tls.parse_entry(entry)


def test_setting_decides_what_a_binding_may_choose(settings):
    settings.PKI_TLS_CIPHER_SUITES = "TLSv1.3;TLS_AES_256_GCM_SHA384, TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert tls.allowed_entries() == ["TLSv1.3;TLS_AES_256_GCM_SHA384", "TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    with pytest.raises(ValidationError, match="not allowed by PKI_TLS_CIPHER_SUITES"):
        tls.validate_entries(["TLSv1.3;TLS_AES_128_GCM_SHA256"])
    settings.PKI_TLS_CIPHER_SUITES = ["TLSv1.1;TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]
    with pytest.raises(tls.CipherSuiteError, match="TLS 1.1"):
        tls.allowed_entries()


def test_default_setting_is_tls13_and_tls12_ecdhe_aes_gcm():
    entries = tls.allowed_entries()
    assert {e for e in entries if e.startswith("TLSv1.3")} == {f"TLSv1.3;{s}" for s in tls.TLS13_SUITES}
    assert all("ECDHE" in e and "GCM" in e for e in entries if e.startswith("TLSv1.2"))


@pytest.mark.django_db(transaction=True)
def test_no_context_for_a_disabled_an_ocsp_or_an_hsm_binding(actor, world, binding_factory, soft_token_factory):
    from cryptotokens.models import CryptoToken

    binding = world["binding"]
    services.set_status(actor, binding, "DISABLED")
    with pytest.raises(ValidationError, match="disabled"):
        services.ssl_context_for(binding)
    services.set_status(actor, binding, "ACTIVE")
    CryptoToken.objects.filter(pk=binding.crypto_token_id).update(token_type="PKCS11CryptoToken")
    with pytest.raises(ValidationError, match="never leaves its device"):
        services.ssl_context_for(binding)
    CryptoToken.objects.filter(pk=binding.crypto_token_id).update(token_type="SoftCryptoToken")
    ocsp = binding_factory("resp", binding_type="OcspKeyBinding")
    with pytest.raises(ValidationError, match="not an authentication key binding"):
        services.ssl_context_for(ocsp)
