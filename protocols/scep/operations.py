"""The server side of each SCEP operation (RFC 8894 section 4): GetCACaps, GetCACert, GetCACertChain,
GetNextCACert and PKIOperation (PKCSReq/RenewalReq, CertPoll/GetCertInitial, GetCert, GetCRL).

Every function returns a :class:`ScepResponse` (status, content type, body) and raises nothing but
:class:`ScepHttpError` (a plain HTTP refusal). A PKIOperation that was understood well enough to answer is
always answered with a CertRep, FAILURE with its failInfo when refused; only bytes that are no SCEP message
at all get HTTP 400. Enrollment itself is in :mod:`.enrollment`.

Which key answers: the alias's RA key pair when it has one, else the CA whose certificate the request's
envelope is encrypted to (its current certificate, or its rollover certificate), else the alias's CA.
SCEP decrypts with that key, so it must be RSA (an EC CA needs an RSA RA key pair on the alias).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings as django_settings

from cryptotokens.errors import CryptoTokenError
from cryptotokens.services import get_private_key_by_id
from pki.choices import CAStatus
from pki.crl import latest_crl
from pki.models import Certificate, CertificateAuthority
from pki.services.cas import apply_due_rollover
from pki.x509.dn import format_dn

from . import aliascache
from . import messages as m
from .messages.payloads import name_from_asn1
from .models import ScepAlias

logger = logging.getLogger("protocols.scep")

CAPS_HEAD = ("POSTPKIOperation",)
CAPS_TAIL = ("Renewal", "SHA-512", "SHA-256", "SHA-1", "DES3", "AES", "SCEPStandard")
MOBILEIRON_CA = "MobileIronSCEP"


@dataclass
class ScepResponse:
    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b""


class ScepHttpError(Exception):
    """A refusal answered with a plain HTTP status and text (no CertRep possible or expected)."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


# --- which CA --------------------------------------------------------------------------------------

def _usable(ca: CertificateAuthority | None) -> CertificateAuthority | None:
    if ca is None or ca.status == CAStatus.EXTERNAL or not ca.certificate_der:
        return None
    if ca.rollover_due():  # "issue with the new CA certificate once it becomes active"
        apply_due_rollover(ca)
    return ca


def _ca_named(name: str) -> CertificateAuthority | None:
    qs = CertificateAuthority.objects.select_related("crypto_token", "signed_by")
    return qs.filter(name=name).first() or qs.filter(subject_dn=name).first()


def alias_default_ca(alias: ScepAlias) -> CertificateAuthority | None:
    """The CA of an alias when the request names none: in RA mode the RA CA (or the RA end entity profile's
    default CA), else the alias's default CA, ``PKI_SCEP_DEFAULT_CA``, then the installation's default CA."""
    candidates = []
    if alias.ra_mode or alias.use_intune:
        candidates.append(alias.ra_default_ca)
        if alias.ra_end_entity_profile is not None:
            candidates.append(alias.ra_end_entity_profile.default_ca)
    candidates.append(alias.default_ca)
    for ca in candidates:
        if ca is not None:
            return _usable(_ca_named(ca.name))
    name = getattr(django_settings, "PKI_SCEP_DEFAULT_CA", "")
    if name:
        return _usable(_ca_named(name))
    return _usable(CertificateAuthority.objects.filter(is_default=True).select_related("crypto_token").first())


def resolve_ca(alias: ScepAlias, message: str | None) -> CertificateAuthority | None:
    """The CA a GetCACert-style request means: the one named by ``message`` (CA name or subject DN), else the
    alias's. Intune aliases always use the RA CA. MobileIron always sends ``MobileIronSCEP``: a CA of that name
    serves it (as the seed says); without one, the alias's CA does."""
    message = (message or "").strip()
    if not message.isprintable():
        # A CA name holds no control characters (PostgreSQL refuses NUL in a query): a plain 400, not a lookup.
        raise ScepHttpError(400, "The message parameter is not a CA name.")
    if alias.use_intune or not message:
        return alias_default_ca(alias)
    ca = _usable(_ca_named(message))
    if ca is None and message == MOBILEIRON_CA:
        return alias_default_ca(alias)
    return ca


