"""Certificate authorities: create (root or sub), import for trust, renew (same or new key, rollover)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.db import IntegrityError, transaction
from django.utils import timezone

from cryptotokens import services as token_services
from cryptotokens.backends import KeySpec
from cryptotokens.errors import CryptoTokenError, KeyPairNotFoundError, UnsupportedKeySpecError
from cryptotokens.models import CryptoToken, CryptoTokenKeyPair

from .. import audit
from ..auth.access import Actor
from ..choices import CAStatus, ProfileType
from ..crl import create_crl
from ..errors import ConflictError, NotFoundError, PkiError, ValidationError, as_pki_error
from ..forbidden import check_forbidden, forbidden_characters
from ..ids import is_db_id
from ..issuance import IssuanceRequest, issue
from ..models import CACertificate, CertificateAuthority, CertificateProfile
from ..models.approvals import ApprovalAction
from ..x509.algorithms import check_key_matches, default_signature_algorithm, signature_algorithm
from ..x509.dn import DNError, format_dn, parse_dn, parse_dn_pairs
from ..x509.validity import ValidityError, parse_validity
from . import approvals
from .profiles import get_profile


@dataclass
class CASettings:
    """What an operator fills in for a new CA (see the CA form)."""

    name: str
    subject_dn: str
    crypto_token: CryptoToken
    key_alias: str
    key_spec: str | None = None  # generate the key pair under key_alias when given
    signed_by: CertificateAuthority | None = None
    validity: str = "10y"
    signature_algorithm: str | None = None
    certificate_profile: str | None = None  # ROOTCA / SUBCA by default
    crl_period: timedelta = timedelta(days=1)
    crl_overlap: timedelta = timedelta(minutes=10)
    delta_crl_period: timedelta = timedelta(0)
    crl_distribution_point: str = ""
    ocsp_url: str = ""
    ca_issuers_url: str = ""
    description: str = ""
    is_default: bool = False
    # EJBCA's defaults for a new CA: unique public keys and DN on, unique DN serialNumber off.
    enforce_unique_public_keys: bool = True
    enforce_unique_dn: bool = True
    enforce_unique_dn_serial_number: bool = False


def get_ca(ref: str | int) -> CertificateAuthority:
    """A CA by id, name or subject DN."""
    qs = CertificateAuthority.objects.select_related("crypto_token", "signed_by")
    try:
        if is_db_id(ref):
            return qs.get(pk=int(ref))
        ca = qs.filter(name=ref).first()
        if ca is None:
            ca = qs.filter(subject_dn=ref).first()
        if ca is None:
            try:
                ca = qs.filter(subject_dn=format_dn(parse_dn(str(ref)))).first()
            except DNError:
                ca = None
        if ca is None:
            raise CertificateAuthority.DoesNotExist
        return ca
    except CertificateAuthority.DoesNotExist:
        raise NotFoundError(f"CA '{ref}' does not exist.") from None


def default_ca() -> CertificateAuthority | None:
    return CertificateAuthority.objects.filter(is_default=True).first()


def _record_ca_certificate(ca: CertificateAuthority, cert: x509.Certificate, alias: str, activate_at: datetime) -> None:
    CACertificate.objects.create(
        ca=ca, certificate_der=cert.public_bytes(serialization.Encoding.DER), key_alias=alias,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(), not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc, activate_at=activate_at,
    )


def _first_crls(actor: Actor, ca: CertificateAuthority) -> None:
    """The CA's first full CRL, and its first delta when delta CRLs are on, signed with its current key.

    Called inside the transaction that creates or renews the CA: every certificate it issues names a CRL
    distribution point, which must answer from the first second (a 404 there makes relying parties that check
    revocation reject the certificate). The caller authorized the CA operation, which includes its CRL.
    """
    crl_actor = Actor.system_actor(actor.name)
    create_crl(crl_actor, ca)
    if ca.delta_crl_period:
        create_crl(crl_actor, ca, delta=True)


def _key_pair(actor: Actor, token: CryptoToken, alias: str, key_spec: str | None) -> CryptoTokenKeyPair:
    """The key pair ``alias``: generated when ``key_spec`` is given; otherwise the registered one, or a key already
    on the token's device (an HSM label, a KMS alias, a vault key) that is registered now, without leaving it."""
    try:
        if key_spec:
            return token_services.generate_key_pair(actor, token, alias, key_spec)
        entry = CryptoTokenKeyPair.objects.filter(token=token, alias=alias).first()
        if entry is not None:
            return entry
        return token_services.adopt_key_pair(actor, token, alias)
    except KeyPairNotFoundError:
        raise ValidationError(f"No key pair '{alias}' on crypto token '{token.name}', neither registered nor on its "
                              "device.", field="key_alias") from None
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None


