"""TLS for authentication key bindings: allowed protocol/cipher pairs and the client ``ssl.SSLContext``.

The allowed pairs come from ``PKI_TLS_CIPHER_SUITES`` in EJBCA's ``authkeybind.ciphersuite`` form
(``TLSv1.3;TLS_AES_256_GCM_SHA384``; a list, or one string separated by commas). Each entry is mapped onto
what Python's ``ssl`` module (OpenSSL underneath) can do:

- ``TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`` (IANA name) becomes OpenSSL's
  ``ECDHE-RSA-AES128-GCM-SHA256`` for ``SSLContext.set_ciphers``; a suite this OpenSSL cannot select is
  refused with the reason.
- TLS 1.3 suites cannot be restricted in what the client offers: Python's ``ssl`` has no
  ``set_ciphersuites`` (OpenSSL's ``SSL_CTX_set_ciphersuites`` is only reachable through an OpenSSL
  configuration file, for the whole process). So the context offers OpenSSL's default TLS 1.3 suites and
  checks the *negotiated* suite right after the handshake: a connection on a suite the binding does not list
  is closed before any data is sent. A TLS 1.3 suite OpenSSL does not enable by default (the CCM ones) is
  refused, as it could never be negotiated.
- TLS 1.1 and older are refused: OpenSSL 3 at its default security level no longer negotiates them.

:func:`ssl_context_for` builds the client context of a binding: its certificate and key (soft token keys
only: Python's ``ssl`` loads a private key from a file; a PKCS#11, Azure Key Vault or AWS KMS key never
leaves its device, and Python's ``ssl`` cannot use an OpenSSL engine/provider key), the server certificate
checked against the binding's trusted entries, and its protocol/cipher pairs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from pki.errors import ValidationError

TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256")
DEFAULT_CIPHER_SUITES = [
    *[f"TLSv1.3;{s}" for s in TLS13_SUITES],
    "TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLSv1.2;TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLSv1.2;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
]
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_OLD_VERSIONS = {"SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1"}
# IANA bulk cipher names -> OpenSSL's spelling (GCM keeps its hash, CBC with SHA-1 ends in "-SHA").
_BULK = {"AES_128_GCM": "AES128-GCM", "AES_256_GCM": "AES256-GCM", "AES_128_CBC": "AES128", "AES_256_CBC": "AES256",
         "CHACHA20_POLY1305": "CHACHA20-POLY1305", "AES_128_CCM": "AES128-CCM", "AES_256_CCM": "AES256-CCM"}


@dataclass(frozen=True)
class CipherSuite:
    """One protocol/cipher pair: EJBCA's text, the TLS version and the name OpenSSL reports for it."""

    entry: str
    protocol: str
    iana_name: str
    openssl_name: str

    @property
    def version(self) -> ssl.TLSVersion:
        return _VERSIONS[self.protocol]


class CipherSuiteError(ValidationError):
    """An entry Python's OpenSSL cannot do (or one that is not allowed here), with the reason."""


def _openssl_tls12_name(iana: str) -> str:
    """``TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`` -> ``ECDHE-RSA-AES128-GCM-SHA256``."""
    if not iana.startswith("TLS_") or "_WITH_" not in iana:
        raise CipherSuiteError(f"'{iana}' is not an IANA TLS 1.2 cipher suite name (TLS_<kx>_WITH_<cipher>_<mac>).")
    kx_auth, rest = iana[4:].split("_WITH_", 1)
    bulk = next((b for b in sorted(_BULK, key=len, reverse=True) if rest == b or rest.startswith(b + "_")), None)
    if bulk is None:
        raise CipherSuiteError(f"'{iana}': its cipher is not one OpenSSL offers for TLS 1.2 (AES-GCM, AES-CBC, "
                               "ChaCha20-Poly1305, AES-CCM).")
    mac = rest[len(bulk) + 1:]
    parts = {"ECDHE_RSA": ["ECDHE", "RSA"], "ECDHE_ECDSA": ["ECDHE", "ECDSA"], "DHE_RSA": ["DHE", "RSA"],
             "RSA": []}.get(kx_auth)
    if parts is None:
        raise CipherSuiteError(f"'{iana}': key exchange {kx_auth} is not available in Python's OpenSSL.")
    name = [*parts, _BULK[bulk]]
    if bulk == "CHACHA20_POLY1305" or bulk.endswith("_CCM"):
        pass  # OpenSSL names these without the hash
    elif mac in ("SHA", "SHA256", "SHA384"):
        name.append(mac)
    else:
        raise CipherSuiteError(f"'{iana}': MAC {mac or '(none)'} is not one OpenSSL knows.")
    return "-".join(name)


