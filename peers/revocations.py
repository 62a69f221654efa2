"""RA/VA side: whether the CA said one of its certificates is revoked (a pushed status, or its latest pushed CRL),
so a revoked connector certificate is refused here at once, without waiting for its role member to be removed."""

from __future__ import annotations

from cryptography import x509

from pki.choices import CertificateStatus
from pki.models import Certificate, CertificateAuthority

from .models import PushedCrl, PushedRevocation


def is_revoked(ca: CertificateAuthority, serial: str) -> bool:
    """Whether the CA said (pushed status, or its latest pushed CRL) that its certificate ``serial`` is revoked or
    on hold: how an RA/VA refuses a revoked connector certificate without waiting for a role change."""
    pushed = PushedRevocation.objects.filter(ca=ca, serial=serial).values_list("status", flat=True).first()
    local = pushed is None and Certificate.objects.filter(ca=ca, serial=serial).exclude(
        status=CertificateStatus.ACTIVE).exists()
    crls = [] if pushed is not None or local else [
        PushedCrl.objects.filter(ca=ca, is_delta=is_delta).order_by("-crl_number").values_list("pk", flat=True).first()
        for is_delta in (False, True)]
    return revoked_by(serial, pushed, local, crls)


def revoked_by(serial: str, pushed: str | None, local: bool, crl_ids: list[int | None]) -> bool:
    """:func:`is_revoked` from what it reads: the pushed status (None: none pushed), whether this node's own record
    of the certificate says it is not active, and the ids of the CA's latest pushed CRL and delta CRL."""
    if pushed is not None:
        return pushed != CertificateStatus.ACTIVE  # the CA's newest word on it, newer than any CRL
    if local:
        return True
    number = int(serial, 16)
    for pk in crl_ids:
        crl = _parsed_crl(pk) if pk is not None else None
        if crl is not None and crl.get_revoked_certificate_by_serial_number(number):
            return True
    return False


_crl_cache: dict[int, x509.CertificateRevocationList] = {}


def _parsed_crl(pk: int) -> x509.CertificateRevocationList | None:
    """The pushed CRL, parsed once per process: a pushed CRL row never changes (a new CRL is a new row), and its
    bytes (a large CRL's megabytes) are read only the first time, not on every peer call."""
    hit = _crl_cache.get(pk)
    if hit is None:
        if len(_crl_cache) > 64:
            _crl_cache.clear()
        der = PushedCrl.objects.filter(pk=pk).values_list("der", flat=True).first()
        if der is None:  # replaced by a newer one since the look-up
            return None
        hit = _crl_cache[pk] = x509.load_der_x509_crl(bytes(der))
    return hit
