"""THE issuance pipeline. Every interface (admin UI, RA portal, REST, SCEP, CLI) ends in :func:`issue`.

1. authorize the caller (an admin's access rules, or a hook of the layer above: enrollment code, renewal),
2. validate the request against the certificate profile (key, validity, extensions) and the hooks
   of the layer above (end entity profile rules),
3. build the certificate, 4. sign it through the CA's crypto token,
5. store it and the caller's own changes in one transaction, 6. audit it, and queue post-issuance work.
A failure at any step leaves nothing behind but a FAILURE audit event.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from cryptotokens.backends.base import key_spec_of
from cryptotokens.errors import CryptoTokenError
from cryptotokens.services import cached_private_key, get_private_key_by_id

from . import audit, issuance_store
from .auth.access import Actor
from .choices import CAStatus
from .db import new_row
from .errors import CAOfflineError, ConflictError, PkiError, ValidationError, as_pki_error
from .group_commit import GroupCommit
from .issuance_store import Signed, TokenChanged
from .models import Certificate, CertificateAuthority, CertificateProfile
from .uniqueness import public_key_sha256
from .x509.algorithms import signature_algorithm
from .x509.altnames import AltNameError, format_altnames, parse_altnames
from .x509.dn import DNError, format_csr_subject, format_dn, parse_dn
from .x509.explicit_ec import resign_with_explicit_key
from .x509.extensions import eku_oid, encode_custom_value, key_usage
from .x509.qc import CABF_ORGANIZATION_IDENTIFIER_OID
from .x509.validity import ValidityError, parse_validity

logger = logging.getLogger("pki.issuance")

# Sent after the issuing transaction committed: sender=Certificate, certificate=<Certificate row>.
certificate_issued = Signal()

BACKDATE = timedelta(minutes=10)  # EJBCA's default validity offset: tolerate clients with slow clocks
SERIAL_ATTEMPTS = 3


@dataclass
class IssuanceHooks:
    """Callables the layer above plugs in (the CA core never imports that layer).

    authorize(request): replaces the admin access check (e.g. checks an enrollment code).
    validate(request): may raise ValidationError, may adjust request.subject_dn/subject_alt_name/extensions.
    on_stored(request, certificate_row): runs inside the issuing transaction (e.g. update the end entity).
    """

    authorize: Callable[[IssuanceRequest], None] | None = None
    validate: Callable[[IssuanceRequest], None] | None = None
    on_stored: Callable[[IssuanceRequest, Certificate], None] | None = None


@dataclass
class IssuanceRequest:
    ca: CertificateAuthority
    actor: Actor
    profile: CertificateProfile | None = None
    csr: x509.CertificateSigningRequest | bytes | str | None = None
    public_key: CertificatePublicKeyTypes | None = None
    subject_dn: str | None = None
    subject_alt_name: str | None = None
    validity: str | None = None  # override expression (days, "1y 6mo", or an end date)
    not_before: datetime | None = None
    not_after: datetime | None = None
    username: str = ""
    extra_extensions: list[x509.Extension] = field(default_factory=list)
    custom_extension_values: dict[str, str] = field(default_factory=dict)
    hooks: IssuanceHooks = field(default_factory=IssuanceHooks)
    self_signed: bool = False
    key_alias: str | None = None  # sign with this key of the CA's token (CA certificates, renewals)
    audit_details: dict[str, Any] = field(default_factory=dict)
    # The end entity profile asks for subject name log redaction: the audit event and log lines carry
    # REDACTED instead of the subject DN and alt names.
    redact_subject: bool = False
    end_entity_profile_id: int | None = None  # recorded on the certificate (EJBCA's endEntityProfileId)



@dataclass
class IssuedCertificate:
    row: Certificate
    certificate: x509.Certificate

    @property
    def serial_hex(self) -> str:
        return self.row.serial


def load_csr(data: x509.CertificateSigningRequest | bytes | str) -> x509.CertificateSigningRequest:
    """Parse a PKCS#10 request (PEM or DER) and check its self-signature."""
    if isinstance(data, x509.CertificateSigningRequest):
        csr = data
    else:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        try:
            if b"-----BEGIN" in raw:
                csr = x509.load_pem_x509_csr(raw)
            else:
                csr = x509.load_der_x509_csr(raw)
        except ValueError:
            raise ValidationError("The certificate request is not a valid PKCS#10 request.", field="csr") from None
    try:
        ok = csr.is_signature_valid
    except Exception:  # unsupported key or algorithm inside the CSR
        ok = False
    if not ok:
        raise ValidationError("The certificate request's signature does not verify.", field="csr")
    try:  # parsed lazily by cryptography: a duplicate or unreadable extension would fail later, unexpectedly
        csr.extensions  # noqa: B018
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType, ValueError) as exc:
        raise ValidationError(f"The certificate request's extensions cannot be read: {exc}", field="csr") from None
    return csr