def _tls13_default_suites() -> set[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"}


def parse_entry(entry: str) -> CipherSuite:
    """Map one ``protocol;cipher`` entry onto Python's ssl, or CipherSuiteError saying why it cannot be done."""
    text = str(entry).strip()
    protocol, sep, cipher = text.partition(";")
    protocol, cipher = protocol.strip(), cipher.strip()
    if not sep or not protocol or not cipher:
        raise CipherSuiteError(f"'{text}' is not of the form 'TLSv1.3;TLS_AES_256_GCM_SHA384'.")
    if protocol in _OLD_VERSIONS:
        raise CipherSuiteError(f"'{text}': {protocol} is refused: OpenSSL 3 at its default security level no "
                               "longer negotiates TLS 1.1 or older.")
    if protocol not in _VERSIONS:
        raise CipherSuiteError(f"'{text}': unknown protocol '{protocol}' (TLSv1.2 or TLSv1.3).")
    if protocol == "TLSv1.3":
        if cipher not in _tls13_default_suites():
            raise CipherSuiteError(
                f"'{text}': OpenSSL does not enable {cipher} for TLS 1.3 by default, and Python's ssl module cannot "
                "enable TLS 1.3 suites (it has no set_ciphersuites), so it could never be negotiated.")
        return CipherSuite(text, protocol, cipher, cipher)
    name = _openssl_tls12_name(cipher)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.set_ciphers(name)
    except ssl.SSLError:
        raise CipherSuiteError(f"'{text}': this OpenSSL ({ssl.OPENSSL_VERSION}) cannot select {name} (it does not "
                               "know it, or its security level forbids it).") from None
    if not any(c["name"] == name for c in probe.get_ciphers()):
        raise CipherSuiteError(f"'{text}': this OpenSSL ({ssl.OPENSSL_VERSION}) has no cipher {name}.")
    return CipherSuite(text, protocol, cipher, name)


def _setting_entries() -> list[str]:
    value = getattr(settings, "PKI_TLS_CIPHER_SUITES", None) or DEFAULT_CIPHER_SUITES
    if isinstance(value, str):
        value = [v for v in value.replace("\n", ",").split(",") if v.strip()]
    return [str(v).strip() for v in value]


def allowed_suites() -> list[CipherSuite]:
    """The pairs ``PKI_TLS_CIPHER_SUITES`` allows; a setting entry Python cannot do is an error naming it."""
    return [parse_entry(e) for e in _setting_entries()]


def allowed_entries() -> list[str]:
    """The allowed entries as text (for choices in forms and the API)."""
    return [s.entry for s in allowed_suites()]


def validate_entries(entries: Iterable[str]) -> list[str]:
    """A binding's chosen pairs, checked: each one allowed by the setting and doable by Python's ssl."""
    allowed = {s.entry for s in allowed_suites()}
    out: list[str] = []
    for entry in entries:
        suite = parse_entry(entry)
        if suite.entry not in allowed:
            raise CipherSuiteError(f"'{suite.entry}' is not allowed by PKI_TLS_CIPHER_SUITES "
                                   f"(allowed: {', '.join(sorted(allowed))}).", field="protocol_and_cipher_suites")
        if suite.entry not in out:
            out.append(suite.entry)
    return out


def apply_suites(ctx: ssl.SSLContext, suites: list[CipherSuite]) -> None:
    """Set the context's version range and TLS 1.2 ciphers; the TLS 1.3 ones are checked after the handshake."""
    if not suites:
        raise CipherSuiteError("No protocol/cipher pair to use.")
    versions = sorted({s.version for s in suites})
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    tls12 = [s.openssl_name for s in suites if s.protocol == "TLSv1.2"]
    if tls12:
        ctx.set_ciphers(":".join(tls12))


# --- the client context of a binding -----------------------------------------------------------------


@dataclass(frozen=True)
class TrustRules:
    """What a server certificate must be: issued under one of ``ca_ids`` (chain), or exactly one of ``pins``
    ((issuer DER name, serial)). ``any_local`` is the empty list's meaning: any CA known locally."""

    ca_ids: frozenset[int]
    pins: frozenset[tuple[bytes, int]]


class _Checks:
    """Checks done on the established connection, before the caller sends anything."""

    def __init__(self, rules: TrustRules, suites: list[CipherSuite], ca_certs: dict[int, x509.Certificate],
                 parents: dict[int, int | None]):
        self.rules, self.suites, self.ca_certs, self.parents = rules, suites, ca_certs, parents

    def _under_trusted_ca(self, cert: x509.Certificate) -> bool:
        for ca_id, ca_cert in self.ca_certs.items():
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):  # not this issuer: name, key type or signature
                continue  # noqa: S112
            node: int | None = ca_id
            while node is not None:
                if node in self.rules.ca_ids:
                    return True
                node = self.parents.get(node)
        return False

    def check(self, der: bytes | None, cipher: tuple | None) -> None:
        if not der:
            raise ssl.SSLCertVerificationError("The server sent no certificate.")
        cert = x509.load_der_x509_certificate(der)
        if self.rules.pins:
            pinned = (cert.issuer.public_bytes(), cert.serial_number) in self.rules.pins
            if not pinned and not (self.rules.ca_ids and self._under_trusted_ca(cert)):
                raise ssl.SSLCertVerificationError(
                    f"Server certificate {cert.serial_number:x} is not one the key binding trusts.")
        if cipher is not None:
            name, version = cipher[0], cipher[1]
            if not any(s.protocol == version and s.openssl_name == name for s in self.suites):
                raise ssl.SSLError(f"The server negotiated {version} {name}, which the key binding does not allow.")


