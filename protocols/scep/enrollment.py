"""PKCSReq / RenewalReq on the server: CA mode, RA mode and client certificate renewal, all issuing through
:mod:`endentities.services` (and so through ``pki.issuance.issue``).

CA mode: the request's CN (or serialNumber, for Cisco IOS) is the username and its challengePassword the
enrollment code of a pre-registered end entity; ``endentities.services.enroll`` checks and uses the code.

RA mode: the challenge is checked by the alias's validator (RA shared secret, Intune, ...), the username
comes from the name generation scheme, and the end entity is created (or edited back to NEW) from the
alias's RA profiles and CA, then issued to. When the CA or certificate profile requires approval the
request waits (PENDING) in a core :class:`~pki.models.approvals.ApprovalRequest` instead.

Client certificate renewal (RFC 8894 Appendix D): with the alias's renewal on, a request signed by a
certificate this CA issued is a renewal of that certificate's end entity: allowed once the end entity's
newest certificate is past half its validity, with a new key unless the alias allows the old one.

Every refusal raises a :class:`~protocols.scep.messages.ScepFailure` (the caller answers a CertRep FAILURE)
and leaves the end entity as it was: the RA/renewal changes and the issuance share one transaction, and
only a wrong enrollment code's failed-login count (committed by ``enroll``) survives.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import transaction
from django.utils import timezone

from endentities import services as ee_services
from endentities.choices import EndEntityStatus, TokenType
from endentities.models import EndEntity
from endentities.validation import EndEntityInput
from pki import audit
from pki.choices import CertificateStatus
from pki.errors import PkiError
from pki.issuance import IssuedCertificate
from pki.models import Certificate
from pki.models.approvals import ApprovalStatus
from pki.randomtext import random_text
from pki.services import approvals as core_approvals
from pki.x509.altnames import format_altnames
from pki.x509.dn import DNError, checked_dn, format_dn, parse_dn_pairs

from . import approvals
from . import messages as m
from .actors import INTERFACE, scep_actor
from .models import NameGenerationScheme, ScepAlias
from .operations import Responder, find_certificate
from .validators import ChallengeContext, ChallengeRefused, validator_for

logger = logging.getLogger("protocols.scep.enrollment")
# The smallest RSA key a request may be signed with (the reply is encrypted to it) unless the certificate
# profile lists a smaller size explicitly.
MIN_SIGNER_RSA_BITS = 2048
_RANDOM_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Enrolled:
    """The outcome of a PKCSReq: a certificate, or None while the request waits for approval."""

    certificate: x509.Certificate | None


def _refused(alias: ScepAlias, username: str, reason: str, failure: type[m.ScepFailure]) -> m.ScepFailure:
    # A NUL from the request would make the audit row itself unwritable (PostgreSQL text and jsonb refuse it).
    reason, username = reason.replace("\x00", "\\0"), (username or "").replace("\x00", "\\0")[:255]
    audit.record_failure("SCEP_ENROLLMENT", f"scep:{alias.name}", reason, object_type="endentity",
                         object_id=username, details={"interface": INTERFACE})
    return failure(reason)


def _issue_refused(alias: ScepAlias, username: str, exc: PkiError) -> m.ScepFailure:
    logger.info("SCEP %s: enrollment of %r refused: %s", alias.name, username, exc.message)
    return _refused(alias, username, exc.message, m.BadRequest)


# --- usernames -----------------------------------------------------------------------------------------

def _random(n: int) -> str:
    return random_text(_RANDOM_ALPHABET, n)


def _affix(text: str) -> str:
    return text.replace("${RANDOM}", _random(10))


def generate_username(alias: ScepAlias, info: m.CsrInfo) -> str:
    """RA mode username: the scheme's name with the alias's prefix and postfix (``${RANDOM}`` in either
    is replaced by 10 random characters, as EJBCA does)."""
    scheme = alias.ra_name_generation_scheme
    params = alias.ra_name_generation_parameters or ""
    if scheme == NameGenerationScheme.RANDOM:
        base = _random(12)
    elif scheme == NameGenerationScheme.FIXED:
        base = params
    elif scheme == NameGenerationScheme.USERNAME:
        base = info.username or params
    else:  # DN: the first of the named DN parts ("CN;SN") present in the request's subject
        pairs = [pair for rdn in parse_dn_pairs(format_dn(info.subject)) for pair in rdn]
        base = ""
        for wanted in (p.strip().upper() for p in (params or "CN").split(";") if p.strip()):
            base = next((value for name, value in pairs if name.upper() == wanted), "")
            if base:
                break
    if not base:
        raise m.BadRequest(f"The request's subject has none of the DN parts '{params}' to name the end entity.")
    return f"{_affix(alias.ra_name_generation_prefix)}{base}{_affix(alias.ra_name_generation_postfix)}"


# --- renewal -------------------------------------------------------------------------------------------

def renewal_source(message: m.PkiMessage) -> Certificate | None:
    """The issued certificate that signed the request, when it is one of ours (else None: a self-signed or
    foreign signer makes an ordinary enrollment). A certificate with our issuer and serial but other bytes is
    forged: BadMessageCheck."""
    signer = message.signer_certificate
    if signer is None or signer.issuer == signer.subject:
        return None
    row = find_certificate(signer.issuer, signer.serial_number)
    if row is None:
        return None
    if bytes(row.der) != signer.public_bytes(Encoding.DER):
        raise m.BadMessageCheck("The signer certificate is not the one this CA issued with that serial number.")
    return row


def _spki(key) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def renew(alias: ScepAlias, responder: Responder, message: m.PkiMessage, source: Certificate, info: m.CsrInfo,
          username: str) -> Enrolled:
    """Client certificate renewal of the end entity that owns ``source`` (RFC 8894 Appendix D): signed by its
    current certificate, encrypted to its CA."""
    if source.is_revoked:
        raise _refused(alias, username, "The renewal is signed by a revoked certificate.", m.BadMessageCheck)
    if source.is_expired:
        raise _refused(alias, username, "The renewal is signed by an expired certificate.", m.BadMessageCheck)
    if source.username != username:
        raise _refused(alias, username, "The renewal is signed by another end entity's certificate.",
                       m.BadMessageCheck)
    ee = EndEntity.objects.filter(username=username).select_related("ca", "certificate_profile").first()
    if ee is None:
        raise _refused(alias, username, "The end entity of the signing certificate no longer exists.",
                       m.BadMessageCheck)
    if ee.ca_id != responder.ca.pk:  # issued by the end entity's CA: the request must be meant for that CA
        raise _refused(alias, username, f"The renewal is encrypted to CA '{responder.ca.name}', not to the end "
                       "entity's CA.", m.BadCertId)
    latest = (Certificate.objects.filter(username=username, ca_id=ee.ca_id, status=CertificateStatus.ACTIVE)
              .order_by("-not_after").first()) or source
    if latest.pk != source.pk:  # an older certificate may have been handed on or leaked with its key
        raise _refused(alias, username, "The renewal is signed by a superseded certificate; only the end "
                       "entity's current certificate may sign it.", m.BadMessageCheck)
    _check_signer_key(alias, message, username, ee.certificate_profile.allowed_rsa_sizes)
    half = latest.not_before + (latest.not_after - latest.not_before) / 2
    if timezone.now() < half:
        raise _refused(alias, username, "Too early for renewal: the newest certificate is not past half its "
                       "validity.", m.BadRequest)
    if _spki(info.csr.public_key()) == _spki(source.certificate.public_key()) \
            and not alias.allow_client_certificate_renewal_with_old_key:
        raise _refused(alias, username, "Renewal with the old key is not allowed by this alias.", m.BadRequest)
    actor = scep_actor(alias)
    try:
        with transaction.atomic(), audit.combined("CERT_CREATION"):
            ee_services.set_status(actor, username, EndEntityStatus.NEW)
            issued = ee_services.enroll_with_ra(actor, username, csr=info.der, interface=INTERFACE)
    except PkiError as exc:
        raise _issue_refused(alias, username, exc) from None
    return Enrolled(issued.certificate)


# --- CA mode -------------------------------------------------------------------------------------------

def enroll_ca_mode(alias: ScepAlias, responder: Responder, message: m.PkiMessage, info: m.CsrInfo) -> Enrolled:
    """Authenticate with the end entity's enrollment code and issue (the code is then used up)."""
    username = info.username or ""
    if not username:
        raise _refused(alias, "", "The request's subject has neither CN nor serialNumber to name the user.",
                       m.BadRequest)
    ca_id, sizes = EndEntity.objects.filter(username=username).values_list(
        "ca_id", "certificate_profile__allowed_rsa_sizes").first() or (None, ())
    if ca_id is not None and ca_id != responder.ca.pk:
        raise _refused(alias, username, f"The end entity is not registered with CA '{responder.ca.name}'.",
                       m.BadRequest)
    _check_signer_key(alias, message, username, sizes)
    try:
        issued = ee_services.enroll(username, info.challenge_password, csr=info.der, interface=INTERFACE,
                                    actor=scep_actor(alias))
    except PkiError as exc:
        raise _issue_refused(alias, username, exc) from None
    return Enrolled(issued.certificate)


