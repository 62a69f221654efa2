"""Enrollment: issuing a certificate to a registered end entity, through :func:`pki.issuance.issue`.

Two ways in:

* :func:`enroll` — the end entity itself, with its username and enrollment code (REST pkcs10enroll,
  SCEP, the RA portal's "Enroll with username"). The code is one-time:

  - the status must be NEW, FAILED or INPROCESS (EJBCA accepts the last two so an interrupted
    enrollment can be retried), or GENERATED within the profile's "renewal before expiration" window;
  - a wrong code increments the failed-login counter in its own committed transaction, and at the
    profile's maximum the status becomes GENERATED (the code is then dead); the enrollment is refused;
  - success decrements the request counter, resets the failed-login counter and sets GENERATED when no
    requests remain (NEW while some do). This update runs in the issuance transaction (the ``on_stored``
    hook) with the row locked (``select_for_update``) and re-checked there: of two concurrent
    enrollments with the same code, the second finds the status changed and its certificate rolls back,
    so exactly one certificate is stored.

* :func:`enroll_with_ra` — an RA operator or admin issues for an end entity without its code
  (``/ca/<id>``, ``/ca_functionality/create_certificate``, ``/endentityprofilesrules/<id>/create_end_entity``).

:func:`enroll_keystore` generates the key pair on the server and returns it in the end entity's token format
(P12, JKS, PEM, BCFKS), built inside the issuing transaction so a keystore failure stores no certificate.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cryptotokens.backends.base import KeySpec
from cryptotokens.errors import CryptoTokenError
from pki import audit
from pki.auth.access import Actor
from pki.choices import CertificateStatus
from pki.db import update_row
from pki.errors import ConflictError, PkiError, ValidationError
from pki.issuance import IssuanceHooks, IssuanceRequest, IssuedCertificate, issue, issue_presigned
from pki.issuance import presign as presign_issue
from pki.models import Certificate

from ..choices import ENROLLABLE_STATUSES, EndEntityStatus, TokenType
from ..models import EndEntity, EndEntityProfile
from ..subject import needs_redaction
from .common import AUDIT_EDIT, notify_status_change
from .entities import EndEntityExists, insert_if_new, new_end_entity, record_added
from .passwords import check_password, hash_password

logger = logging.getLogger("endentities.enrollment")


class EnrollmentDenied(PkiError):
    """Wrong username or enrollment code, or an end entity that may not enroll now. The message never says
    which of username and code was wrong."""

    http_status = 403
    error_code = "ENROLLMENT_DENIED"


@dataclass
class _Authenticated:
    """What authentication found; ``on_stored`` re-checks it with the row locked."""

    ee: EndEntity
    password_hash: str | None  # None: an RA operator enrolls without the code
    renewal: bool
    # ``ee`` was written by the caller in the issuing transaction: its row is locked by that write and the
    # instance is the row, so ``on_stored`` need not lock and read it again.
    current: bool = False


def _latest_active_certificate(ee: EndEntity) -> Certificate | None:
    return (Certificate.objects.filter(username=ee.username, ca_id=ee.ca_id, status=CertificateStatus.ACTIVE)
            .order_by("-not_after").first())


def renewal_allowed(ee: EndEntity, now: datetime | None = None) -> bool:
    """GENERATED, and the profile allows renewal this many 24-hour periods before its newest certificate expires."""
    profile = ee.end_entity_profile
    if ee.status != EndEntityStatus.GENERATED or not profile.renewal_before_expiration_use:
        return False
    latest = _latest_active_certificate(ee)
    if latest is None:
        return False
    now = now or timezone.now()
    return latest.not_after > now and latest.not_after - now <= timedelta(days=profile.renewal_days_before_expiration)


def _may_enroll(ee: EndEntity) -> bool:
    return ee.status in ENROLLABLE_STATUSES and ee.request_counter > 0


def _refuse_status(ee: EndEntity) -> EnrollmentDenied:
    return EnrollmentDenied(
        f"End entity '{ee.username}' has status {ee.status_name}: enrollment needs status NEW "
        "(or FAILED/INPROCESS), with requests remaining."
    )


def _count_failed_login(ee: EndEntity, actor_name: str, interface: str) -> None:
    """One more wrong code (row locked by the caller); at the profile's maximum the code stops working."""
    ee.failed_login_count += 1
    fields = ["failed_login_count", "updated_at"]
    old_status = ee.status
    limit = ee.max_failed_logins
    if limit is not None and limit >= 0 and ee.failed_login_count >= limit:
        ee.status = EndEntityStatus.GENERATED
        fields.append("status")
    ee.save(update_fields=fields)
    audit.record_failure(
        "RA_AUTHENTICATION", actor_name, "wrong enrollment code", object_type="endentity", object_id=ee.username,
        details={"interface": interface, "failed_logins": ee.failed_login_count,
                 "status": EndEntityStatus(ee.status).name},
    )
    if ee.status != old_status:
        notify_status_change(ee, old_status)