class _CheckedSocket(ssl.SSLSocket):
    def do_handshake(self, *args, **kwargs):
        super().do_handshake(*args, **kwargs)
        try:
            self.context.binding_checks.check(self.getpeercert(binary_form=True), self.cipher())
        except ssl.SSLError:
            self.close()
            raise


class _CheckedObject(ssl.SSLObject):
    def do_handshake(self):
        super().do_handshake()
        self.context.binding_checks.check(self.getpeercert(binary_form=True), self.cipher())


class BindingSSLContext(ssl.SSLContext):
    """A client context whose sockets check the binding's pins and negotiated cipher after the handshake."""

    sslsocket_class = _CheckedSocket
    sslobject_class = _CheckedObject
    binding_checks: _Checks


def _pem(certs: Iterable[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _load_client_credentials(ctx: ssl.SSLContext, cert: x509.Certificate, chain: list[x509.Certificate],
                             key) -> None:
    """Python's ssl reads the key from a file: write it encrypted under a one-time password into a private
    directory, load it, and remove the directory at once."""
    password = secrets.token_urlsafe(32).encode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(password))
    workdir = tempfile.mkdtemp(prefix="pki-kb-")  # mode 0700
    try:
        cert_path, key_path = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
        with open(cert_path, "w") as fh:
            fh.write(_pem([cert, *chain]))
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
            fh.write(key_pem)
        ctx.load_cert_chain(cert_path, key_path, password=password)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def build_client_context(*, suites: list[CipherSuite], anchors: list[x509.Certificate], rules: TrustRules,
                         ca_certs: dict[int, x509.Certificate], parents: dict[int, int | None],
                         client_cert: x509.Certificate | None = None, chain: list[x509.Certificate] | None = None,
                         key=None) -> BindingSSLContext:
    """The pure part of :func:`keybindings.services.ssl_context_for`: no database, values in."""
    ctx = BindingSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server certificate and host name
    apply_suites(ctx, suites)
    if not anchors:
        raise ValidationError("No trusted CA certificate to check the server with.")
    ctx.load_verify_locations(cadata=_pem(anchors))
    # A trusted sub-CA is an anchor of its own: the server's chain need not reach a root.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.binding_checks = _Checks(rules, suites, ca_certs, parents)
    if client_cert is not None and key is not None:
        _load_client_credentials(ctx, client_cert, chain or [], key)
    return ctx