def _check_before_key(actor: Actor, settings: CASettings) -> tuple[str, CertificateProfile]:
    """Every check that needs no key, made before a key is generated or adopted: a refused CA leaves nothing
    behind on the token. Returns the normalized subject DN and the CA certificate profile."""
    if not settings.name or not settings.name.strip():
        raise ValidationError("A CA name is required.", field="name")
    if CertificateAuthority.objects.filter(name=settings.name).exists():
        raise ConflictError(f"A CA named '{settings.name}' already exists.", field="name")
    try:
        subject_dn = format_dn(parse_dn(settings.subject_dn))
        pairs = [pair for rdn in parse_dn_pairs(settings.subject_dn) for pair in rdn]
    except DNError as exc:
        raise ValidationError(str(exc), field="subject_dn") from None
    bad = forbidden_characters()
    for key, value in pairs:  # the same forbidden characters as an end entity's DN
        check_forbidden(value, f"Subject DN field '{key}'", "subject_dn", bad)
    if CertificateAuthority.objects.filter(subject_dn=subject_dn).exists():
        raise ConflictError(f"A CA with subject DN '{subject_dn}' already exists.", field="subject_dn")
    profile = get_profile(
        settings.certificate_profile or ("SUBCA" if settings.signed_by is not None else "ROOTCA")
    )
    if profile.profile_type == ProfileType.ENDENTITY:
        raise ValidationError(f"Profile '{profile.name}' is not a CA profile.", field="certificate_profile")
    now = timezone.now()
    try:
        if parse_validity(settings.validity, now) <= now:
            raise ValidityError("The validity must end after it starts.")
    except ValidityError as exc:
        raise ValidationError(str(exc), field="validity") from None
    if settings.crl_period <= timedelta(0) or settings.crl_overlap < timedelta(0) or (
            settings.delta_crl_period < timedelta(0)):
        raise ValidationError("CRL periods must be positive and the overlap not negative.", field="crl_period")
    signer = settings.signed_by
    if signer is not None and (signer.status != CAStatus.ACTIVE or not signer.certificate_der
                               or signer.crypto_token_id is None):
        raise ValidationError(f"CA '{signer.name}' cannot sign a sub-CA: it is not an active CA with a key here.",
                              field="signed_by")
    try:
        sig = signature_algorithm(settings.signature_algorithm) if settings.signature_algorithm else None
    except ValueError as exc:
        raise ValidationError(str(exc), field="signature_algorithm") from None
    token = settings.crypto_token
    try:
        token_services.auth_code_of(CryptoToken.objects.get(pk=token.pk))  # offline: refused before any key work
        if settings.key_spec:
            spec = KeySpec.parse(settings.key_spec)
            token_services.backend_for(token).supported(spec)
            if sig is not None and sig.key_algorithm != spec.algorithm:
                raise ValidationError(f"Signature algorithm {sig.name} needs a {sig.key_algorithm} key, not "
                                      f"{spec.algorithm}.", field="signature_algorithm")
            if CryptoTokenKeyPair.objects.filter(token=token, alias=settings.key_alias).exists():
                raise ValidationError(f"Key pair alias '{settings.key_alias}' already exists on crypto token "
                                      f"'{token.name}': choose 'use an existing key pair' or another alias.",
                                      field="key_alias")
    except UnsupportedKeySpecError as exc:
        raise ValidationError(str(exc), field="key_spec") from None
    except CryptoTokenError as exc:
        raise as_pki_error(exc) from None
    return subject_dn, profile


def create_ca(actor: Actor, settings: CASettings) -> CertificateAuthority:
    """Create a root CA (self-signed) or a sub-CA signed by a local CA, on a key in a crypto token.

    ``settings.key_spec`` set: a new key pair is generated under ``settings.key_alias``. ``key_spec`` None: the
    key pair ``key_alias`` is used — a registered one, or a key already on the token's device (HSM label, KMS
    alias, Key Vault key name), which is registered on the way (``ca init --existingkey <alias>``). Everything that
    can be checked without the key is checked first; a refusal is audited (CA_CREATION, FAILURE) even though the
    transaction that tried it rolls back, and a key generated for the refused CA is removed again.
    """
    actor.require("/ca_functionality/create_ca")
    actor.require(f"/cryptotoken/use/{settings.crypto_token.pk}")
    if settings.signed_by is not None:
        actor.require(f"/ca/{settings.signed_by.pk}")
    with audit.failures_outlive_rollback():
        try:
            return _create_ca(actor, settings)
        except PkiError as exc:
            audit.record_failure("CA_CREATION", actor.name, exc.message, object_type="ca",
                                 details={"name": settings.name, "subject": settings.subject_dn,
                                          "token": settings.crypto_token.name, "key_alias": settings.key_alias})
            raise