# --- RA mode -------------------------------------------------------------------------------------------

def _subject_alt_name(csr: x509.CertificateSigningRequest) -> str:
    try:
        return format_altnames(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return ""


def ra_input(alias: ScepAlias, responder: Responder, info: m.CsrInfo, username: str) -> tuple[EndEntityInput, object]:
    """The end entity an RA-mode request makes: the request's subject and alt names, the alias's profiles and CA."""
    profile = ee_services.get_end_entity_profile(alias.ra_end_entity_profile)
    data = EndEntityInput(
        username=username,
        # No enrollment code: the RA secret or validator already authenticated the request, and hashing a code
        # nobody will type would cost more than the rest of the enrollment, inside its write transaction.
        ra_authenticated=True,
        subject_dn=format_dn(info.subject), subject_alt_name=_subject_alt_name(info.csr),
        ca=responder.ca, certificate_profile=alias.ra_certificate_profile, token_type=TokenType.USERGENERATED,
    )
    return data, profile


def register_and_issue(alias: ScepAlias, data: EndEntityInput, profile,
                       csr: bytes | x509.CertificateSigningRequest, approval=None,
                       prepared: Callable[[], IssuedCertificate] | None = None):
    """Create (or edit back to NEW) the end entity and issue to it, in one transaction; an approved request
    that this issuance fulfils is marked with the certificate. ``prepared``: the new end entity's enrollment from
    :func:`prepare_ra_enrollment` (checked and signed already: it only writes here).

    Inside a caller's transaction this opens no savepoint (two statements, two round trips on PostgreSQL, per
    enrollment): a refusal after the first write dooms that transaction, and the caller rolls all of it back,
    its refusal's audit events kept by :func:`pki.audit.failures_outlive_rollback` (see ``pkioperation``)."""
    actor = scep_actor(alias)
    # One audit event (CERT_CREATION, with the end entity's creation or edit in it) at the end: the chain head
    # is then locked for one statement and the commit, not through the whole issuance.
    # Approval was decided before (none needed, or ``approval`` is the approved request).
    checked = core_approvals.executing(approval) if approval is not None else core_approvals.checked()
    with transaction.atomic(savepoint=False), audit.combined("CERT_CREATION"), checked:
        try:  # usually a new device: its row is written once, as the enrollment leaves it
            issued = prepared() if prepared is not None else ee_services.add_and_enroll_with_ra(
                actor, data, profile=profile, csr=csr, interface=INTERFACE)
        except ee_services.EndEntityExists:  # the database said the name is taken; nothing was written
            # (What ``prepared`` signed is dropped: the edited end entity is issued to as it now is.)
            ee = ee_services.edit_end_entity(actor, data.username, data, profile=profile,
                                             status=EndEntityStatus.NEW)
            # The row was just written in this transaction (and so is locked by it): no need to read it again.
            issued = ee_services.enroll_with_ra(actor, data.username, csr=csr, interface=INTERFACE, entity=ee)
        if approval is not None:
            type(approval).objects.filter(pk=approval.pk).update(certificate=issued.row)
        return issued


def prepare_ra_enrollment(alias: ScepAlias, data: EndEntityInput, profile,
                          csr: x509.CertificateSigningRequest) -> Callable[[], IssuedCertificate] | None:
    """A new device's end entity and certificate checked, built and signed before the enrollment's transaction
    (:func:`endentities.services.prepare_add_and_enroll_with_ra`), which then only writes: on SQLite that
    transaction holds the database's one write lock, which every other enrollment waits for. None when refused
    here: :func:`register_and_issue` then does all of it in the transaction, refusing it there as before."""
    try:
        with core_approvals.checked():  # called when no approval is required (see check_ra_mode)
            return ee_services.prepare_add_and_enroll_with_ra(scep_actor(alias), data, profile=profile, csr=csr,
                                                              interface=INTERFACE)
    except PkiError:
        return None


def check_ra_mode(alias: ScepAlias, responder: Responder, message: m.PkiMessage, info: m.CsrInfo,
                  username: str) -> Callable[[], Enrolled]:
    """RA mode's checks, which write nothing the enrollment needs: the challenge (RA shared secret or validator),
    the signer's key, the end entity the request makes and whether its CA or certificate profile requires
    approval. Returns the enrollment itself, to be called in the caller's transaction."""
    ctx = ChallengeContext(transaction_id=message.transaction_id, challenge_password=info.challenge_password or "",
                           csr_der=info.der, username=username)
    try:
        validator = validator_for(alias)
        validator.validate(ctx)
    except ChallengeRefused as exc:
        raise _refused(alias, username, f"Challenge refused: {exc}", m.BadRequest) from None
    except PkiError as exc:  # a validator class that cannot be loaded any more
        raise _refused(alias, username, f"Challenge not checked: {exc.message}", m.BadRequest) from None
    certificate_profile = alias.ra_certificate_profile
    _check_signer_key(alias, message, username, certificate_profile.allowed_rsa_sizes if certificate_profile else ())
    data, profile = ra_input(alias, responder, info, username)
    # The alias cache read the requirement of its RA CA and profile with the alias (one statement less).
    required = getattr(alias, "ra_approval_required", None)
    if required is None or responder.ca.pk != alias.ra_default_ca_id:
        required = approvals.required(responder.ca, alias.ra_certificate_profile)
    prepared = prepare_ra_enrollment(alias, data, profile, info.csr) if not required else None

    def enroll() -> Enrolled:
        approval = None
        if required:
            approval = approvals.approved_for(alias, username)
            if approval is None:
                issued = approvals.issued_for(alias, info.der)
                if issued is not None:  # approved and issued before: the same request gets the same certificate
                    return Enrolled(issued)
                approval_profile = approvals.profile_for(responder.ca, alias.ra_certificate_profile)
                if approval_profile is not None:
                    waiting = approvals.submit(alias, message.transaction_id, data, profile, info.der,
                                               approval_profile)
                    if waiting.status != ApprovalStatus.WAITING or waiting.is_expired:
                        # The same transaction sent again after a rejection, an expiry or a failed execution.
                        raise _refused(alias, username, f"The request was {waiting.get_status_display().lower()}"
                                       f"{'' if waiting.status != ApprovalStatus.WAITING else ' (expired)'}.",
                                       m.BadRequest)
                    return Enrolled(None)
        try:
            # The request as parsed and verified by the message layer: issuance need not parse it again.
            cert = register_and_issue(alias, data, profile, info.csr, approval, prepared).certificate
        except PkiError as exc:
            validator.notify_failure(ctx, exc.message)
            raise _issue_refused(alias, username, exc) from None
        validator.notify_success(ctx, cert.public_bytes(Encoding.DER))
        return Enrolled(cert)

    return enroll


def enroll_ra_mode(alias: ScepAlias, responder: Responder, message: m.PkiMessage, info: m.CsrInfo,
                   username: str) -> Enrolled:
    """RA mode in one step: :func:`check_ra_mode`, then the enrollment."""
    return check_ra_mode(alias, responder, message, info, username)()


# --- entry point ---------------------------------------------------------------------------------------

def _check_signer_key(alias: ScepAlias, message: m.PkiMessage, username: str, allowed_sizes) -> None:
    """The signer's key is the one the reply is encrypted to (RSA: checked with the envelope). Under
    :data:`MIN_SIGNER_RSA_BITS` only when the certificate profile explicitly allows that size."""
    size = getattr(message.signer_certificate.public_key(), "key_size", 0)
    if size < MIN_SIGNER_RSA_BITS and size not in (allowed_sizes or ()):
        raise _refused(alias, username, f"The request is signed with a {size}-bit RSA key; the certificate "
                       f"profile allows no RSA key under {MIN_SIGNER_RSA_BITS} bits.", m.BadAlg)


def _check_request(alias: ScepAlias, message: m.PkiMessage, content: bytes) -> m.CsrInfo:
    """The PKCS#10 request, refused (and audited) before anything reads the database with it: unreadable, a
    subject that no row can hold (NUL, too long), or self-signed by another key than the request's."""
    try:
        info = m.parse_csr(content, message=message)
    except m.ScepFailure as failure:
        raise _refused(alias, "", failure.text, type(failure)) from None
    try:
        checked_dn(info.subject)
    except (DNError, ValueError, KeyError) as exc:
        raise _refused(alias, "", f"The request's subject is refused: {exc}", m.BadRequest) from None
    signer = message.signer_certificate
    if signer.issuer == signer.subject and _spki(signer.public_key()) != _spki(info.csr.public_key()):
        # RFC 8894 section 2.3: a self-signed signer certificate is for the key being certified.
        raise _refused(alias, info.username or "", "The request is signed by a self-signed certificate of "
                       "another key than the request's.", m.BadMessageCheck)
    return info


def prepare(alias: ScepAlias, responder: Responder, message: m.PkiMessage,
            content: bytes) -> Callable[[], Enrolled]:
    """PKCSReq / RenewalReq in two steps: the checks that write nothing the enrollment needs run now (the request
    itself; in RA mode also the challenge and the end entity's data, see :func:`check_ra_mode`), and the returned
    function enrolls, in the caller's transaction. That transaction may hold the database's only write lock
    (SQLite) and holds the transaction's row: nothing that can run before it should run inside it (a challenge
    validator may even call out over the network). Refusals are raised (and audited) by either step."""
    info = _check_request(alias, message, content)
    if alias.ra_mode and not alias.client_certificate_renewal and message.message_type == m.MessageType.PKCS_REQ:
        return check_ra_mode(alias, responder, message, info, generate_username(alias, info))
    return lambda: _enroll_checked(alias, responder, message, info)


def _enroll_checked(alias: ScepAlias, responder: Responder, message: m.PkiMessage, info: m.CsrInfo) -> Enrolled:
    source = renewal_source(message) if alias.client_certificate_renewal else None
    if source is not None:
        username = generate_username(alias, info) if alias.ra_mode else (info.username or "")
        return renew(alias, responder, message, source, info, username)
    if message.message_type == m.MessageType.RENEWAL_REQ:
        raise _refused(alias, info.username or "", "RenewalReq needs a certificate of this CA and the alias's "
                       "client certificate renewal.", m.BadRequest)
    if alias.ra_mode:
        return enroll_ra_mode(alias, responder, message, info, generate_username(alias, info))
    return enroll_ca_mode(alias, responder, message, info)


def pkcs_req(alias: ScepAlias, responder: Responder, message: m.PkiMessage, content: bytes) -> Enrolled:
    """PKCSReq / RenewalReq: renewal, CA mode or RA mode (:func:`prepare` and the enrollment in one step)."""
    return prepare(alias, responder, message, content)()