WRONG_CODE = "Wrong username or enrollment code."
_dummy_hashes: dict[int, str] = {}


def _spend_a_check(password: str | None) -> None:
    """Check ``password`` against a hash nobody has, at the configured rounds: an unknown username (or one
    without a code) then takes as long to refuse as a wrong code, so timing does not tell them apart."""
    rounds = int(getattr(settings, "PKI_ENROLLMENT_CODE_ITERATIONS", 100_000))
    encoded = _dummy_hashes.get(rounds)
    if encoded is None:
        encoded = _dummy_hashes.setdefault(rounds, hash_password(secrets.token_urlsafe(16)))
    check_password(password or "", encoded)


def deny_as_unknown(username: str, password: str | None, *, interface: str, actor_name: str,
                    reason: str) -> EnrollmentDenied:
    """The refusal an unknown username gets (same text, status and cost as a wrong code), for callers that
    must not say more about ``username`` (it exists but the caller may not use it, ...). ``reason`` goes to
    the audit log only."""
    _spend_a_check(password)
    audit.record_failure("RA_AUTHENTICATION", actor_name or f"{interface}:{username}", reason,
                         object_type="endentity", object_id=username, details={"interface": interface})
    logger.info("enrollment of %r over %s refused: %s", username, interface, reason)
    return EnrollmentDenied(WRONG_CODE)


def authenticate(username: str, password: str | None, *, interface: str, actor_name: str = "") -> _Authenticated:
    """Check the enrollment code; a wrong one is counted (committed) before the refusal is raised.

    Whoever does not know the code learns nothing about the end entity: unknown, wrong code and a wrong code
    of an end entity that may not enroll now all answer :data:`WRONG_CODE` after one hash check. Only the
    right code hears why it cannot be used (its status)."""
    actor_name = actor_name or f"{interface}:{username}"
    refusal: PkiError | None = None
    reason = ""  # what the audit log says (more than the caller hears)
    counted = False  # a wrong code: audited in the counting transaction already
    renewal = False
    with transaction.atomic():
        ee = (EndEntity.objects.select_for_update(of=("self",))
              .select_related("end_entity_profile", "ca", "certificate_profile").filter(username=username).first())
        if ee is None:
            _spend_a_check(password)
            refusal, reason = EnrollmentDenied(WRONG_CODE), "unknown end entity"
        else:
            enrollable = _may_enroll(ee) or renewal_allowed(ee)
            if ee.password_hash:
                right = check_password(password, ee.password_hash)
            else:
                _spend_a_check(password)
                right = False
            if not right and enrollable:
                _count_failed_login(ee, actor_name, interface)
                counted = True
                refusal = EnrollmentDenied(WRONG_CODE)
            elif not right:  # a dead code is not counted: there is nothing left to lock
                refusal = EnrollmentDenied(WRONG_CODE)
                reason = f"wrong enrollment code (status {ee.status_name})"
            elif not enrollable:
                refusal = _refuse_status(ee)
            else:
                renewal = not _may_enroll(ee)
    if refusal is not None:  # raised outside the atomic block: the counter update above commits
        if not counted:
            audit.record_failure("RA_AUTHENTICATION", actor_name, reason or refusal.message, object_type="endentity",
                                 object_id=username, details={"interface": interface})
        raise refusal
    return _Authenticated(ee=ee, password_hash=ee.password_hash, renewal=renewal)


def resolve_time(text: str | None, now: datetime, field: str) -> datetime | None:
    """An end entity's validity start/end: absolute, or ``days:hours:minutes`` from the moment of issuance."""
    from ..extended import parse_validity_time

    return parse_validity_time(str(text), now, field) if text else None