def _create_ca(actor: Actor, settings: CASettings) -> CertificateAuthority:
    subject_dn, profile = _check_before_key(actor, settings)
    key_pair = _key_pair(actor, settings.crypto_token, settings.key_alias, settings.key_spec)

    def discard(reason: str) -> None:
        if settings.key_spec:  # do not leave a key behind for a CA that was refused
            token_services.discard_key_pair(settings.crypto_token, key_pair, actor, reason=reason)

    public_key = serialization.load_der_public_key(bytes(key_pair.public_key_der))
    sig_name = settings.signature_algorithm or default_signature_algorithm(public_key)
    try:
        check_key_matches(signature_algorithm(sig_name), public_key)
    except ValueError as exc:
        discard(f"CA '{settings.name}' refused")
        raise ValidationError(str(exc), field="signature_algorithm") from None
    try:
        with transaction.atomic():
            ca = CertificateAuthority.objects.create(
                name=settings.name, subject_dn=subject_dn, status=CAStatus.ACTIVE,
                description=settings.description, crypto_token=settings.crypto_token,
                key_alias=settings.key_alias, signed_by=settings.signed_by, certificate_profile=profile,
                signature_algorithm=sig_name, validity=settings.validity, crl_period=settings.crl_period,
                crl_overlap=settings.crl_overlap, delta_crl_period=settings.delta_crl_period,
                crl_distribution_point=settings.crl_distribution_point, ocsp_url=settings.ocsp_url,
                ca_issuers_url=settings.ca_issuers_url, is_default=False,
                enforce_unique_public_keys=settings.enforce_unique_public_keys,
                enforce_unique_dn=settings.enforce_unique_dn,
                enforce_unique_dn_serial_number=settings.enforce_unique_dn_serial_number,
            )
            issuer = settings.signed_by or ca
            issued = _ca_issuance(issuer, actor, profile, public_key, subject_dn, settings.validity,
                                  settings.key_alias, settings.name)
            ca.certificate_der = issued.row.der
            ca.save(update_fields=["certificate_der", "updated_at"])
            _record_ca_certificate(ca, issued.certificate, settings.key_alias, timezone.now())
            if settings.is_default:
                set_default_ca(actor, ca)
            _first_crls(actor, ca)
            audit.record("CA_CREATION", actor.name, object_type="ca", object_id=ca.pk,
                         details={"name": ca.name, "subject": subject_dn, "token": settings.crypto_token.name,
                                  "key_alias": settings.key_alias, "signed_by": issuer.name},
                         in_transaction=True)
    except IntegrityError:
        discard(f"CA '{settings.name}' refused")
        raise ConflictError(f"A CA named '{settings.name}' already exists.", field="name") from None
    except Exception:
        discard(f"CA '{settings.name}' refused")
        raise
    return ca


def _ca_issuance(issuer: CertificateAuthority, actor: Actor, profile, public_key, subject_dn: str,
                 validity: str, key_alias: str, ca_name: str, self_signed: bool | None = None):
    """Issue a CA certificate through the one pipeline. The caller has authorized the CA operation; the
    CA's own validity applies, bounded by the CA profile's."""
    from ..issuance import IssuanceHooks
    from ..models import CertificateProfile

    effective = CertificateProfile(**{
        f.name: getattr(profile, f.name) for f in CertificateProfile._meta.concrete_fields if f.name != "id"
    })
    effective.pk = profile.pk
    effective.allow_validity_override = True
    if self_signed is None:
        self_signed = issuer.certificate_der is None
    return issue(IssuanceRequest(
        ca=issuer, actor=actor, profile=effective, public_key=public_key, subject_dn=subject_dn,
        validity=validity, self_signed=self_signed, key_alias=key_alias if self_signed else None,
        hooks=IssuanceHooks(authorize=lambda req: None), audit_details={"ca": ca_name},
    ))


