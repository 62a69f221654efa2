"""RA/VA side: storing what the CA pushes (``POST /peers/v1/push/status``) and using it.

* **CAs**: matched to a known CA by the certificate's SHA-256 fingerprint; one not known yet is imported as an
  external CA (certificate only, no key), audited as ``PEER_CA_PUSHED``.
* **Certificates** on a VA go into the tables the OCSP responder already reads: a :class:`pki.models.Certificate`
  row per certificate under the external CA, with the CA's status, reason and revocation time. The responder
  (protocols/ocsp) answers for external CAs on a VA node and signs with the VA's own OCSP key binding, whose
  certificate the CA issued. On an RA, which holds no certificates, a :class:`PushedRevocation` per certificate
  revoked or on hold.
* **CRLs** (signature checked against the CA's certificate): kept as :class:`PushedCrl` and served at the CA's own
  ``/crl/<name>.crl`` path (:func:`crl_response`).

Every record carries the CA's time of the change: an older record never overwrites a newer status, so two
connector processes pushing at once, or a push retried, leave the newest status.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from pki import audit
from pki.auth.access import Actor
from pki.choices import CertificateStatus
from pki.errors import PkiError
from pki.models import CACertificate, Certificate, CertificateAuthority
from pki.x509.dn import format_dn

from . import incoming
from .models import PushedCrl, PushedRevocation
from .ra_views import BadRequest, _json, _peer_endpoint

logger = logging.getLogger("peers")
MAX_RECORDS = 5000
STATUSES = {s.value for s in CertificateStatus}
KEEP_CRLS = 2  # per CA and kind: the latest, and the one before while a client may still fetch it


def _role() -> str:
    return getattr(settings, "PKI_NODE_ROLE", "ca")


def _der(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 4 << 20:
        raise BadRequest(f"{what} must be base64 DER.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not base64.") from None


def _when(value: Any, what: str, *, required: bool = False) -> dt.datetime | None:
    if value is None and not required:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed, but no such time (February 30th, 25 o'clock)
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadRequest(f"{what} must be an ISO 8601 time with its offset.")
    return parsed


# --- CAs -----------------------------------------------------------------------------------------------------


def _store_ca(record: Any, who: incoming.IncomingIdentity) -> CertificateAuthority:
    from pki.services.cas import import_ca

    if not isinstance(record, dict) or not isinstance(record.get("name"), str) or not 0 < len(record["name"]) <= 200:
        raise BadRequest("A pushed CA is {\"name\", \"fingerprint\", \"certificate\"}.")
    der = _der(record.get("certificate"), "A CA certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise BadRequest("A pushed CA certificate is not a DER certificate.") from None
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    known = CACertificate.objects.filter(fingerprint_sha256=fingerprint).select_related("ca").first()
    if known is not None:
        return known.ca
    name = record["name"]
    if CertificateAuthority.objects.filter(name=name).exists():
        name = f"{name} ({fingerprint[:8]})"
    subject = format_dn(cert.subject)
    same_subject = CertificateAuthority.objects.filter(subject_dn=subject).first()
    if same_subject is not None:
        return _renewed(same_subject, cert, der, fingerprint, who)
    try:
        ca = import_ca(Actor.system_actor(who.actor.name), name, der)
    except PkiError as exc:  # a certificate this node cannot keep as a CA (its subject DN too long, ...)
        raise BadRequest(f"A pushed CA certificate: {exc}") from None
    audit.record("PEER_CA_PUSHED", who.actor.name, object_type="ca", object_id=ca.pk,
                 details={"name": ca.name, "subject": subject, "fingerprint": fingerprint})
    logger.info("Peer %s pushed CA %s: imported as external CA %s", who.actor.name, subject, ca.name)
    return ca


def _renewed(ca: CertificateAuthority, cert: x509.Certificate, der: bytes, fingerprint: str,
             who: incoming.IncomingIdentity) -> CertificateAuthority:
    """The CA renewed its certificate: the new one joins the external CA's history here and becomes its current
    certificate (the OCSP responder answers for CertIDs of both, as on the CA)."""
    if not ca.is_external:
        raise BadRequest(f"CA '{ca.name}' holds a key on this node: its certificate is not replaced by a push.")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise BadRequest("A pushed CA certificate is not a CA certificate.")
    CACertificate.objects.create(ca=ca, certificate_der=der, fingerprint_sha256=fingerprint,
                                 not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                                 activate_at=timezone.now())
    current = ca.certificate
    if current is None or cert.not_valid_before_utc >= current.not_valid_before_utc:
        CertificateAuthority.objects.filter(pk=ca.pk).update(certificate_der=der, updated_at=timezone.now())
        ca.refresh_from_db()
    audit.record("PEER_CA_PUSHED", who.actor.name, object_type="ca", object_id=ca.pk,
                 details={"name": ca.name, "subject": ca.subject_dn, "fingerprint": fingerprint, "renewed": True})
    logger.info("Peer %s pushed a new certificate of CA %s", who.actor.name, ca.name)
    return ca


def _ca_by_fingerprint(fingerprint: Any, cache: dict[str, CertificateAuthority]) -> CertificateAuthority:
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise BadRequest("A record names its CA by the SHA-256 fingerprint of the CA certificate.")
    if fingerprint not in cache:
        known = CACertificate.objects.filter(fingerprint_sha256=fingerprint).select_related("ca").first()
        if known is None:
            raise BadRequest(f"CA {fingerprint[:16]}... is not known here: push its certificate first.")
        cache[fingerprint] = known.ca
    return cache[fingerprint]


# --- certificates ----------------------------------------------------------------------------------------


def _status_fields(record: dict[str, Any]) -> dict[str, Any]:
    status = record.get("status")
    reason = record.get("reason")
    if status not in STATUSES or not (reason is None or (isinstance(reason, int) and 0 <= reason <= 10)):
        raise BadRequest("A certificate record has an unknown status or reason.")
    serial = record.get("serial")
    if not isinstance(serial, str) or not re.fullmatch(r"[0-9a-f]{1,64}", serial):
        raise BadRequest("A certificate record's serial is lower-case hex.")
    return {"serial": serial, "status": status, "revocation_reason": reason,
            "revoked_at": _when(record.get("revoked_at"), "revoked_at"),
            "changed_at": _when(record.get("changed_at"), "changed_at", required=True)}


def _store_va_certificate(ca: CertificateAuthority, record: dict[str, Any]) -> bool:
    fields = _status_fields(record)
    changed = fields["changed_at"]
    status = {"status": fields["status"], "revocation_reason": fields["revocation_reason"],
              "revoked_at": fields["revoked_at"],
              "revocation_recorded_at": changed if fields["status"] != CertificateStatus.ACTIVE else None}
    # The CA's time of the change is the row's updated_at here: only a newer change is written.
    updated = Certificate.objects.filter(ca=ca, serial=fields["serial"], updated_at__lt=changed).update(
        **status, updated_at=changed)
    if updated or Certificate.objects.filter(ca=ca, serial=fields["serial"]).exists():
        return bool(updated)
    der = _der(record.get("der"), "A certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.verify_directly_issued_by(ca.certificate)
    except Exception:  # noqa: BLE001 - any parse or signature failure is the same refusal
        raise BadRequest(f"Certificate {fields['serial']} is not one CA '{ca.name}' signed.") from None
    if format(cert.serial_number, "x") != fields["serial"]:
        raise BadRequest(f"Certificate {fields['serial']}: the serial does not match its DER.")
    try:
        with transaction.atomic():
            Certificate.objects.create(
                ca=ca, serial=fields["serial"], fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
                subject_dn=format_dn(cert.subject), issuer_dn=format_dn(cert.issuer),
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, der=der, **status)
        Certificate.objects.filter(ca=ca, serial=fields["serial"]).update(updated_at=changed)
    except IntegrityError:  # the same certificate pushed by another connector process at the same moment
        return False
    return True


def _store_ra_certificate(ca: CertificateAuthority, record: dict[str, Any]) -> bool:
    fields = _status_fields(record)
    changed = fields["changed_at"]
    # A reactivated certificate keeps its row (status ACTIVE) with the time: a late, older push of its hold must
    # not bring the hold back.
    values = {"status": fields["status"], "revocation_reason": fields["revocation_reason"],
              "revoked_at": fields["revoked_at"], "changed_at": changed}
    if PushedRevocation.objects.filter(ca=ca, serial=fields["serial"], changed_at__lte=changed).update(**values):
        return True
    try:
        with transaction.atomic():
            PushedRevocation.objects.create(ca=ca, serial=fields["serial"], **values)
    except IntegrityError:  # there already, newer
        return False
    return True


# --- CRLs ------------------------------------------------------------------------------------------------


def _store_crl(ca: CertificateAuthority, record: dict[str, Any]) -> bool:
    der = _der(record.get("der"), "A CRL")
    try:
        crl = x509.load_der_x509_crl(der)
        valid = crl.is_signature_valid(ca.certificate.public_key())
    except (ValueError, TypeError):
        valid = False
    if not valid:
        raise BadRequest(f"A pushed CRL is not one CA '{ca.name}' signed.")
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:  # its place among the CA's CRLs is its number (RFC 5280 5.2.3: required)
        raise BadRequest(f"A pushed CRL of CA '{ca.name}' has no CRL number.") from None
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
        delta = True
    except x509.ExtensionNotFound:
        delta = False
    _, created = PushedCrl.objects.get_or_create(
        ca=ca, crl_number=number, is_delta=delta,
        defaults={"der": der, "this_update": crl.last_update_utc,
                  "next_update": crl.next_update_utc or crl.last_update_utc})
    if created:
        old = list(PushedCrl.objects.filter(ca=ca, is_delta=delta).order_by("-crl_number")
                   .values_list("pk", flat=True)[KEEP_CRLS:])
        PushedCrl.objects.filter(pk__in=old).delete()
    return created


def _records(data: dict[str, Any], key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_RECORDS:
        raise BadRequest(f"'{key}' must be a list of at most {MAX_RECORDS}.")
    if not all(isinstance(v, dict) for v in value):
        raise BadRequest(f"'{key}' holds objects only.")
    return value


@_peer_endpoint("POST")
def push_status(request: HttpRequest, who: incoming.IncomingIdentity) -> JsonResponse:
    """The CA's certificate status and CRLs; all or nothing per call."""
    data = _json(request)
    cas, certificates, crls = _records(data, "cas"), _records(data, "certificates"), _records(data, "crls")
    store = _store_va_certificate if _role() == "va" else _store_ra_certificate
    cache: dict[str, CertificateAuthority] = {}
    with transaction.atomic():
        for record in cas:
            ca = _store_ca(record, who)
            cache[ca.certificate.fingerprint(hashes.SHA256()).hex()] = ca
        stored = sum(store(_ca_by_fingerprint(r.get("ca"), cache), r) for r in certificates)
        new_crls = sum(_store_crl(_ca_by_fingerprint(r.get("ca"), cache), r) for r in crls)
    if stored or new_crls:
        logger.info("Peer %s pushed %d certificate status changes and %d CRLs", who.actor.name, stored, new_crls)
    return JsonResponse({"cas": len(cas), "certificates": stored, "crls": new_crls})


