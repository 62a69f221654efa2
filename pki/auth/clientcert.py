"""Client certificate authentication behind the TLS proxy (``PKI_BEHIND_TLS_PROXY``).

nginx verifies the client certificate and always sets two headers, whatever the client sent
(deploy/nginx/pki.conf): ``X-SSL-Client-Verify`` (``SUCCESS``, ``NONE``, ``FAILED:...``) and
``X-SSL-Client-Cert`` (the URL-encoded PEM). The application believes them only when it runs behind
that proxy, and only from the peers ``PKI_TRUSTED_PROXIES`` lists (addresses or networks; with none listed, from
nobody: the settings refuse to start behind a proxy without the list).

A forwarded certificate becomes an identity when:
1. it was issued by a CA of this installation (issuer name and signature checked against the CA
   certificate or an earlier certificate of the same CA),
2. the database holds it, byte for byte (fingerprint), and it is neither revoked, on hold nor expired,
3. a role member matches it: ``CERTIFICATE_SERIAL`` (issuing CA + serial, hex) or ``CERTIFICATE_CN``
   (issuing CA + a CN of the subject).

A certificate from a CA that is not ours is ignored (nginx may trust other CAs). One of ours that fails
check 2 is refused (API: 401; UI: no identity) and the refusal is audited. One that passes but matches
no member authenticates a caller without roles, as in EJBCA: the API answers 403 to whatever it asks
(not 401: the certificate is known, only the right is missing), unless the request also carries a
session, which then decides; the admin UI ignores such a certificate (the login page, not a wall of 403s).

Two entry points share :func:`authenticate_request`: :class:`ClientCertificateMiddleware` (admin UI;
sets ``request.user`` when nobody is logged in, nothing is stored in the session) and
:class:`ClientCertificateAuthentication` (DRF).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .access import Actor, rules_for_roles

if TYPE_CHECKING:
    from ..errors import RoleMemberMatchDenied

logger = logging.getLogger("pki.auth")

VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"
CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
PROXY_SECRET_HEADER = "HTTP_X_PKI_PROXY_SECRET"
AUDIT_EVENT = "CLIENT_CERTIFICATE_LOGIN"
#: A WSGI environ key no HTTP request can set (a server puts request headers under ``HTTP_*`` only): the peers app
#: sets it, in process, to the client certificate an RA's TLS proxy verified, so that a REST call carried from an
#: RA authenticates here by this node's own rules (ours, known, not revoked, a role member) as if it came in here.
CARRIED_CERT_KEY = "pki.carried_client_certificate"


class ClientCertificateRefused(Exception):
    """A certificate of one of our CAs that must not authenticate anyone (the reason is safe to show)."""


@dataclass
class CertificateUser:
    """``request.user`` of a caller authenticated by a client certificate (no database row)."""

    pki_actor: Actor
    serial: str
    ca_name: str
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def get_username(self) -> str:
        return self.pki_actor.name

    def has_usable_password(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.pki_actor.name


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    networks = []
    for p in proxies:
        try:
            networks.append(ipaddress.ip_network(p, strict=False))
        except ValueError:
            logger.error("PKI_TRUSTED_PROXIES: %r is not an IP address or network; ignored", p)
    return tuple(networks)


def peer_is_trusted_proxy(request) -> bool:
    """Whether the peer is one of PKI_TRUSTED_PROXIES (whose X-Forwarded-For is believed). None configured:
    nobody (an empty list must never mean "any peer")."""
    networks = _networks(tuple(getattr(settings, "PKI_TRUSTED_PROXIES", ()) or ()))
    if not networks:
        return False
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in networks)


def _trusted_peer(request) -> bool:
    """Whether the peer is the TLS proxy whose client-certificate headers are believed: behind the TLS proxy
    only (settings refuse to start it without PKI_TRUSTED_PROXIES), only from those peers, and, when
    PKI_PROXY_SECRET is set, only on requests that carry it (a local process that reaches gunicorn's loopback port
    is a trusted peer by address, but does not know the secret)."""
    if not (getattr(settings, "PKI_BEHIND_TLS_PROXY", False) and peer_is_trusted_proxy(request)):
        return False
    secret = getattr(settings, "PKI_PROXY_SECRET", "")
    return not secret or hmac.compare_digest(request.META.get(PROXY_SECRET_HEADER, "").encode(), secret.encode())


def forwarded_certificate(request) -> x509.Certificate | None:
    """The client certificate nginx verified and forwarded, if this request may carry one."""
    carried = request.META.get(CARRIED_CERT_KEY)
    if isinstance(carried, x509.Certificate):
        return carried
    raw = request.META.get(CERT_HEADER, "")
    if not raw or request.META.get(VERIFY_HEADER, "") != "SUCCESS" or not _trusted_peer(request):
        return None
    try:
        return x509.load_pem_x509_certificate(unquote(raw).encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        logger.warning("Unreadable client certificate header from %s", request.META.get("REMOTE_ADDR", ""))
        return None


def _issuing_ca(cert: x509.Certificate):
    """The local CA that signed ``cert`` (current or earlier CA certificate), else None."""
    from ..models import CACertificate, CertificateAuthority

    def signed_by(ca_cert: x509.Certificate) -> bool:
        if ca_cert.subject != cert.issuer:
            return False
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    for ca in CertificateAuthority.objects.local():
        current = ca.certificate
        if current is None or current.subject != cert.issuer:
            continue
        # The current CA certificate first; earlier ones (a renewal with a new key) only when it did not sign.
        if signed_by(current) or any(signed_by(x509.load_der_x509_certificate(bytes(der))) for der in
                                     CACertificate.objects.filter(ca=ca).values_list("certificate_der", flat=True)):
            return ca
    return None


def _common_names(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def roles_matching_subject(ca_id: int, subject: x509.Name) -> list[tuple[int, str]]:
    """The roles (id, name) whose client-certificate members a certificate of CA ``ca_id`` with ``subject``
    would match before it exists: CN members (serial members cannot be matched in advance: serials are
    random). On the issuance path, so one statement, prepared once per database session."""
    from django.db import connection

    from ..choices import MemberMatch
    from ..db import execute
    from ..models import Role, RoleMember

    cns = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not cns:
        return []
    with connection.cursor() as cur:
        if connection.vendor != "postgresql":
            # The same statement with an IN list, as plain SQL: on SQLite this runs inside the write transaction
            # (the database's one write lock), where the ORM's query building cost ~1 ms per certificate.
            q = connection.ops.quote_name
            member, role = RoleMember._meta, Role._meta
            col = {f: q(member.get_field(f).column) for f in ("role", "issuer_ca", "match_type", "match_value")}
            cur.execute(f"SELECT DISTINCT r.{q(role.pk.column)}, r.{q(role.get_field('name').column)} "  # noqa: S608
                        f"FROM {q(member.db_table)} m JOIN {q(role.db_table)} r ON r.{q(role.pk.column)} = "
                        f"m.{col['role']} WHERE m.{col['issuer_ca']} = %s AND m.{col['match_type']} = %s AND "
                        f"m.{col['match_value']} IN ({', '.join(['%s'] * len(cns))})",
                        [ca_id, MemberMatch.CERTIFICATE_CN.value, *cns])
        else:
            execute(cur, "member_match", *member_match_query(ca_id, subject))
        return [tuple(row) for row in cur.fetchall()]


def member_match_query(ca_id: int, subject: x509.Name) -> tuple[str, list]:
    """The PostgreSQL query (sql, params) of :func:`roles_matching_subject`: rows (role id, role name). Issuance
    sends it with its other reads in one round trip."""
    from ..choices import MemberMatch

    cns = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    sql = ("SELECT DISTINCT r.id, r.name FROM pki_rolemember m JOIN pki_role r"
           " ON r.id = m.role_id WHERE m.issuer_ca_id = %s AND m.match_type = %s AND m.match_value = ANY(%s)")
    return sql, [ca_id, MemberMatch.CERTIFICATE_CN.value, cns]


def member_refusal(actor: Actor, ca, roles: list[tuple[int, str]]) -> RoleMemberMatchDenied | None:
    """The refusal of a certificate of ``ca`` whose subject matches members of ``roles`` ((id, name) each, from
    :func:`roles_matching_subject`), or None: only a caller who may edit each of those roles may have it."""
    from ..errors import RoleMemberMatchDenied
    from .access import may_edit_role

    for role_id, role_name in roles:
        if not may_edit_role(actor, role_id):
            return RoleMemberMatchDenied(
                f"Refused: a certificate from CA '{ca.name}' with this subject CN would log in as a member of "
                f"role '{role_name}', and only an administrator who may edit that role can issue it.", actor.name)
    return None


def require_may_issue_member_certificate(actor: Actor, ca, subject: x509.Name) -> None:
    """A certificate that would log in as a client-certificate role member (same CA, same CN) is issued only to
    a caller who may edit that role: otherwise issuing it would be joining the role (issue 11: an RA operator
    enrolling CN=<an admin's CN>). The issuance pipeline asks this of every certificate, whatever the interface,
    after any hook changed the subject (on PostgreSQL with its storing reads: :func:`member_match_query`)."""
    refusal = member_refusal(actor, ca, roles_matching_subject(ca.pk, subject))
    if refusal is not None:
        raise refusal


def actor_for_certificate(cert: x509.Certificate) -> Actor | None:
    """The actor a forwarded certificate stands for; None when it is not ours. One of ours that matches no role
    member is an actor without roles (every access rule denies it).

    Raises ClientCertificateRefused for a certificate of ours that is unknown, revoked, on hold or expired.
    """
    from ..choices import CertificateStatus, MemberMatch
    from ..models import Certificate, RoleMember

    ca = _issuing_ca(cert)
    if ca is None:
        return None
    serial = format(cert.serial_number, "x")
    row = Certificate.objects.filter(ca=ca, serial=serial).only(
        "status", "not_before", "not_after", "fingerprint_sha256").first()
    if row is None or row.fingerprint_sha256 != cert.fingerprint(hashes.SHA256()).hex():
        raise ClientCertificateRefused(f"client certificate {serial} of CA {ca.name} is not known")
    if row.status != CertificateStatus.ACTIVE:
        raise ClientCertificateRefused(f"client certificate {serial} of CA {ca.name} is revoked")
    now = timezone.now()
    if not (row.not_before <= now <= row.not_after):
        raise ClientCertificateRefused(f"client certificate {serial} of CA {ca.name} is expired or not yet valid")
    cns = _common_names(cert)
    role_ids = set(
        RoleMember.objects.filter(issuer_ca=ca, match_type=MemberMatch.CERTIFICATE_SERIAL, match_value=serial)
        .values_list("role_id", flat=True))
    if cns:
        role_ids |= set(RoleMember.objects.filter(issuer_ca=ca, match_type=MemberMatch.CERTIFICATE_CN,
                                                  match_value__in=cns).values_list("role_id", flat=True))
    if not role_ids:
        logger.info("Client certificate %s of CA %s matches no role member", serial, ca.name)
    name = f"{cns[0] if cns else cert.subject.rfc4514_string()} (certificate {serial}, CA {ca.name})"[:255]
    return Actor(name=name, kind="certificate", role_rules=rules_for_roles(sorted(role_ids)))


def authenticate_request(request) -> CertificateUser | None:
    """The certificate user of this request, once per request (the middleware and DRF share the answer).

    Raises ClientCertificateRefused (audited) for a certificate of ours that must not authenticate.
    """
    django_request = getattr(request, "_request", request)
    cached = getattr(django_request, "_pki_cert_result", None)
    if cached is not None:
        if isinstance(cached, ClientCertificateRefused):
            raise cached
        return cached or None
    cert = forwarded_certificate(django_request)
    result: CertificateUser | ClientCertificateRefused | bool = False
    if cert is not None:
        try:
            who = actor_for_certificate(cert)
        except ClientCertificateRefused as exc:
            from . import refusals

            # Throttled audit summary, not a row per request (a refused certificate can be presented in a loop);
            # keyed by the fixed tail of the reason ("revoked", ...), not the serial.
            refusals.record("client certificate", AUDIT_EVENT, str(exc).rsplit(" is ", 1)[-1], str(exc),
                            actor=cert.subject.rfc4514_string()[:255], ip=django_request.META.get("REMOTE_ADDR", ""),
                            object_type="certificate", object_id=format(cert.serial_number, "x"))
            result = exc
        else:
            if who is not None:
                result = CertificateUser(who, format(cert.serial_number, "x"), "")
    django_request._pki_cert_result = result
    if isinstance(result, ClientCertificateRefused):
        raise result
    return result or None


class ClientCertificateMiddleware:
    """Admin UI: a request with nobody logged in but a matching client certificate runs as that certificate.

    Goes after AuthenticationMiddleware. A logged-in session keeps precedence; a refused certificate
    leaves the request anonymous (the login page then explains nothing more than it must).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # A call with an Authorization header (bearer token, Basic) is authenticated by that, not here.
        if (getattr(settings, "PKI_BEHIND_TLS_PROXY", False) and CERT_HEADER in request.META
                and "HTTP_AUTHORIZATION" not in request.META):
            user = getattr(request, "user", None)
            if user is None or not user.is_authenticated:
                try:
                    cert_user = authenticate_request(request)
                except ClientCertificateRefused:
                    cert_user = None
                if cert_user is not None and cert_user.pki_actor.role_rules:
                    request.user = cert_user
                    request._pki_actor = cert_user.pki_actor
        return self.get_response(request)


class ClientCertificateAuthentication(BaseAuthentication):
    """DRF: authenticate an API call by its forwarded client certificate (401 for a refused one of ours)."""

    def authenticate(self, request):
        if not getattr(settings, "PKI_BEHIND_TLS_PROXY", False) and CARRIED_CERT_KEY not in request._request.META:
            return None
        try:
            cert_user = authenticate_request(request)
        except ClientCertificateRefused as exc:
            raise AuthenticationFailed(str(exc)) from None
        if cert_user is None:
            return None
        if not cert_user.pki_actor.role_rules:
            session_user = getattr(request._request, "user", None)
            if session_user is not None and session_user.is_authenticated:
                return None  # a logged-in session decides (SessionAuthentication, next in line)
        request._request._pki_actor = cert_user.pki_actor  # what actor_for_request answers from now on
        return (cert_user, None)
