"""EJBCA's "pkcs10enroll": enroll a PKCS#10 request for a username, adding or editing the end entity first.

* The end entity exists and the caller may edit it (``/ra_functionality/edit_end_entity``, the profile's
  ``edit_end_entity``, the CA's rule): as EJBCA's ``createCertificateRest``, the end entity is edited to the
  request (the CSR's subject DN and alt names, the given profiles, CA and e-mail, the given password, status
  NEW: every end entity profile rule is checked again) and issued to in one transaction, so a renewal or a
  second certificate for the same username works every time, and a refused request changes nothing.
* The end entity exists and the caller may not edit it: the request is an enrollment with its username and
  enrollment code (every rule of :func:`~endentities.services.enrollment.enroll`: status, one-time code,
  failed-login counter); the caller must also be allowed the end entity's CA (``/ca/<id>``); a caller who is
  not gets the same answer as for an unknown name with a wrong code (403 "Wrong username or enrollment
  code."), as does a caller who may not add end entities asking for a name that does not exist: no answer
  tells a caller which names exist.
* It does not exist: the caller adds it (``create_end_entity`` rules) with the CSR's subject DN and alt
  names, the given profiles, CA and e-mail, and issues to it as an RA operator in the same transaction
  (``/ca_functionality/create_certificate`` too; the code it has just set needs no second check), so a
  refused request leaves no end entity behind.
"""

from __future__ import annotations

import dataclasses

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.db import transaction

from pki import audit
from pki.auth.access import Actor
from pki.errors import PkiError, ValidationError
from pki.issuance import IssuedCertificate, load_csr
from pki.x509.altnames import format_altnames
from pki.x509.dn import format_dn

from ..choices import EndEntityStatus, TokenType
from ..models import EndEntity
from . import approvals
from .common import PROFILE_ACTIONS, RA_RULES
from .enrollment import EnrolledKeystore, deny_as_unknown, enroll, enroll_keystore, enroll_with_ra
from .entities import add_end_entity, edit_end_entity, new_end_entity, set_password, set_status

# Extended information carried over unchanged when an enrollment edits an end entity.
_KEPT_EXTENDED = ("validity_start", "validity_end", "custom_extension_data", "psd2_nca_name", "psd2_nca_id",
                  "cabf_organization_identifier")


