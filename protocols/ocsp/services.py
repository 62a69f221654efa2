"""The OCSP responder: which CA a request is for, the status of each certificate, and who signs.

Statuses are read from the database on every request, so a revocation is answered at once by every
process. What is kept per process is only what cannot change without the CA row changing: the
CertID hashes of each CA certificate (keyed on the CA's ``updated_at`` and its certificate history).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from django.conf import settings
from django.utils import timezone

from cryptotokens.errors import CryptoTokenError
from cryptotokens.services import get_private_key_by_id
from keybindings.models import InternalKeyBinding
from pki.choices import CertificateStatus, RevocationReason
from pki.models import CACertificate, Certificate, CertificateAuthority
from pki.x509.algorithms import default_signature_algorithm, signature_algorithm

from . import messages
from .messages import CertId, MalformedRequest, SingleStatus

logger = logging.getLogger("pki.ocsp")

OCSP_BINDING = "OcspKeyBinding"


@dataclass(frozen=True)
class OcspAnswer:
    """The DER OCSPResponse and, for a signed answer, how long it may be cached (seconds)."""

    der: bytes
    max_age: int | None = None
    this_update: datetime | None = None


class _CaIndex:
    """CertID issuer hashes -> CA id, for every local CA certificate (current and earlier ones)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple = ()
        self._index: dict[tuple[str, bytes, bytes], int] = {}

    def lookup(self) -> dict[tuple[str, bytes, bytes], int]:
        rows = list(CertificateAuthority.objects.local().order_by("pk").values_list("pk", "updated_at"))
        history = CACertificate.objects.filter(ca__in=[pk for pk, _ in rows]).count()
        version = (tuple(rows), history)
        if version == self._version:
            return self._index
        with self._lock:
            index: dict[tuple[str, bytes, bytes], int] = {}
            certs = [(ca.pk, ca.certificate) for ca in CertificateAuthority.objects.local() if ca.certificate]
            certs += [(row.ca_id, x509.load_der_x509_certificate(bytes(row.certificate_der)))
                      for row in CACertificate.objects.filter(ca__in=[pk for pk, _ in rows])]
            for ca_id, cert in certs:
                for hash_name in messages.HASHES:
                    index.setdefault((hash_name, *messages.issuer_hashes(cert, hash_name)), ca_id)
            self._index, self._version = index, version
        return index


_ca_index = _CaIndex()


def _validity() -> int:
    return int(getattr(settings, "PKI_OCSP_VALIDITY", 300))


def respond(data: bytes, now: datetime | None = None) -> OcspAnswer:
    """Answer a DER OCSP request; every outcome is an OCSPResponse (errors carry only their status)."""
    try:
        request = messages.parse_request(data)
    except MalformedRequest as exc:
        logger.info("OCSP malformed request: %s", exc)
        return OcspAnswer(messages.error_response("malformed_request"))
    index = _ca_index.lookup()
    matched = [(cert_id, index.get(cert_id.issuer_key)) for cert_id in request.cert_ids]
    ca_id = next((ca for _, ca in matched if ca is not None), None)
    if ca_id is None:
        logger.info("OCSP request for no CA of this responder (%d certificates)", len(matched))
        return OcspAnswer(messages.error_response("unauthorized"))
    ca = CertificateAuthority.objects.select_related("crypto_token").get(pk=ca_id)
    statuses = _statuses(ca, [cert_id for cert_id, owner in matched if owner == ca_id])
    # A certificate of another CA in the same request: that CA is not the signer here, so "unknown".
    statuses += [SingleStatus(cert_id, "unknown") for cert_id, owner in matched if owner != ca_id]
    now = now or timezone.now()
    try:
        return _signed(ca, statuses, request, now)
    except CryptoTokenError as exc:
        logger.warning("OCSP for CA %s: its key is not available (%s); answering tryLater", ca.name, exc)
        return OcspAnswer(messages.error_response("try_later"))


def _statuses(ca: CertificateAuthority, cert_ids: list[CertId]) -> list[SingleStatus]:
    serials = {format(c.serial, "x"): c for c in cert_ids}
    rows = {
        serial: (status, reason, revoked_at)
        for serial, status, reason, revoked_at in Certificate.objects.filter(ca=ca, serial__in=list(serials))
        .values_list("serial", "status", "revocation_reason", "revoked_at")
    }
    out = []
    for cert_id in cert_ids:
        row = rows.get(format(cert_id.serial, "x"))
        if row is None:
            out.append(SingleStatus(cert_id, "unknown"))
        elif row[0] == CertificateStatus.ACTIVE:
            out.append(SingleStatus(cert_id, "good"))
        else:
            reason = RevocationReason.CERTIFICATE_HOLD if row[0] == CertificateStatus.ON_HOLD else row[1]
            out.append(SingleStatus(cert_id, "revoked", row[2], reason))
    return out


def ocsp_binding_for(ca: CertificateAuthority, now: datetime) -> InternalKeyBinding | None:
    """The CA's active OCSP key binding whose certificate this CA issued and is valid now, if any."""
    return (InternalKeyBinding.objects.select_related("certificate")
            .filter(binding_type=OCSP_BINDING, status=InternalKeyBinding.Status.ACTIVE, certificate__ca=ca,
                    certificate__status=CertificateStatus.ACTIVE, certificate__not_before__lte=now,
                    certificate__not_after__gt=now)
            .order_by("-certificate__not_after").first())


def _signed(ca: CertificateAuthority, statuses: list[SingleStatus], request, now: datetime) -> OcspAnswer:
    binding = ocsp_binding_for(ca, now)
    if binding is not None:
        responder = binding.certificate.certificate
        key = get_private_key_by_id(binding.crypto_token_id, binding.key_pair_alias)
        algorithm = signature_algorithm(getattr(binding, "signature_algorithm", "")
                                        or default_signature_algorithm(responder.public_key()))
        certs = [responder]
    else:
        if ca.crypto_token_id is None or ca.certificate is None:
            raise CryptoTokenError(f"CA '{ca.name}' holds no key here")
        responder = ca.certificate
        key = get_private_key_by_id(ca.crypto_token_id, ca.key_alias)
        algorithm = signature_algorithm(ca.signature_algorithm)
        certs = []
    validity = _validity()
    this_update = now.replace(microsecond=0)
    der = messages.build_response(
        statuses, responder=responder, signature_algorithm=algorithm.algorithm_identifier(),
        sign=lambda tbs: algorithm.sign(key, tbs), produced_at=this_update, this_update=this_update,
        next_update=this_update + timedelta(seconds=validity) if validity else None,
        nonce=request.nonce, certs=certs,
    )
    return OcspAnswer(der, max_age=validity if request.nonce is None else None, this_update=this_update)