def _custom_extension_values(ee: EndEntity) -> dict[str, str]:
    """``OID.value=...`` lines of the end entity's extension data, each matched to a dynamic custom extension
    of the certificate profile; data no configured extension takes is refused (as EJBCA does)."""
    data: dict[str, str] = ee.extended_information.get("extension_data") or {}
    if not data:
        return {}
    dynamic = {c["oid"] for c in ee.certificate_profile.custom_extensions or [] if c.get("dynamic")}
    values: dict[str, str] = {}
    for key, value in data.items():
        oid = key[: -len(".value")] if key.endswith(".value") else key
        if oid not in dynamic:
            raise ValidationError(
                f"Extension data '{key}' matches no dynamic custom extension of certificate profile "
                f"'{ee.certificate_profile.name}'.", field="extension_data")
        values[oid] = value
    return values


def _extra_extensions(ee: EndEntity) -> list[x509.Extension]:
    """Extensions the end entity profile's validation computed (PSD2 QC statement, CA/B Forum organization
    identifier), stored as DER hex in the extended information."""
    out = []
    for item in ee.extended_information.get("extensions_der") or []:
        oid = x509.ObjectIdentifier(item["oid"])
        out.append(x509.Extension(oid, bool(item.get("critical")),
                                  x509.UnrecognizedExtension(oid, bytes.fromhex(item["value"]))))
    return out


def _finish(req: IssuanceRequest, row: Certificate, auth: _Authenticated, interface: str,
            actor: Actor, after: Any = None) -> None:
    """``on_stored``: update the end entity in the issuing transaction, re-checked with its row locked."""
    if auth.current:
        ee = auth.ee
    else:
        ee = EndEntity.objects.select_for_update(of=("self",)).select_related("end_entity_profile").get(
            pk=auth.ee.pk)
    if auth.password_hash is not None and ee.password_hash != auth.password_hash:
        raise ConflictError("The enrollment code was changed while the certificate was being issued.", field="password")
    if auth.renewal:
        if ee.status != EndEntityStatus.GENERATED:
            raise ConflictError(f"End entity '{ee.username}' changed status during the enrollment.")
    elif not _may_enroll(ee):
        # The concurrent request that got here first used the code (or the last allowed request).
        raise ConflictError(f"The enrollment code of '{ee.username}' has been used already (status "
                            f"{ee.status_name}).", field="password")
    old_status = ee.status
    if auth.renewal:
        ee.failed_login_count = 0
        if ee.status == EndEntityStatus.GENERATED:
            ee.clear_password = ""
    else:
        _use_request(ee)
    # One prepared UPDATE (as save(update_fields=...), without the ORM's per-call query building: hot path).
    update_row(ee, ("failed_login_count", "request_counter", "status", "clear_password", "updated_at"))
    _enrolled(req, row, ee, old_status, interface, actor, after)


def _use_request(ee: EndEntity) -> None:
    """The end entity's state after a (non-renewal) enrollment: one request fewer, GENERATED when none remain."""
    ee.failed_login_count = 0
    ee.request_counter -= 1
    ee.status = EndEntityStatus.GENERATED if ee.request_counter <= 0 else EndEntityStatus.NEW
    if ee.status == EndEntityStatus.GENERATED:
        # The recoverable copy served batch generation; renewal checks the hash, which stays.
        ee.clear_password = ""


def _enrolled(req: IssuanceRequest, row: Certificate, ee: EndEntity, old_status: int, interface: str,
              actor: Actor, after: Any = None) -> None:
    """After the end entity's row holds its new state, in the issuing transaction: the profile's revocation
    after issuance, the status change's audit event and notifications, the caller's ``after``."""
    reason = ee.extended_information.get("revocation_reason")
    if reason not in (None, "", -1):
        from pki.revocation import revoke

        # "Revocation reason to set after issuance" (e.g. certificateHold): a rule of the profile, not the caller's.
        revoke(Actor.system_actor("issuance"), row, int(reason))
    if ee.status != old_status:
        audit.record(AUDIT_EDIT, actor.name, object_type="endentity", object_id=ee.username,
                     details={"status": ee.status_name, "previous_status": EndEntityStatus(old_status).name,
                              "cause": "enrollment", "interface": interface, "certificate": row.serial},
                     in_transaction=True)
        notify_status_change(ee, old_status)
    if after is not None:
        after(req, row)