def new_serial() -> int:
    """A random positive 20-byte serial (159 random bits; the top bit is clear so DER needs no 0x00)."""
    return secrets.randbits(159) | (1 << 152)  # the set bit keeps it 20 bytes long


def _check_key(profile: CertificateProfile, public_key) -> str:
    try:
        spec = key_spec_of(public_key)
    except CryptoTokenError as exc:
        raise ValidationError(str(exc), field="public_key") from None
    if spec.algorithm not in profile.allowed_key_algorithms:
        raise ValidationError(
            f"Key algorithm {spec.algorithm} is not allowed by certificate profile '{profile.name}'.",
            field="public_key",
        )
    if spec.algorithm == "RSA" and spec.size not in profile.allowed_rsa_sizes:
        raise ValidationError(
            f"RSA key size {spec.size} is not allowed by certificate profile '{profile.name}' "
            f"(allowed: {', '.join(map(str, profile.allowed_rsa_sizes))}).",
            field="public_key",
        )
    if spec.algorithm == "EC" and spec.curve not in profile.allowed_curves:
        raise ValidationError(
            f"Curve {spec.curve} is not allowed by certificate profile '{profile.name}' "
            f"(allowed: {', '.join(profile.allowed_curves)}).",
            field="public_key",
        )
    return str(spec)


@dataclass(frozen=True)
class _Issuer:
    """What issuance reads from a CA certificate, parsed once per certificate rather than once per call."""

    certificate: x509.Certificate
    name: x509.Name
    dn: str
    key_id: bytes
    not_after: datetime


@functools.lru_cache(maxsize=64)
def _issuer(der: bytes) -> _Issuer:
    cert = x509.load_der_x509_certificate(der)
    try:
        key_id = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        key_id = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return _Issuer(cert, cert.subject, format_dn(cert.subject), key_id, cert.not_valid_after_utc)


# The extensions that depend only on the profile's or the CA's settings are immutable values: built once
# per distinct setting (the cache key is the settings themselves, so an edited profile gets new ones).
@functools.lru_cache(maxsize=256)
def _profile_extensions(basic_constraints: bool, bc_critical: bool, is_ca: bool, path_length: int | None,
                        ku: tuple[str, ...], ku_critical: bool, eku: tuple[str, ...], eku_critical: bool,
                        ) -> tuple[x509.Extension, ...]:
    values: list[tuple[x509.ExtensionType, bool]] = []
    if basic_constraints:
        values.append((x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None), bc_critical))
    if ku:
        values.append((key_usage(list(ku)), ku_critical))
    if eku:
        values.append((x509.ExtendedKeyUsage([x509.ObjectIdentifier(eku_oid(o)) for o in eku]), eku_critical))
    return tuple(x509.Extension(v.oid, critical, v) for v, critical in values)


@functools.lru_cache(maxsize=256)
def _ca_extensions(crl_distribution_point: str, ocsp_url: str, ca_issuers_url: str, ocsp_no_check: bool,
                   ) -> tuple[x509.Extension, ...]:
    values: list[x509.ExtensionType] = []
    if crl_distribution_point:
        values.append(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl_distribution_point)], None, None, None)]))
    if ocsp_url or ca_issuers_url:
        descs = []
        if ocsp_url:
            descs.append(x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP,
                                                x509.UniformResourceIdentifier(ocsp_url)))
        if ca_issuers_url:
            descs.append(x509.AccessDescription(x509.AuthorityInformationAccessOID.CA_ISSUERS,
                                                x509.UniformResourceIdentifier(ca_issuers_url)))
        values.append(x509.AuthorityInformationAccess(descs))
    if ocsp_no_check:
        values.append(x509.OCSPNoCheck())
    return tuple(x509.Extension(v.oid, False, v) for v in values)