@transaction.atomic
def set_default_ca(actor: Actor, ca: CertificateAuthority) -> None:
    """Make ``ca`` the one used by SCEP and REST when a request names none."""
    actor.require("/ca_functionality/edit_ca")
    CertificateAuthority.objects.filter(is_default=True).exclude(pk=ca.pk).update(is_default=False)
    CertificateAuthority.objects.filter(pk=ca.pk).update(is_default=True)
    ca.is_default = True
    audit.record("CA_EDITING", actor.name, object_type="ca", object_id=ca.pk, details={"default": True},
                 in_transaction=True)


EDITABLE_CA_FIELDS = (
    "description", "validity", "crl_period", "crl_overlap", "delta_crl_period", "crl_distribution_point",
    "ocsp_url", "ca_issuers_url", "signature_algorithm", "status",
    "enforce_unique_public_keys", "enforce_unique_dn", "enforce_unique_dn_serial_number",
)


@transaction.atomic
def edit_ca(actor: Actor, ca: CertificateAuthority, **changes) -> CertificateAuthority:
    actor.require("/ca_functionality/edit_ca")
    actor.require(f"/ca/{ca.pk}")
    unknown = set(changes) - set(EDITABLE_CA_FIELDS) - {"is_default"}
    if unknown:
        raise ValidationError(f"Cannot edit {', '.join(sorted(unknown))} of a CA.")
    if "signature_algorithm" in changes and ca.certificate is not None:
        try:
            check_key_matches(signature_algorithm(changes["signature_algorithm"]), ca.certificate.public_key())
        except ValueError as exc:
            raise ValidationError(str(exc), field="signature_algorithm") from None
    if changes.get("status") not in (None, CAStatus.ACTIVE, CAStatus.OFFLINE) or (
        "status" in changes and ca.is_external
    ):
        raise ValidationError("A CA's status can only be switched between active and offline.", field="status")
    make_default = changes.pop("is_default", None)
    for k, v in changes.items():
        setattr(ca, k, v)
    ca.save()
    if make_default:
        set_default_ca(actor, ca)
    audit.record("CA_EDITING", actor.name, object_type="ca", object_id=ca.pk,
                 details={k: str(v) for k, v in changes.items()}, in_transaction=True)
    return ca


def set_ca_active(actor: Actor, ca: CertificateAuthority, active: bool) -> CertificateAuthority:
    """Put a CA on line (ACTIVE) or off line (OFFLINE), as EJBCA's activate/deactivate CA service.

    Needs ``/ca_functionality/activate_ca`` and the CA's own rule. An external CA has no service to switch,
    and a revoked or expired CA cannot be activated. Switching to the state the CA is already in succeeds
    and changes nothing (EJBCA answers the same), but is still audited so the attempt is on record.
    """
    actor.require("/ca_functionality/activate_ca")
    actor.require(f"/ca/{ca.pk}")
    if active and ca.status == CAStatus.OFFLINE:  # EJBCA's "CA Service Activation" may need approval (raises)
        approvals.gate(actor, ApprovalAction.CA_ACTIVATION, "activate_ca", ca=ca, data={"name": ca.name})
    with transaction.atomic():
        locked = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
        if locked.is_external or locked.crypto_token_id is None:
            raise ValidationError(f"CA '{locked.name}' is external: it has no CA service to activate or "
                                  "deactivate.", field="ca_name")
        if locked.status not in (CAStatus.ACTIVE, CAStatus.OFFLINE):
            raise ValidationError(f"CA '{locked.name}' is {locked.status.lower()} and cannot be "
                                  f"{'activated' if active else 'deactivated'}.", field="ca_name")
        before = locked.status
        locked.status = CAStatus.ACTIVE if active else CAStatus.OFFLINE
        if locked.status != before:
            locked.save(update_fields=["status", "updated_at"])
        audit.record("CA_SERVICEACTIVATE" if active else "CA_SERVICEDEACTIVATE", actor.name, object_type="ca",
                     object_id=locked.pk, details={"name": locked.name, "from": before, "to": locked.status},
                     in_transaction=True)
    ca.status = locked.status
    return locked


def _load_chain(data: bytes) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ValidationError("Not a certificate or PEM certificate chain.", field="certificate") from None
    return certs