def _build_request(ee: EndEntity, actor: Actor, csr, public_key, auth: _Authenticated | None, interface: str,
                   authorize, after=None, on_stored=None) -> IssuanceRequest:
    cp = ee.certificate_profile
    now = timezone.now().replace(microsecond=0)
    info = ee.extended_information or {}
    not_before = not_after = None
    if cp.allow_validity_override:  # otherwise the certificate profile's validity applies, as in EJBCA
        not_before = resolve_time(info.get("validity_start"), now, "validity_start")
        not_after = resolve_time(info.get("validity_end"), not_before or now, "validity_end")
    # The registered DN and alt names go in the certificate; the CSR's only where the profile allows overriding.
    subject_dn = None if (cp.allow_dn_override and csr is not None) else ee.subject_dn
    san: str | None = ee.subject_alt_name
    if not san and cp.allow_extension_override and csr is not None:
        san = None
    req = IssuanceRequest(
        ca=ee.ca, actor=actor, profile=cp, csr=csr, public_key=public_key, subject_dn=subject_dn,
        subject_alt_name=san, username=ee.username,
        not_before=not_before, not_after=not_after,
        custom_extension_values=_custom_extension_values(ee), extra_extensions=_extra_extensions(ee),
        audit_details={"end_entity_profile": ee.end_entity_profile.name, "interface": interface},
        redact_subject=needs_redaction(ee.end_entity_profile), end_entity_profile_id=ee.end_entity_profile_id,
    )
    req.hooks = IssuanceHooks(authorize=authorize,
                              on_stored=on_stored or (lambda r, row: _finish(r, row, auth, interface, actor, after)))
    return req


def _check_token(ee: EndEntity, server_key: bool) -> None:
    """A key from the client only for USERGENERATED end entities (EJBCA's WrongTokenTypeException); the others
    get their key generated here, in their keystore format."""
    if not server_key and ee.token_type != TokenType.USERGENERATED:
        raise ValidationError(
            f"End entity '{ee.username}' has token type {TokenType(ee.token_type).name}: its key is generated on "
            "the server (enroll for a keystore), not sent in a certificate request.", field="token")


def enroll(username: str, password: str | None, *, csr=None, public_key: CertificatePublicKeyTypes | None = None,
           interface: str, actor: Actor | None = None, after=None, server_key: bool = False) -> IssuedCertificate:
    """Issue a certificate to ``username`` authenticated by its enrollment code (one-time, see the module doc).

    ``csr`` (PKCS#10, PEM/DER/object) or ``public_key`` gives the key; ``interface`` (``rest``, ``scep``,
    ``ra``...) is recorded in the audit log; ``actor`` is the calling admin or client, if any, for the audit
    log only (the code is the authorization). ``after(request, row)`` runs inside the issuing transaction.
    ``server_key``: the key was generated here for a keystore (otherwise the end entity must be USERGENERATED).
    """
    name = actor.name if actor else f"{interface}:{username}"
    auth = authenticate(username, password, interface=interface, actor_name=name)
    who = actor or Actor(name=name, kind="enrollment")
    _check_token(auth.ee, server_key)
    req = _build_request(auth.ee, who, csr, public_key, auth, interface, authorize=lambda r: None, after=after)
    return issue(req)


def _ra_authorize(actor: Actor, ee: EndEntity):
    def check(req: IssuanceRequest) -> None:
        actor.require(f"/ca/{ee.ca_id}")
        actor.require("/ca_functionality/create_certificate")
        actor.require(f"/endentityprofilesrules/{ee.end_entity_profile_id}/create_end_entity")
    return check


def enroll_with_ra(actor: Actor, username: str, *, csr=None, public_key: CertificatePublicKeyTypes | None = None,
                   interface: str = "ra", after=None, server_key: bool = False,
                   entity: EndEntity | None = None) -> IssuedCertificate:
    """An authorized RA operator issues for ``username`` without the enrollment code (status rules still apply).

    ``entity``: the end entity as returned by :func:`add_end_entity` / :func:`edit_end_entity` earlier in the
    caller's (still open) transaction, which then holds its row lock; it is used instead of reading the row
    twice more (SCEP RA mode adds and issues per request)."""
    current = entity is not None and entity.username == username and transaction.get_connection().in_atomic_block
    ee = entity if current else (
        EndEntity.objects.select_related("end_entity_profile", "ca", "certificate_profile")
        .filter(username=username).first())
    if ee is None:
        from pki.errors import NotFoundError

        raise NotFoundError(f"End entity '{username}' does not exist.")
    _ra_authorize(actor, ee)(None)  # refuse before looking at the status
    _check_token(ee, server_key)
    renewal = False
    if not _may_enroll(ee):
        if not renewal_allowed(ee):
            raise _refuse_status(ee)
        renewal = True
    auth = _Authenticated(ee=ee, password_hash=None, renewal=renewal, current=current)
    return issue(_build_request(ee, actor, csr, public_key, auth, interface, _ra_authorize(actor, ee), after))


