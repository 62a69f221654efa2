"""EJBCA's "pkcs10enroll": enroll a PKCS#10 request for a username, adding the end entity when it is new.

* The end entity exists: the request is an enrollment with its username and enrollment code (every rule of
  :func:`~endentities.services.enrollment.enroll`: status, one-time code, failed-login counter); the caller
  must also be allowed the end entity's CA (``/ca/<id>``); a caller who is not gets the same answer as for an
  unknown name with a wrong code (403 "Wrong username or enrollment code."), as does a caller who may not add
  end entities asking for a name that does not exist: no answer tells a caller which names exist.
* It does not exist: the caller adds it (``create_end_entity`` rules) with the CSR's subject DN and alt
  names, the given profiles, CA and e-mail, and issues to it as an RA operator in the same transaction
  (``/ca_functionality/create_certificate`` too; the code it has just set needs no second check), so a
  refused request leaves no end entity behind.
"""

from __future__ import annotations

from cryptography import x509
from django.db import transaction

from pki import audit
from pki.auth.access import Actor
from pki.errors import PkiError, ValidationError
from pki.issuance import IssuedCertificate, load_csr
from pki.x509.altnames import format_altnames
from pki.x509.dn import format_dn

from ..choices import TokenType
from ..models import EndEntity
from .common import RA_RULES
from .enrollment import deny_as_unknown, enroll, enroll_with_ra
from .entities import add_end_entity


def _csr_alt_names(csr: x509.CertificateSigningRequest) -> str:
    try:
        return format_altnames(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return ""


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
    existing = EndEntity.objects.filter(username=username).values_list("ca_id", flat=True).first()
    if existing is not None:
        if not actor.is_allowed(f"/ca/{existing}"):
            # Refused as an unknown name would be: the caller learns neither that it exists nor its CA.
            raise deny_as_unknown(username, password, interface=interface, actor_name=actor.name,
                                  reason=f"caller not authorized to /ca/{existing}")
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
    try:
        with transaction.atomic():
            add_end_entity(actor, data, profile=end_entity_profile or None)
            return enroll_with_ra(actor, username, csr=csr, interface=interface)
    except PkiError as exc:
        # The transaction (end entity, certificate and the audit events in it) rolled back: say so once more.
        audit.record_failure("RA_ADDENDENTITY", actor.name, exc.message, object_type="endentity",
                             object_id=username, details={"interface": interface})
        raise