def _require_ca(alias: ScepAlias, message: str | None, operation: str) -> CertificateAuthority:
    ca = resolve_ca(alias, message)
    if ca is None:
        named = f"'{message}'" if message else "named by the request or configured for the alias"
        raise ScepHttpError(404, f"{operation}: no CA {named}.")
    return ca


def _has_pending_rollover(ca: CertificateAuthority) -> bool:
    return bool(ca.rollover_certificate_der) and not ca.rollover_due()


# --- GetCACaps, GetCACert, GetCACertChain, GetNextCACert ----------------------------------------------

def get_ca_caps(alias: ScepAlias, message: str | None) -> ScepResponse:
    """The capabilities, one per line, in EJBCA's order; GetNextCACert only when the CA has a rollover
    certificate waiting. A CA this alias does not know is 404, as in GetCACert (no capabilities of a CA that
    does not exist)."""
    ca = _require_ca(alias, message, "GetCACaps")
    caps = list(CAPS_HEAD)
    if _has_pending_rollover(ca):
        caps.append("GetNextCACert")
    caps.extend(CAPS_TAIL)
    return ScepResponse(200, "text/plain", "\n".join(caps).encode())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def get_ca_cert(alias: ScepAlias, message: str | None) -> ScepResponse:
    """A root CA: its DER certificate. An intermediate CA with "return full chain" on, or an alias with an RA
    key: a degenerate certificates-only SignedData (RA certificate first, then the CA chain)."""
    ca = _require_ca(alias, message, "GetCACert")
    chain = ca.chain()
    ra_cert = ra_certificate(alias)
    if ra_cert is not None:
        return ScepResponse(200, "application/x-x509-ca-ra-cert", m.degenerate_certs_only([ra_cert, *chain]))
    if len(chain) == 1 or not alias.return_ca_chain:
        return ScepResponse(200, "application/x-x509-ca-cert", _der(chain[0]))
    return ScepResponse(200, "application/x-x509-ca-ra-cert", m.degenerate_certs_only(chain))


def get_ca_cert_chain(alias: ScepAlias, message: str | None) -> ScepResponse:
    """draft-nourse-scep-18's GetCACertChain: the CA chain as a certificates-only SignedData."""
    ca = _require_ca(alias, message, "GetCACertChain")
    return ScepResponse(200, "application/x-x509-ca-ra-cert-chain", m.degenerate_certs_only(ca.chain()))


def get_next_ca_cert(alias: ScepAlias, message: str | None) -> ScepResponse:
    """RFC 8894 section 4.7 / Appendix E: the CA's rollover certificate (and the chain above it), in a
    SignedData signed by the current CA key. 403 when the CA has no rollover certificate (as EJBCA)."""
    ca = _require_ca(alias, message, "GetNextCACert")
    if not _has_pending_rollover(ca):
        raise ScepHttpError(403, f"CA '{ca.name}' has no rollover certificate.")
    chain = [ca.rollover_certificate, *ca.chain()[1:]]
    responder = _ca_responder(ca)
    body = m.build_signed_certs(chain, responder.cert, responder.key)
    return ScepResponse(200, "application/x-x509-next-ca-cert", body)


# --- who answers a PKIOperation -----------------------------------------------------------------------

@dataclass
class Responder:
    """The certificate and key that decrypt a request and sign its reply, and the CA behind them."""

    ca: CertificateAuthority
    cert: x509.Certificate
    key: object
    extra_certs: list[x509.Certificate] = field(default_factory=list)


def ra_certificate(alias: ScepAlias) -> x509.Certificate | None:
    if not alias.ra_crypto_token_id or not alias.ra_certificate_der:
        return None
    return x509.load_der_x509_certificate(bytes(alias.ra_certificate_der))


def _key(token_id: int, key_alias: str, what: str, alias: ScepAlias | None = None):
    """The key handle; with ``alias``, kept with the cached alias while its token's row is unchanged."""
    try:
        if alias is not None:
            return aliascache.responder_key(alias, token_id, key_alias, get_private_key_by_id)
        return get_private_key_by_id(token_id, key_alias)
    except CryptoTokenError as exc:
        raise ScepHttpError(503, f"The {what} key is not available: {exc}") from None