def add_and_enroll_with_ra(actor: Actor, data, *, profile: EndEntityProfile | str | int | None = None, csr=None,
                           public_key: CertificatePublicKeyTypes | None = None,
                           interface: str = "ra") -> IssuedCertificate:
    """:func:`~endentities.services.add_end_entity` then :func:`enroll_with_ra`, with the same checks, audit events
    and notifications, inside the caller's transaction (required: a refused issuance must take the new row with
    it). The row is written once, already in the state the enrollment leaves it in (no one else can see it
    before the commit anyway): one INSERT instead of a savepoint, an INSERT, its release and an UPDATE.

    Raises :class:`~endentities.services.entities.EndEntityExists` when the username is taken, before anything
    is written or recorded, so the caller can go on in the same transaction (SCEP RA mode then edits that end
    entity back to NEW and enrolls it).
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("add_and_enroll_with_ra runs inside the caller's transaction.")
    return _add_and_enroll(actor, data, profile, csr, public_key, interface, presign=False)()


def prepare_add_and_enroll_with_ra(actor: Actor, data, *, profile: EndEntityProfile | str | int | None = None,
                                   csr=None, public_key: CertificatePublicKeyTypes | None = None,
                                   interface: str = "ra") -> Callable[[], IssuedCertificate]:
    """:func:`add_and_enroll_with_ra` in two steps: what writes nothing runs now, outside any transaction (the end
    entity built and checked against its profile and the caller's rights, the certificate built and signed:
    :func:`pki.issuance.presign`), and the returned function writes, inside the caller's transaction (the end
    entity's row, its event, the certificate's checks, row and event), with the same outcomes, except that a serial
    collision or a token changed since the signature is refused (try again) instead of signed again: the store
    opens no savepoint, as any refusal rolls the caller's transaction back. For a caller whose transaction holds a
    lock every other writer waits for (SCEP RA mode on SQLite): only the writes hold it.

    Refusals are raised by either step (a refusal of the certificate by the returned function, as
    :func:`add_and_enroll_with_ra` raises it); the returned function raises ``EndEntityExists`` before writing."""
    return _add_and_enroll(actor, data, profile, csr, public_key, interface, presign=True)


def _add_and_enroll(actor: Actor, data, profile, csr, public_key, interface: str,
                    presign: bool) -> Callable[[], IssuedCertificate]:
    new = new_end_entity(actor, data, profile=profile)
    ee = new.ee
    authorize = _ra_authorize(actor, ee)
    authorize(None)  # as enroll_with_ra: refuse before looking at the status
    _check_token(ee, False)
    if not _may_enroll(ee):  # a profile that allows no request at all
        raise _refuse_status(ee)
    added = ee.status
    _use_request(ee)

    def stored(req: IssuanceRequest, row: Certificate) -> None:
        _enrolled(req, row, ee, added, interface, actor)

    req = _build_request(ee, actor, csr, public_key, None, interface, authorize, on_stored=stored)
    # Refused when signing: issue() below refuses it again, in the caller's transaction, and records it.
    signed = presign_issue(req) if presign else None

    def write() -> IssuedCertificate:
        if not transaction.get_connection().in_atomic_block:
            raise transaction.TransactionManagementError("The enrollment runs inside the caller's transaction.")
        if not insert_if_new(ee):
            raise EndEntityExists(ee.username)
        record_added(actor, new, status=added)
        # A refusal rolls the caller's whole transaction back (the row above with it): no savepoint of its own.
        return issue_presigned(signed, doomed_by_refusal=True) if signed is not None else issue(req)

    return write


# --- server-side key generation --------------------------------------------------------------------

_EC_NAMES = {"secp256r1": "P-256", "prime256v1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def key_spec_from(key_alg: str | None, key_spec: str | None) -> KeySpec:
    """EJBCA's REST ``key_alg`` (RSA, EC/ECDSA, Ed25519) and ``key_spec`` (2048, secp256r1, P-256) as a KeySpec."""
    alg = (key_alg or "RSA").strip().upper()
    spec = (key_spec or "").strip()
    try:
        if alg == "RSA":
            return KeySpec.parse(f"RSA{spec or '2048'}")
        if alg in {"EC", "ECDSA"}:
            return KeySpec.parse(_EC_NAMES.get(spec.lower(), spec or "P-256"))
        if alg in {"ED25519", "ED448"}:
            return KeySpec.parse(alg)
    except CryptoTokenError as exc:
        raise ValidationError(str(exc), field="key_spec") from None
    raise ValidationError(f"Unknown key algorithm '{key_alg}' (RSA, EC, Ed25519, Ed448).", field="key_alg")