@functools.lru_cache(maxsize=64)
def _authority_key_id(key_id: bytes) -> x509.Extension:
    value = x509.AuthorityKeyIdentifier(key_id, None, None)
    return x509.Extension(value.oid, False, value)


def _validity(req: IssuanceRequest, profile: CertificateProfile, ca_not_after: datetime | None):
    """Not-before and not-after: the profile's validity, or a requested one when the profile allows
    overriding (capped at the profile's validity, as EJBCA does), never past the CA's own expiry."""
    now = timezone.now().replace(microsecond=0)
    overridden = bool(req.validity or req.not_before or req.not_after)
    if overridden and not profile.allow_validity_override:
        raise ValidationError(
            f"Certificate profile '{profile.name}' does not allow validity override.", field="validity"
        )
    start = req.not_before or now
    not_before = req.not_before or now - BACKDATE
    try:
        limit = parse_validity(profile.validity, start)
        not_after = req.not_after or (parse_validity(req.validity, start) if req.validity else limit)
    except ValidityError as exc:
        raise ValidationError(str(exc), field="validity") from None
    not_after = min(not_after, limit)
    if not_after <= not_before:
        raise ValidationError("The validity end is not after its start.", field="validity")
    if ca_not_after is not None and not_after > ca_not_after:
        not_after = ca_not_after  # never outlive the issuing CA
    return not_before, not_after