def _ca_responder(ca: CertificateAuthority, rollover: bool = False, alias: ScepAlias | None = None) -> Responder:
    """``alias``: ``ca`` is one of the alias's own CA rows (loaded with it and covered by its versions)."""
    if ca.crypto_token_id is None:
        raise ScepHttpError(404, f"CA '{ca.name}' holds no key here.")
    if rollover:
        return Responder(ca, ca.rollover_certificate, _key(ca.crypto_token_id, ca.rollover_key_alias, "CA", alias))
    return Responder(ca, ca.certificate, _key(ca.crypto_token_id, ca.key_alias, "CA", alias))


@functools.lru_cache(maxsize=128)
def _issuer_name(der: bytes) -> x509.Name:
    """A recipient's issuer as a Name, converted once per distinct DER (it is one of a few CA names)."""
    return name_from_asn1(asn1_x509.Name.load(der))


def _recipient_ids(envelope: bytes | None) -> list[tuple[str, object]]:
    """The recipients an EnvelopedData names: ("ias", (issuer Name, serial)) or ("ski", bytes). Best effort:
    a malformed envelope yields none, and the decryption reports it properly."""
    out: list[tuple[str, object]] = []
    if not envelope:
        return out
    try:
        info = cms.ContentInfo.load(envelope)
        for ri in info["content"]["recipient_infos"]:
            if ri.name != "ktri":
                continue
            rid = ri.chosen["rid"]
            if rid.name == "issuer_and_serial_number":
                issuer = _issuer_name(rid.chosen["issuer"].dump())
                out.append(("ias", (issuer, rid.chosen["serial_number"].native)))
            else:
                out.append(("ski", bytes(rid.chosen.native)))
    except Exception:  # noqa: BLE001 - any parse problem: no recipient hint
        return []
    return out


@functools.lru_cache(maxsize=128)
def _parsed(der: bytes) -> x509.Certificate:
    """CA certificates parsed once per process (every request compares its recipient with each of them)."""
    return x509.load_der_x509_certificate(der)


def _matches(cert: x509.Certificate | None, rid: tuple[str, object]) -> bool:
    if cert is None:
        return False
    kind, value = rid
    if kind == "ias":
        issuer, serial = value  # type: ignore[misc]
        return cert.serial_number == serial and cert.issuer == issuer
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return False
    return ski == value


class WrongRecipient(m.BadCertId):
    """The request is encrypted to a CA certificate this alias does not serve (RA mode: anything but its CA's
    or its RA key's certificate). ``responder`` is the alias's own, to sign the refusal."""

    def __init__(self, text: str, message: m.PkiMessage, responder: Responder | None):
        super().__init__(text, message)
        self.responder = responder


def _names_other_ca(rids: list[tuple[str, object]], own: CertificateAuthority) -> bool:
    """Whether a recipient is the certificate (current or rollover) of a local CA other than ``own``."""
    for ca in CertificateAuthority.objects.local().exclude(pk=own.pk).exclude(certificate_der=None):
        certs = [_parsed(bytes(ca.certificate_der))]
        if ca.rollover_certificate_der:
            certs.append(_parsed(bytes(ca.rollover_certificate_der)))
        if any(_matches(cert, rid) for cert in certs for rid in rids):
            return True
    return False


def _ra_mode_responder(alias: ScepAlias, message: m.PkiMessage,
                       rids: list[tuple[str, object]]) -> tuple[Responder | None, bool]:
    """RA mode issues from the alias's CA, always (never from whichever CA the client encrypted to): the
    request must be encrypted to that CA's certificate (current or rollover) or to the alias's RA key's."""
    own = alias.ra_default_ca  # loaded with the alias: the usual case costs no query
    ca = _usable(own) if own is not None else alias_default_ca(alias)
    if ca is None:
        return None, False
    ra_cert = ra_certificate(alias)
    # The alias's own CA row is covered by its versions (a due rollover just changed the row: not).
    cached = alias if ca is own and not ca.rollover_due() else None

    def default() -> Responder:
        if ra_cert is not None:
            key = _key(alias.ra_crypto_token_id, alias.ra_key_alias, "RA", alias)
            return Responder(ca, ra_cert, key, extra_certs=ca.chain())
        return _ca_responder(ca, alias=cached)

    for rid in rids:
        if ra_cert is not None and _matches(ra_cert, rid):
            return default(), True
        if ra_cert is None and _matches(_parsed(bytes(ca.certificate_der)), rid):
            return _ca_responder(ca, alias=cached), True
        if ra_cert is None and ca.rollover_certificate_der and _matches(_parsed(bytes(ca.rollover_certificate_der)),
                                                                       rid):
            return _ca_responder(ca, rollover=True, alias=cached), True
    if rids and _names_other_ca(rids, ca):
        raise WrongRecipient(f"The request is encrypted to another CA than this alias's ('{ca.name}').", message,
                             default())
    return default(), False  # a recipient identifier nobody's: try the alias's key (decryption decides)