def _check_generated_key(ee: EndEntity, spec: KeySpec) -> None:
    """The certificate profile's key rules, applied before a key is generated for it."""
    cp = ee.certificate_profile
    ok = spec.algorithm in (cp.allowed_key_algorithms or [])
    if ok and spec.algorithm == "RSA":
        ok = spec.size in (cp.allowed_rsa_sizes or [])
    elif ok and spec.algorithm == "EC":
        ok = spec.curve in (cp.allowed_curves or [])
    if not ok:
        raise ValidationError(f"Key {spec} is not allowed by certificate profile '{cp.name}'.", field="key_spec")


@dataclass
class EnrolledKeystore:
    """A server-generated key, its certificate and the keystore that carries them (never stored here)."""

    issued: IssuedCertificate
    token_type: TokenType
    keystore: bytes
    chain: list[x509.Certificate]

    @property
    def response_format(self) -> str:
        return self.token_type.response_format


def enroll_keystore(username: str, password: str | None, *, key_alg: str | None = None, key_spec: str | None = None,
                    interface: str, actor: Actor | None = None, with_ra: bool = False,
                    token_type: TokenType | None = None) -> EnrolledKeystore:
    """Generate a key pair, enroll it, and return the keystore protected by the end entity password.

    ``with_ra``: ``actor`` is an RA operator enrolling without the code; ``password`` then only protects the
    keystore. The end entity's token type decides the format unless ``token_type`` is given.
    """
    from ..keystores import build_keystore

    if not password:  # before anything is looked up: the answer must not depend on whether the name exists
        raise ValidationError("The keystore password (the end entity's password) is required.", field="password")
    auth: _Authenticated | None = None
    if with_ra:
        if actor is None:
            raise ValidationError("An RA enrollment needs the operator.", field="actor")
        ee = EndEntity.objects.select_related("ca", "certificate_profile", "end_entity_profile").filter(
            username=username).first()
        if ee is None:
            raise EnrollmentDenied(WRONG_CODE)
        # Key generation is the costly part: refuse what cannot succeed before doing it (the enrollment
        # re-checks everything with the row locked).
        if not _may_enroll(ee) and not renewal_allowed(ee):
            raise _refuse_status(ee)
    else:
        # The code first (counted when wrong, one answer for unknown names): nothing about the end entity is
        # said, and no key is generated, for a caller who does not know it.
        name = actor.name if actor else f"{interface}:{username}"
        auth = authenticate(username, password, interface=interface, actor_name=name)
        ee = auth.ee
    kind = TokenType(token_type if token_type is not None else ee.token_type)
    if kind == TokenType.USERGENERATED:
        raise ValidationError(f"End entity '{username}' has token type USERGENERATED: send a certificate request "
                              "instead of asking for a keystore.", field="token")
    spec = key_spec_from(key_alg, key_spec)
    _check_generated_key(ee, spec)
    private_key: PrivateKeyTypes = spec.generate_software_key()
    out: dict[str, Any] = {}

    def build(req: IssuanceRequest, row: Certificate) -> None:
        cert = x509.load_der_x509_certificate(bytes(row.der))
        chain = row.ca.chain() if hasattr(row.ca, "chain") else []
        out["chain"] = chain
        out["keystore"] = build_keystore(kind, private_key, cert, chain, password, alias=username)

    if auth is None:
        issued = enroll_with_ra(actor, username, public_key=private_key.public_key(), interface=interface,
                                after=build, server_key=True)
    else:
        who = actor or Actor(name=f"{interface}:{username}", kind="enrollment")
        # The code was checked above: issue with that authentication (re-checked with the row locked on storing).
        issued = issue(_build_request(ee, who, None, private_key.public_key(), auth, interface,
                                      authorize=lambda r: None, after=build))
    return EnrolledKeystore(issued=issued, token_type=kind, keystore=out["keystore"], chain=out["chain"])