def _extensions(req, profile, ca, subject, public_key, csr, issuer_key_id) -> list[x509.Extension]:
    exts: dict[str, x509.Extension] = {}

    def add(value: x509.ExtensionType, critical: bool) -> None:
        exts[value.oid.dotted_string] = x509.Extension(value.oid, critical, value)

    if csr is not None and profile.allow_extension_override:
        for ext in csr.extensions:
            exts[ext.oid.dotted_string] = ext
    for ext in _profile_extensions(
        profile.basic_constraints, profile.basic_constraints_critical, profile.is_ca, profile.path_length,
        tuple(profile.key_usage or ()), profile.key_usage_critical,
        tuple(profile.extended_key_usage or ()), profile.extended_key_usage_critical,
    ):
        exts[ext.oid.dotted_string] = ext
    if profile.use_subject_key_id:
        add(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
    if profile.use_authority_key_id and issuer_key_id is not None:
        ext = _authority_key_id(issuer_key_id)
        exts[ext.oid.dotted_string] = ext
    for ext in _ca_extensions(
        ca.crl_distribution_point if profile.use_crl_distribution_point and not req.self_signed else "",
        ca.ocsp_url if profile.use_authority_info_access and not req.self_signed else "",
        ca.ca_issuers_url if profile.use_authority_info_access and not req.self_signed else "",
        profile.use_ocsp_no_check,
    ):
        exts[ext.oid.dotted_string] = ext
    for custom in profile.custom_extensions or []:
        oid = custom["oid"]
        value = req.custom_extension_values.get(oid) if custom.get("dynamic") else custom.get("value")
        if value in (None, ""):
            if custom.get("required", False):
                raise ValidationError(f"Custom extension {oid} needs a value.", field="extensions")
            continue
        try:
            der = encode_custom_value(custom.get("encoding", "UTF8String"), str(value))
        except ValueError as exc:
            raise ValidationError(f"Custom extension {oid}: {exc}", field="extensions") from None
        ext_oid = x509.ObjectIdentifier(oid)
        exts[oid] = x509.Extension(ext_oid, bool(custom.get("critical")), x509.UnrecognizedExtension(ext_oid, der))
    for ext in req.extra_extensions:
        if ext.oid.dotted_string == CABF_ORGANIZATION_IDENTIFIER_OID and not profile.use_cabf_organization_identifier:
            continue  # the certificate profile must enable it too, or it is left out (EJBCA, seed 004)
        exts[ext.oid.dotted_string] = ext
    # Subject alternative name last: the request's string wins over the CSR's extension.
    if req.subject_alt_name is not None:
        try:
            names = parse_altnames(req.subject_alt_name)
        except AltNameError as exc:
            raise ValidationError(str(exc), field="subject_alt_name") from None
        exts.pop(x509.ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string, None)
        if names:
            add(x509.SubjectAlternativeName(names), len(subject) == 0)
    elif csr is not None and not profile.allow_extension_override:
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            add(san.value, len(subject) == 0)
        except x509.ExtensionNotFound:
            pass
    return list(exts.values())


def _signing_key(ca: CertificateAuthority, alias: str):
    if ca.crypto_token_id is None:
        raise CAOfflineError(f"CA '{ca.name}' holds no key here (it is an external CA).")
    # The token's state is read from the database every time: activation is shared between processes.
    try:
        return get_private_key_by_id(ca.crypto_token_id, alias)
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None


def _issuing_key(ca: CertificateAuthority, alias: str, fresh: bool):
    """The signing key and the token version to confirm when storing. The key opened before in this process is
    used without a round trip of its own; its token's state is read by the INSERT that stores the certificate
    (:func:`pki.issuance_store.store`), so a deactivation or key change anywhere still stops issuance everywhere:
    what was signed meanwhile is discarded, never stored or returned. ``fresh``: read the state first, as other
    signers do."""
    if not fresh and ca.crypto_token_id is not None:
        hit = cached_private_key(ca.crypto_token_id, alias)
        if hit is not None:
            return hit[0], (ca.crypto_token_id, hit[1])
    key = _signing_key(ca, alias)
    hit = cached_private_key(ca.crypto_token_id, alias)
    return key, ((ca.crypto_token_id, hit[1]) if hit is not None and hit[0] is key else None)


def _prepare(req: IssuanceRequest, member_check: bool = True):
    ca = req.ca
    profile = req.profile
    if profile is None:
        raise ValidationError("A certificate profile is required.", field="certificate_profile")
    if ca.status != CAStatus.ACTIVE:
        raise CAOfflineError(f"CA '{ca.name}' is {ca.get_status_display().lower()} and cannot issue.")
    if req.hooks.authorize:
        req.hooks.authorize(req)
    else:
        req.actor.require(f"/ca/{ca.pk}")
        req.actor.require("/ca_functionality/create_certificate")
    csr = load_csr(req.csr) if req.csr is not None else None
    public_key = csr.public_key() if csr is not None else req.public_key
    if public_key is None:
        raise ValidationError("A certificate request or a public key is required.", field="csr")
    if req.subject_dn is None:
        if csr is None:
            raise ValidationError("A subject DN is required.", field="subject_dn")
        req.subject_dn = _csr_subject_dn(csr)
    if req.hooks.validate:
        req.hooks.validate(req)
    key_spec = _check_key(profile, public_key)
    try:
        subject = parse_dn(req.subject_dn) if req.subject_dn.strip() else x509.Name([])
    except DNError as exc:
        raise ValidationError(str(exc), field="subject_dn") from None
    if len(subject) == 0 and not (req.subject_alt_name or (csr is not None and _has_san(csr))):
        raise ValidationError("A certificate needs a subject DN or a subject alternative name.", field="subject_dn")
    if member_check and not req.self_signed and connection.vendor != "postgresql":
        # Issuing a role member's certificate would be joining the role (pki.auth.clientcert). On PostgreSQL the
        # same check is made by issuance_store.store, its query sent with the uniqueness reads (one round trip).
        from .auth.clientcert import require_may_issue_member_certificate

        require_may_issue_member_certificate(req.actor, req.ca, subject)
    return ca, profile, csr, public_key, subject, key_spec


def _csr_subject_dn(csr: x509.CertificateSigningRequest) -> str:
    try:
        return format_csr_subject(csr)
    except (KeyError, ValueError) as exc:  # not even asn1crypto makes a DN of it
        raise ValidationError(f"The request's subject cannot be read: {exc}", field="subject_dn") from None


def _has_san(csr: x509.CertificateSigningRequest) -> bool:
    try:
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return True
    except x509.ExtensionNotFound:
        return False


def _store_alone(item: Signed, savepoint: bool = True) -> None:
    # savepoint=False: straight in the caller's transaction (a refusal decided by a query leaves it usable).
    with transaction.atomic() if savepoint else contextlib.nullcontext():
        issuance_store.store([item])
        if item.refusal is not None:
            raise item.refusal
        transaction.on_commit(lambda row=item.row: certificate_issued.send(sender=Certificate, certificate=row))


_group = GroupCommit(lambda batch: issuance_store.store(batch))  # looked up per call (tests wrap it)


def _reset_group() -> None:
    global _group
    # A forked child must not inherit a condition held by a thread of its parent.
    _group = GroupCommit(lambda batch: issuance_store.store(batch))


os.register_at_fork(after_in_child=_reset_group)


def issue(req: IssuanceRequest) -> IssuedCertificate:
    """Issue a certificate for ``req``; raises a :class:`~pki.errors.PkiError` and stores nothing on refusal."""
    try:
        return _store_signed(_sign_request(req))
    except PkiError as exc:
        _record_refusal(req, exc)
        raise


def _record_refusal(req: IssuanceRequest, exc: PkiError) -> None:
    audit.record_failure(
        "CERT_CREATION", req.actor.name, exc.message, object_type="ca", object_id=req.ca.pk,
        details={"username": req.username, **req.audit_details},
    )


class Presigned:
    """A request checked, built and signed by :func:`presign` (steps 1-4 of :func:`issue`), not stored."""

    def __init__(self, req: IssuanceRequest, ca: CertificateAuthority, alias: str, key: Any,
                 token_version: tuple[int, int] | None, build: Callable[[Any, tuple[int, int] | None], Signed]):
        self.req, self.ca, self.alias, self.key, self.token_version = req, ca, alias, key, token_version
        self._build = build
        self.item = self.sign()
        self.member_subject: x509.Name | None = None  # the role member check _prepare left to the store

    def sign(self) -> Signed:
        """Sign again (a new serial) with the current key."""
        return self._build(self.key, self.token_version)


def presign(req: IssuanceRequest) -> Presigned | None:
    """Steps 1-4 of :func:`issue` (authorization, validation, building, the CA's signature), which write nothing,
    for a caller that then stores the result with :func:`issue_presigned` in a transaction that others wait for
    (SQLite's one write lock): nothing slow runs while it is held. None when the request is refused here: the
    caller then issues with :func:`issue` as usual, which refuses it again and records the refusal."""
    try:
        return _sign_request(req, presigning=True)
    except PkiError:
        return None


def issue_presigned(signed: Presigned, *, doomed_by_refusal: bool = False) -> IssuedCertificate:
    """Steps 5-6 of :func:`issue` for a :func:`presign` result: the uniqueness and token checks, the row, the audit
    event (the certificate is signed again, with a new serial, where issue would sign again: a serial collision, a
    token changed since).

    ``doomed_by_refusal``: the caller's transaction is rolled back whole on any refusal anyway (SCEP RA mode), so
    the store opens no savepoint of its own (two statements fewer, inside the caller's lock); a serial collision
    or a token changed since the signature is then a refusal to try again, not a second signature, and marks the
    caller's transaction for rollback (its event is kept where the caller holds failures past the rollback:
    :func:`pki.audit.failures_outlive_rollback`, as SCEP does)."""
    try:
        return _store_signed(signed, retry=not doomed_by_refusal)
    except PkiError as exc:
        _record_refusal(signed.req, exc)
        raise


def _sign_request(req: IssuanceRequest, presigning: bool = False) -> Presigned:
    # Presigning, the role member check is left to the storing transaction (a role changed meanwhile counts).
    ca, profile, csr, public_key, subject, key_spec = _prepare(req, member_check=not presigning)
    sig_alg = signature_algorithm(ca.signature_algorithm)
    if profile.allowed_signature_algorithms and ca.signature_algorithm not in profile.allowed_signature_algorithms:
        raise ValidationError(
            f"CA signature algorithm {ca.signature_algorithm} is not allowed by profile '{profile.name}'.",
            field="signature_algorithm",
        )
    if req.self_signed:
        ca_not_after = None
        issuer = subject
        issuer_dn = None
        issuer_key_id = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    else:
        if not ca.certificate_der:
            raise CAOfflineError(f"CA '{ca.name}' has no certificate yet.")
        info = _issuer(bytes(ca.certificate_der))
        ca_not_after = info.not_after
        if ca_not_after <= timezone.now():
            raise CAOfflineError(f"The certificate of CA '{ca.name}' has expired.")
        issuer, issuer_dn, issuer_key_id = info.name, info.dn, info.key_id
    not_before, not_after = _validity(req, profile, ca_not_after)
    extensions = _extensions(req, profile, ca, subject, public_key, csr, issuer_key_id)
    alias = req.key_alias or ca.key_alias
    key, token_version = _issuing_key(ca, alias, fresh=False)
    # ICAO CSCA/DS: a token set to "explicit ECC parameters" writes the curve out in the subject key.
    explicit_ec = isinstance(public_key, ec.EllipticCurvePublicKey) and ca.crypto_token.explicit_ecc_parameters
    subject_dn = format_dn(subject)
    if issuer_dn is None:
        issuer_dn = subject_dn
    san = ""
    for ext in extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName):
            san = format_altnames(ext.value)

    key_hash = public_key_sha256(public_key)
    conn = transaction.get_connection()  # once: each use of the module's proxy is a thread-local look-up
    member_subject = subject if not req.self_signed and conn.vendor == "postgresql" else None

    def sign(key, token_version: tuple[int, int] | None) -> Signed:
        serial = new_serial()
        builder = x509.CertificateBuilder(
            issuer_name=issuer, subject_name=subject, public_key=public_key, serial_number=serial,
            not_valid_before=not_before, not_valid_after=not_after, extensions=extensions,
        )
        try:
            cert = builder.sign(key, **sig_alg.builder_kwargs())
        except PkiError:
            raise
        except Exception as exc:  # the token failed to sign (HSM error, key gone, ...)
            logger.exception("Signing failed for CA %s", ca.name)
            raise CAOfflineError(f"CA '{ca.name}' could not sign: {exc.__class__.__name__}") from None
        der = cert.public_bytes(Encoding.DER)
        if explicit_ec:
            der = resign_with_explicit_key(der, lambda tbs: sig_alg.sign(key, tbs))
            cert = x509.load_der_x509_certificate(der)
        row = new_row(Certificate, {
            "serial": format(serial, "x"), "fingerprint_sha256": hashlib.sha256(der).hexdigest(),
            "subject_dn": subject_dn, "issuer_dn": issuer_dn, "subject_alt_name": san,
            "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc, "der": der,
            "username": req.username, "key_algorithm": key_spec, "is_ca": profile.is_ca,
            "public_key_sha256": key_hash, "end_entity_profile_id": req.end_entity_profile_id,
        }, {"ca": ca, "certificate_profile": profile})
        return Signed(req, row, cert, token_version, member_subject=member_subject)

    signed = Presigned(req, ca, alias, key, token_version, sign)
    if presigning and not req.self_signed and conn.vendor != "postgresql":
        signed.member_subject = subject
    return signed