def responder_for(alias: ScepAlias, message: m.PkiMessage) -> tuple[Responder | None, bool]:
    """The responder of a request and whether the envelope named it (False: the alias's CA as a guess).

    RA mode: only the alias's CA or RA key (:class:`WrongRecipient` for a request encrypted to another CA).
    CA mode: any local CA the request is encrypted to; the end entity's CA must then be that one (checked by
    the enrollment), as in EJBCA, where CA mode takes the CA from the end entity."""
    if alias.ra_mode or alias.use_intune:
        return _ra_mode_responder(alias, message, _recipient_ids(message.envelope))
    ra_cert = ra_certificate(alias)
    if ra_cert is not None:
        ca = alias_default_ca(alias)
        if ca is None:
            return None, False
        key = _key(alias.ra_crypto_token_id, alias.ra_key_alias, "RA", alias)
        return Responder(ca, ra_cert, key, extra_certs=ca.chain()), True
    rids = _recipient_ids(message.envelope)
    if rids:
        # The alias's own CAs (loaded with the alias) first: the usual case costs no query.
        configured = [c for c in (alias.ra_default_ca, alias.default_ca) if c is not None and c.certificate_der]
        def others():  # built only when the alias's own CAs do not match (queryset building costs per request)
            yield from CertificateAuthority.objects.local().exclude(certificate_der=None).select_related(
                "crypto_token")

        for ca in _chain_iter(configured, others()):
            own = any(ca is c for c in configured)
            ca = _usable(ca) or ca  # a rollover certificate whose time has come is the current one now
            # The alias's own CA rows are covered by its versions (a due rollover just changed the row: not).
            cached = alias if own and not ca.rollover_due() else None
            current = _parsed(bytes(ca.certificate_der))
            rollover = _parsed(bytes(ca.rollover_certificate_der)) if ca.rollover_certificate_der else None
            for rid in rids:
                if _matches(current, rid):
                    return _ca_responder(ca, alias=cached), True
                if _matches(rollover, rid):
                    # A client that fetched GetNextCACert early: decrypt and sign with the next key.
                    return _ca_responder(ca, rollover=True, alias=cached), True
    ca = alias_default_ca(alias)
    return (_ca_responder(ca) if ca is not None else None), False


def _chain_iter(first, then):
    seen = set()
    for group in (first, then):
        for ca in group:
            if ca.pk not in seen and ca.status != CAStatus.EXTERNAL:
                seen.add(ca.pk)
                yield ca


def is_rsa(key) -> bool:
    return isinstance(key, rsa.RSAPrivateKey)


# --- GetCert, GetCRL -----------------------------------------------------------------------------------

def find_certificate(issuer: x509.Name, serial: int) -> Certificate | None:
    return (Certificate.objects.select_related("ca")
            .filter(serial=format(serial, "x"), issuer_dn=format_dn(issuer)).first())


def ca_by_subject(subject: x509.Name) -> CertificateAuthority | None:
    return CertificateAuthority.objects.filter(subject_dn=format_dn(subject)).first()


def get_cert(content: bytes) -> Certificate:
    """GetCert: the certificate with this issuer and serial number (BadCertId when none)."""
    iasn = m.parse_issuer_and_serial(content)
    row = find_certificate(iasn.issuer, iasn.serial_number)
    if row is None:
        raise m.BadCertId("No certificate with this issuer and serial number.")
    return row


def get_crl(content: bytes) -> x509.CertificateRevocationList:
    """GetCRL: the latest full CRL of the CA that issued the named certificate (BadCertId when none)."""
    iasn = m.parse_issuer_and_serial(content)
    ca = ca_by_subject(iasn.issuer)
    crl = latest_crl(ca) if ca is not None else None
    if crl is None:
        raise m.BadCertId("No CRL of this issuer.")
    return x509.load_der_x509_crl(bytes(crl.der))

