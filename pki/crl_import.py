"""Importing a CRL issued elsewhere for a CA known here (EJBCA's ``importcrl``): typically an external CA's CRL,
so that this installation answers revocation questions about its certificates.

The CRL must be signed by the CA (any certificate it has had, so a CRL signed before a renewal verifies), name
the CA as its issuer, carry a CRL number above every CRL stored for the CA and a nextUpdate. It is stored as
the CA's latest (full or delta) CRL, and the certificates of that CA known here that it lists as revoked are
revoked through the revocation service (audited each); nothing is stored when any check fails.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from django.db import transaction
from django.db.models import Max

from . import audit
from .auth.access import Actor
from .choices import CertificateStatus, RevocationReason
from .errors import ValidationError
from .models import CRL, CACertificate, Certificate, CertificateAuthority
from .revocation import revoke

MAX_CRL_BYTES = 50 * 1024 * 1024


def _load(data: bytes) -> x509.CertificateRevocationList:
    if not data:
        raise ValidationError("The CRL file is empty.", field="crlFile")
    if len(data) > MAX_CRL_BYTES:
        raise ValidationError(f"The CRL file is larger than {MAX_CRL_BYTES} bytes.", field="crlFile")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise ValidationError("Not a CRL (DER or PEM X.509 CRL expected).", field="crlFile") from None


def _signed_by_ca(crl: x509.CertificateRevocationList, ca: CertificateAuthority) -> bool:
    ders = [bytes(d) for d in CACertificate.objects.filter(ca=ca).values_list("certificate_der", flat=True)]
    if ca.certificate_der:
        ders.append(bytes(ca.certificate_der))
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        if cert.subject != crl.issuer:
            continue
        try:
            if crl.is_signature_valid(cert.public_key()):
                return True
        except (TypeError, ValueError):  # a key type the CRL's signature algorithm does not fit
            continue
    return False


def _reason(entry: x509.RevokedCertificate) -> int:
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except (x509.ExtensionNotFound, ValueError):
        return int(RevocationReason.UNSPECIFIED)
    return int(RevocationReason.parse(flag.value))


def import_crl(actor: Actor, ca: CertificateAuthority, data: bytes) -> CRL:
    """Verify and store ``data`` (DER or PEM) as a CRL of ``ca``; see the module docstring."""
    actor.require(f"/ca/{ca.pk}")
    actor.require("/ca_functionality/create_crl")
    try:
        crl = _load(data)
        if ca.certificate is None or crl.issuer != ca.certificate.subject:
            raise ValidationError(f"The CRL's issuer is not CA '{ca.name}'.", field="crlFile")
        if not _signed_by_ca(crl, ca):
            raise ValidationError(f"The CRL's signature does not verify with the certificate of CA '{ca.name}'.",
                                  field="crlFile")
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except (x509.ExtensionNotFound, ValueError):
            raise ValidationError("The CRL has no CRL number.", field="crlFile") from None
        if crl.next_update_utc is None:
            raise ValidationError("The CRL has no nextUpdate.", field="crlFile")
        try:
            base = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number
        except x509.ExtensionNotFound:
            base = None
        with transaction.atomic():
            locked = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
            latest = CRL.objects.filter(ca=locked).aggregate(m=Max("crl_number"))["m"] or 0
            if number <= latest:
                raise ValidationError(f"CRL number {number} is not above the latest CRL of CA '{ca.name}' "
                                      f"({latest}).", field="crlFile")
            row = CRL.objects.create(ca=locked, crl_number=number, is_delta=base is not None, base_crl_number=base,
                                     this_update=crl.last_update_utc, next_update=crl.next_update_utc,
                                     entries=len(crl), der=crl.public_bytes(Encoding.DER))
            revoked = _apply_revocations(actor, locked, crl)
            audit.record("CRL_IMPORT", actor.name, object_type="ca", object_id=ca.pk,
                         details={"crl_number": number, "delta": base is not None, "entries": len(crl),
                                  "revoked_here": revoked,
                                  "sha256": crl.fingerprint(hashes.SHA256()).hex()}, in_transaction=True)
    except ValidationError as exc:
        audit.record_failure("CRL_IMPORT", actor.name, exc.message, object_type="ca", object_id=ca.pk)
        raise
    return row


def _apply_revocations(actor: Actor, ca: CertificateAuthority, crl: x509.CertificateRevocationList) -> int:
    """Revoke the active certificates of ``ca`` known here that ``crl`` lists (removeFromCRL entries are skipped)."""
    listed = {format(entry.serial_number, "x"): entry for entry in crl}
    if not listed:
        return 0
    count = 0
    known = Certificate.objects.filter(ca=ca, serial__in=list(listed), status=CertificateStatus.ACTIVE)
    for cert in known:
        entry = listed[cert.serial]
        reason = _reason(entry)
        if reason == RevocationReason.REMOVE_FROM_CRL:
            continue
        revoke(actor, cert, reason, entry.revocation_date_utc)
        count += 1
    return count