def _store_signed(signed: Presigned, retry: bool = True) -> IssuedCertificate:
    req, ca = signed.req, signed.ca
    conn = transaction.get_connection()  # once: each use of the module's proxy is a thread-local look-up
    attempt, refreshed = 0, False
    item = signed.item
    if signed.member_subject is not None:
        from .auth.clientcert import require_may_issue_member_certificate

        require_may_issue_member_certificate(req.actor, ca, signed.member_subject)
    while True:
        try:
            # A call outside any transaction (autocommit on: the batch's commit is a real one) and with nothing
            # of its own to store joins the next group commit; anything else stores in (a savepoint of) the
            # caller's transaction.
            if (req.hooks.on_stored is not None or conn.in_atomic_block or not conn.get_autocommit()
                    or not _group.submit(item)):
                _store_alone(item, savepoint=retry)
            elif item.refusal is not None:
                raise item.refusal
            else:
                certificate_issued.send(sender=Certificate, certificate=item.row)
        except TokenChanged:
            if not retry:  # the row is in the caller's transaction: all of it must roll back
                transaction.set_rollback(True)
                raise CAOfflineError(f"The crypto token of CA '{ca.name}' changed while issuing; try again.") from None
            if refreshed:  # changed again right after it was read: not a state to sign in
                raise CAOfflineError(f"The crypto token of CA '{ca.name}' is changing; try again.") from None
            # Read afresh: an offline token refuses here (CAOfflineError); a changed key signs again.
            logger.info("Token of CA %s changed since its key was opened; signing again", ca.name)
            signed.key, signed.token_version = _issuing_key(ca, signed.alias, fresh=True)
            refreshed = True
            item = signed.sign()
            continue
        except IntegrityError:
            if not retry:
                transaction.set_rollback(True)
                raise ConflictError("The certificate could not be stored (a serial number taken meanwhile); try "
                                    "again.") from None
            attempt += 1
            if attempt == SERIAL_ATTEMPTS:
                raise
            logger.warning("Serial collision on CA %s; signing again with a new serial", ca.name)
            item = signed.sign()
            continue
        return IssuedCertificate(row=item.row, certificate=item.cert)

