"""``init``'s credentials for the HTTPS listener of ``make run``, as EJBCA's install makes them.

ManagementCA issues
- a TLS server certificate for this host (``localhost``, ``127.0.0.1``, ``::1`` and the plain host names of
  ``ALLOWED_HOSTS``): ``var/tls/server.pem`` (with the CA chain) and ``var/tls/server.key`` (0600);
- ``var/superadmin.p12``, a client certificate (CN=SuperAdmin) and its key, protected by a random password that
  ``init`` prints once. Its certificate is a member of the *Super Administrator Role* by issuing CA + serial
  number (a member no other certificate can match).

``var/tls/client-ca.pem`` holds the certificates of this installation's active local CAs: the CAs nginx lets
present client certificates (the application then checks the certificate itself, see ``pki.auth.clientcert``).

Each file is made again when what it stands for is not in the database (a new database with an old ``var/``, or an
``init`` whose transaction rolled back after writing): the server certificate also when it is revoked or expired,
the P12 only then or when the file was deleted (a revoked superadmin certificate or a removed role member stays as
the operator left it). Private keys and the P12 never leave ``var/`` (ignored
by git) and are written 0600 (created so, then moved into place).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from django.conf import settings

from .auth.access import Actor
from .choices import CertificateStatus, MemberMatch
from .models import Certificate, CertificateAuthority, Role

MANAGEMENT_CA = "ManagementCA"
SUPERADMIN_ROLE = "Super Administrator Role"
SUPERADMIN_CN = "SuperAdmin"
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass
class CredentialPaths:
    """Where ``init`` writes the listener's credentials (under ``PKI_VAR_DIR``)."""

    var: Path

    @property
    def tls(self) -> Path:
        return self.var / "tls"

    @property
    def server_cert(self) -> Path:
        return self.tls / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.tls / "server.key"

    @property
    def client_ca(self) -> Path:
        return self.tls / "client-ca.pem"

    @property
    def superadmin_p12(self) -> Path:
        return self.var / "superadmin.p12"

    @property
    def superadmin_cert(self) -> Path:
        return self.var / "superadmin.pem"


def credential_paths() -> CredentialPaths:
    """The paths of this installation (``settings.VAR_DIR``)."""
    return CredentialPaths(Path(settings.VAR_DIR))


@dataclass
class CredentialsResult:
    """What :func:`ensure_credentials` made (the password only when the P12 was made now)."""

    created: list[str]
    superadmin_password: str | None = None


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _recorded(path: Path, ca: CertificateAuthority) -> tuple[x509.Certificate, Certificate] | None:
    """The certificate in ``path`` and its row, if ``ca`` issued it and the database holds it byte for byte."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    row = Certificate.objects.filter(ca=ca, serial=format(cert.serial_number, "x")).first()
    if row is None or row.fingerprint_sha256 != cert.fingerprint(hashes.SHA256()).hex():
        return None
    return cert, row


def _host_names() -> list[str]:
    names = list(SERVER_NAMES)
    for host in getattr(settings, "ALLOWED_HOSTS", []):
        host = host.strip().strip("[]")
        if host and "*" not in host and not host.startswith(".") and host not in names:
            names.append(host)
    return names


def _alt_names(names: list[str]) -> str:
    parts = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            parts.append(f"DNSNAME={name}")
        else:
            parts.append(f"IPADDRESS={name}")
    return ",".join(parts)


def _issue(ca: CertificateAuthority, profile: str, subject_dn: str, public_key, alt_name: str | None,
           username: str):
    from .issuance import IssuanceRequest, issue
    from .services.profiles import get_profile

    return issue(IssuanceRequest(
        ca=ca, actor=Actor.system_actor("init"), profile=get_profile(profile), public_key=public_key,
        subject_dn=subject_dn, subject_alt_name=alt_name, username=username,
        audit_details={"purpose": "make run HTTPS listener" if profile == "SERVER" else "superadmin.p12"},
    ))


def _server_certificate(ca: CertificateAuthority, paths: CredentialPaths, result: CredentialsResult) -> None:
    known = _recorded(paths.server_cert, ca)
    if known is not None and paths.server_key.exists() and known[1].status == CertificateStatus.ACTIVE \
            and not known[1].is_expired:
        return
    key = ec.generate_private_key(ec.SECP256R1())
    issued = _issue(ca, "SERVER", "CN=localhost,O=PKI Demo,C=SE", key.public_key(), _alt_names(_host_names()),
                    "localhost-tls")
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [issued.certificate, *ca.chain()])
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())

    _write(paths.server_key, key_pem, 0o600)
    _write(paths.server_cert, chain, 0o644)
    result.created.append(f"TLS server certificate {issued.row.serial} ({paths.server_cert})")


def _superadmin(ca: CertificateAuthority, paths: CredentialPaths, result: CredentialsResult) -> None:
    role = Role.objects.filter(name=SUPERADMIN_ROLE).first()
    if role is None:
        return
    # Made once: again only when the P12 is gone (the operator's way to ask for a new one) or its certificate is not
    # in this database (a new database beside an old var/). A revoked certificate or a removed role member stays
    # as the operator left it: init never re-adds a super administrator behind their back.
    if paths.superadmin_p12.exists() and _recorded(paths.superadmin_cert, ca) is not None:
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issued = _issue(ca, "ENDUSER", f"CN={SUPERADMIN_CN}", key.public_key(), None, "superadmin")
    from .services.roles import MemberSpec, add_member

    add_member(Actor.system_actor("init"), role, MemberSpec(
        match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=issued.row.serial, issuer_ca=ca,
        description="superadmin.p12 made by init"))
    password = secrets.token_urlsafe(12)
    p12 = pkcs12.serialize_key_and_certificates(
        SUPERADMIN_CN.encode(), key, issued.certificate, ca.chain(),
        serialization.BestAvailableEncryption(password.encode()))
    cert_pem = issued.certificate.public_bytes(serialization.Encoding.PEM)

    _write(paths.superadmin_p12, p12, 0o600)
    _write(paths.superadmin_cert, cert_pem, 0o644)
    result.superadmin_password = password
    result.created.append(f"superadmin certificate {issued.row.serial} ({paths.superadmin_p12})")


def _client_cas(paths: CredentialPaths) -> None:
    pem = b"".join(
        ca.certificate.public_bytes(serialization.Encoding.PEM)
        for ca in CertificateAuthority.objects.local().order_by("pk") if ca.certificate is not None)
    if pem and (not paths.client_ca.exists() or paths.client_ca.read_bytes() != pem):
        _write(paths.client_ca, pem, 0o644)


def ensure_credentials(paths: CredentialPaths | None = None) -> CredentialsResult:
    """Make what is missing of the listener's credentials (inside the caller's transaction)."""
    paths = paths or credential_paths()
    result = CredentialsResult(created=[])
    ca = CertificateAuthority.objects.filter(name=MANAGEMENT_CA).first()
    if ca is None or ca.certificate is None:
        return result
    _server_certificate(ca, paths, result)
    _superadmin(ca, paths, result)
    _client_cas(paths)
    return result