def _csr_alt_names(csr: x509.CertificateSigningRequest) -> str:
    try:
        return format_altnames(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return ""


def may_edit(actor: Actor, profile_id: int, ca_id: int) -> bool:
    """Whether ``actor`` holds every rule an edit of an end entity of this profile and CA needs."""
    return (actor.is_allowed(RA_RULES["edit"]) and actor.is_allowed(f"/ca/{ca_id}")
            and actor.is_allowed(f"/endentityprofilesrules/{profile_id}/{PROFILE_ACTIONS['edit']}"))


def input_from_entity(ee: EndEntity, **changes):
    """An :class:`~endentities.validation.EndEntityInput` that keeps everything ``ee`` holds (its extended
    information included), with ``changes`` applied: an edit that changes only what ``changes`` names."""
    from ..validation import EndEntityInput

    info = ee.extended_information or {}
    values = {
        "username": ee.username, "subject_dn": ee.subject_dn, "subject_alt_name": ee.subject_alt_name,
        "email": ee.email, "ca": ee.ca, "certificate_profile": ee.certificate_profile, "token_type": ee.token_type,
        "revocation_reason": info.get("revocation_reason"), "psd2_roles": list(info.get("psd2_roles") or []),
        "allowed_requests": ee.allowed_requests, "max_failed_logins": ee.max_failed_logins,
        "key_recoverable": ee.key_recoverable, "send_notification": ee.send_notification,
        "clear_password": bool(ee.clear_password) or None,
        **{key: str(info.get(key) or "") for key in _KEPT_EXTENDED},
    }
    values.update(changes)
    return EndEntityInput(**values)


def enroll_pkcs10(actor: Actor, csr_data: bytes | str, *, username: str, password: str | None,
                  ca: str | None = None, certificate_profile: str | None = None,
                  end_entity_profile: str | None = None, email: str = "", interface: str = "rest",
                  ) -> IssuedCertificate:
    """Issue for ``csr_data`` to ``username`` (see the module docstring)."""
    from ..validation import EndEntityInput

    if not username:
        raise ValidationError("username is required.", field="username")
    if not password:
        raise ValidationError("password is required.", field="password")
    csr = load_csr(csr_data)  # a bad request is refused before anything is looked up or written
    existing = EndEntity.objects.filter(username=username).values_list("ca_id", "end_entity_profile_id").first()
    if existing is not None:
        ca_id, profile_id = existing
        if not actor.is_allowed(f"/ca/{ca_id}"):
            # Refused as an unknown name would be: the caller learns neither that it exists nor its CA.
            raise deny_as_unknown(username, password, interface=interface, actor_name=actor.name,
                                  reason=f"caller not authorized to /ca/{ca_id}")
        if may_edit(actor, profile_id, ca_id):
            return _edit_and_enroll(actor, csr, username=username, password=password, ca=ca,
                                    certificate_profile=certificate_profile, end_entity_profile=end_entity_profile,
                                    email=email, interface=interface)
        return enroll(username, password, csr=csr, interface=interface, actor=actor)
    if not actor.is_allowed(RA_RULES["create"]):
        # A caller who may not add end entities would otherwise hear "not authorized" for new names only.
        raise deny_as_unknown(username, password, interface=interface, actor_name=actor.name,
                              reason="unknown end entity (caller may not add end entities)")
    data = EndEntityInput(
        username=username, password=password, subject_dn=format_dn(csr.subject),
        subject_alt_name=_csr_alt_names(csr), email=email or "", ca=ca or None,
        certificate_profile=certificate_profile or None, token_type=TokenType.USERGENERATED,
    )
    if approvals.needs_approval(data, end_entity_profile or None):  # stored for approval instead (raises)
        checked = new_end_entity(actor, dataclasses.replace(data), profile=end_entity_profile or None)
        approvals.gate_add(actor, data, end_entity_profile or None, operation="enroll_pkcs10",
                           csr_der=csr.public_bytes(Encoding.DER), interface=interface, checked=checked)
    try:
        with transaction.atomic():
            add_end_entity(actor, data, profile=end_entity_profile or None)
            return enroll_with_ra(actor, username, csr=csr, interface=interface)
    except PkiError as exc:
        # The transaction (end entity, certificate and the audit events in it) rolled back: say so once more.
        audit.record_failure("RA_ADDENDENTITY", actor.name, exc.message, object_type="endentity",
                             object_id=username, details={"interface": interface})
        raise


def _edit_and_enroll(actor: Actor, csr: x509.CertificateSigningRequest, *, username: str, password: str,
                     ca: str | None, certificate_profile: str | None, end_entity_profile: str | None, email: str,
                     interface: str) -> IssuedCertificate:
    """EJBCA's add-or-edit for an existing end entity: the request's subject, alt names, profiles, CA, e-mail and
    password, status NEW, then issue; one transaction (a refused issuance leaves the end entity as it was)."""
    approvals.gate_edit(  # the edit may need approval: stored with the CSR instead (raises), finalize issues it
        actor, username, lambda: input_from_entity(
            EndEntity.objects.select_related("ca", "certificate_profile").get(username=username),
            password=password, subject_dn=format_dn(csr.subject), subject_alt_name=_csr_alt_names(csr),
            token_type=TokenType.USERGENERATED, **({"email": email} if email else {}),
            **({"ca": ca} if ca else {}), **({"certificate_profile": certificate_profile} if certificate_profile
                                             else {})),
        end_entity_profile or None, EndEntityStatus.NEW, interface, operation="edit_enroll_pkcs10",
        csr_der=csr.public_bytes(Encoding.DER), target=(ca, certificate_profile))
    try:
        with transaction.atomic():
            current = (EndEntity.objects.select_for_update(of=("self",))
                       .select_related("ca", "certificate_profile", "end_entity_profile").get(username=username))
            changes = {"password": password, "subject_dn": format_dn(csr.subject),
                       "subject_alt_name": _csr_alt_names(csr), "token_type": TokenType.USERGENERATED}
            if email:
                changes["email"] = email
            if ca:
                changes["ca"] = ca
            if certificate_profile:
                changes["certificate_profile"] = certificate_profile
            if end_entity_profile and end_entity_profile not in (current.end_entity_profile.name,
                                                                 str(current.end_entity_profile_id)):
                changes.update(allowed_requests=None, max_failed_logins=None)  # the new profile's defaults
            ee = edit_end_entity(actor, username, input_from_entity(current, **changes),
                                 profile=end_entity_profile or None, status=EndEntityStatus.NEW)
            return enroll_with_ra(actor, username, csr=csr, interface=interface, entity=ee)
    except PkiError as exc:
        audit.record_failure("RA_EDITENDENTITY", actor.name, exc.message, object_type="endentity",
                             object_id=username, details={"interface": interface})
        raise


def enroll_keystore_rest(actor: Actor, username: str, password: str | None, *, key_alg: str | None,
                         key_spec: str | None, interface: str = "rest") -> EnrolledKeystore:
    """REST ``enrollkeystore``: a caller who may edit the end entity re-enrolls it every time (status NEW and the
    given password, which protects the keystore, then issue, in one transaction); any other caller enrolls with
    the enrollment code (one-time rules). A caller without the end entity's CA hears what an unknown name hears."""
    if not password:
        raise ValidationError("The keystore password (the end entity's password) is required.", field="password")
    existing = EndEntity.objects.filter(username=username).values_list("ca_id", "end_entity_profile_id").first()
    if existing is not None and not actor.is_allowed(f"/ca/{existing[0]}"):
        raise deny_as_unknown(username, password, interface=interface, actor_name=actor.name,
                              reason=f"caller not authorized to /ca/{existing[0]}")
    if existing is None or not may_edit(actor, existing[1], existing[0]):
        return enroll_keystore(username, password, key_alg=key_alg, key_spec=key_spec, interface=interface,
                               actor=actor)
    try:
        with transaction.atomic():
            set_status(actor, username, EndEntityStatus.NEW)
            set_password(actor, username, password)
            return enroll_keystore(username, password, key_alg=key_alg, key_spec=key_spec, interface=interface,
                                   actor=actor, with_ra=True)
    except PkiError as exc:
        audit.record_failure("RA_EDITENDENTITY", actor.name, exc.message, object_type="endentity",
                             object_id=username, details={"interface": interface})
        raise