# --- using it --------------------------------------------------------------------------------------------


CRL_PATH = re.compile(r"^/crl/(?P<name>[^/]{1,255})\.crl$")


def crl_response(request: HttpRequest) -> HttpResponse | None:
    """``/crl/<ca-name>.crl`` (``?delta=true``, ``?format=pem``) on an RA/VA: the CA's latest pushed CRL; None
    when the path is not a CRL or no CRL of that CA was pushed (the ordinary view answers then)."""
    match = CRL_PATH.match(request.path_info)
    if match is None or request.method not in ("GET", "HEAD"):
        return None
    ca = CertificateAuthority.objects.filter(name=match["name"]).first()
    delta = request.GET.get("delta", "").lower() in ("1", "true", "yes")
    row = PushedCrl.objects.filter(ca=ca, is_delta=delta).order_by("-crl_number").first() if ca else None
    if row is None:
        return None
    der = bytes(row.der)
    if request.GET.get("format", "").lower() == "pem":
        body = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
        response = HttpResponse(body, content_type="application/x-pem-file")
    else:
        response = HttpResponse(der, content_type="application/pkix-crl")
    response["Content-Disposition"] = f'attachment; filename="{ca.name}{"_delta" if delta else ""}.crl"'
    max_age = max(0, int((row.next_update - timezone.now()).total_seconds()))
    response["Cache-Control"] = f"public, max-age={min(max_age, 3600)}"
    return response