@transaction.atomic
def import_ca(actor: Actor, name: str, certificate_chain: bytes) -> CertificateAuthority:
    """Import an external CA's certificate (chain, CA first) for trust only: no key, no issuance."""
    actor.require("/ca_functionality/create_ca")
    certs = _load_chain(certificate_chain)
    cert = certs[0]
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ValidationError("The certificate is not a CA certificate (basic constraints cA is not set).",
                              field="certificate")
    known = CACertificate.objects.filter(fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex()).first()
    if known is not None:
        raise ConflictError(f"This certificate is already known as CA '{known.ca.name}'.", field="certificate")
    if CertificateAuthority.objects.filter(name=name).exists():
        raise ConflictError(f"A CA named '{name}' already exists.", field="name")
    subject_dn = format_dn(cert.subject)
    limit = CertificateAuthority._meta.get_field("subject_dn").max_length
    if len(subject_dn) > limit:
        raise ValidationError(f"The CA certificate's subject DN is {len(subject_dn)} characters long; a CA's subject "
                              f"DN here holds at most {limit}.", field="certificate")
    if CertificateAuthority.objects.filter(subject_dn=subject_dn).exists():
        raise ConflictError(f"A CA with subject DN '{subject_dn}' already exists.", field="subject_dn")
    der = cert.public_bytes(serialization.Encoding.DER)
    ca = CertificateAuthority.objects.create(
        name=name, subject_dn=subject_dn, status=CAStatus.EXTERNAL, certificate_der=der,
        external_chain=[c.public_bytes(serialization.Encoding.DER).hex() for c in certs[1:]],
        signature_algorithm="", validity="",
    )
    _record_ca_certificate(ca, cert, "", timezone.now())
    audit.record("CA_IMPORT", actor.name, object_type="ca", object_id=ca.pk,
                 details={"name": name, "subject": subject_dn}, in_transaction=True)
    return ca


def renew_ca(
    actor: Actor,
    ca: CertificateAuthority,
    *,
    new_key_alias: str | None = None,
    new_key_spec: str | None = None,
    activate_at: datetime | None = None,
) -> CertificateAuthority:
    """Renew a CA's certificate with its current key or a new one. With ``activate_at`` in the future
    the new certificate is a rollover certificate, published by SCEP GetNextCACert until it activates."""
    actor.require("/ca_functionality/renew_ca")
    actor.require(f"/ca/{ca.pk}")
    if ca.is_external or ca.crypto_token is None:
        raise ValidationError(f"CA '{ca.name}' is external and cannot be renewed here.")
    alias = new_key_alias or ca.key_alias
    key_pair = _key_pair(actor, ca.crypto_token, alias, new_key_spec if new_key_alias else None)
    public_key = serialization.load_der_public_key(bytes(key_pair.public_key_der))
    profile = ca.certificate_profile or get_profile("SUBCA" if ca.signed_by_id else "ROOTCA")
    now = timezone.now()
    with transaction.atomic():
        locked = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
        issuer = locked.signed_by or locked
        self_signed = locked.signed_by_id is None
        if self_signed:
            issued = _ca_issuance(locked, actor, profile, public_key, locked.subject_dn, locked.validity, alias,
                                  locked.name, self_signed=True)
        else:
            issued = _ca_issuance(issuer, actor, profile, public_key, locked.subject_dn, locked.validity, alias,
                                  locked.name, self_signed=False)
        der = issued.row.der
        if activate_at and activate_at > now:
            locked.rollover_certificate_der = der
            locked.rollover_key_alias = alias
            locked.rollover_at = activate_at
            event_details = {"rollover_at": activate_at.isoformat()}
        else:
            locked.certificate_der = der
            locked.key_alias = alias
            locked.rollover_certificate_der = None
            locked.rollover_key_alias = ""
            locked.rollover_at = None
            event_details = {}
        locked.save()
        _record_ca_certificate(locked, issued.certificate, alias, activate_at or now)
        if not locked.rollover_at:
            _first_crls(actor, locked)  # signed by the new certificate (and key) from now on
        audit.record("CA_RENEWAL", actor.name, object_type="ca", object_id=ca.pk,
                     details={"key_alias": alias, "new_key": alias != ca.key_alias, **event_details},
                     in_transaction=True)
    return locked


def apply_due_rollover(ca: CertificateAuthority) -> bool:
    """Switch to the rollover certificate once its time has come. Returns True when it switched."""
    if not ca.rollover_due():
        return False
    with transaction.atomic():
        locked = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
        if not locked.rollover_due():
            return False
        locked.certificate_der = locked.rollover_certificate_der
        locked.key_alias = locked.rollover_key_alias
        locked.rollover_certificate_der = None
        locked.rollover_key_alias = ""
        locked.rollover_at = None
        locked.save()
        _first_crls(Actor.system_actor("system"), locked)  # the next CRLs come from the new key
        audit.record("CA_ROLLOVER", "system", object_type="ca", object_id=ca.pk,
                     details={"key_alias": locked.key_alias}, in_transaction=True)
    ca.refresh_from_db()
    return True
