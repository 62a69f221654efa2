"""Finding certificates. The UI, the REST API and the CLI search through here, restricted to the
CAs the caller may see (``/ca/<id>``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from ..auth.access import Actor
from ..choices import CertificateStatus
from ..errors import ValidationError
from ..models import Certificate, CertificateAuthority, CertificateProfile


def visible_ca_ids(actor: Actor) -> list[int]:
    """The CAs whose certificates and CRLs ``actor`` may see."""
    ids = CertificateAuthority.objects.values_list("pk", flat=True)
    return [pk for pk in ids if actor.is_allowed(f"/ca/{pk}")]


def restrict(qs: QuerySet, actor: Actor, ca_field: str = "ca_id") -> QuerySet:
    if actor.system:
        return qs
    return qs.filter(**{f"{ca_field}__in": visible_ca_ids(actor)})


@dataclass
class CertificateQuery:
    """Search criteria; every given one must match. ``text`` matches subject, SAN, username or serial."""

    text: str = ""
    subject: str = ""
    serial: str = ""
    fingerprint: str = ""
    username: str = ""
    ca: CertificateAuthority | None = None
    status: str = ""
    expires_after: datetime | None = None
    expires_before: datetime | None = None
    issued_after: datetime | None = None
    issued_before: datetime | None = None
    revoked_after: datetime | None = None
    revoked_before: datetime | None = None
    profile: CertificateProfile | None = None


def _serial(value: str) -> str:
    try:
        return format(int(value.strip().replace(":", "").replace(" ", ""), 16), "x")
    except ValueError:
        raise ValidationError(f"'{value}' is not a hexadecimal serial number.", field="serial") from None


def search_certificates(actor: Actor, query: CertificateQuery) -> QuerySet[Certificate]:
    """Certificates matching ``query`` that ``actor`` may see, newest first."""
    actor.require("/ca_functionality/view_certificate")
    qs = restrict(Certificate.objects.select_related("ca", "certificate_profile"), actor)
    if query.text:
        t = query.text.strip()
        cond = Q(subject_dn__icontains=t) | Q(subject_alt_name__icontains=t) | Q(username__iexact=t)
        hexish = t.replace(":", "").lower()
        if hexish and all(c in "0123456789abcdef" for c in hexish):
            cond |= Q(serial=hexish.lstrip("0") or "0") | Q(fingerprint_sha256=hexish)
        qs = qs.filter(cond)
    if query.subject:
        qs = qs.filter(subject_dn__icontains=query.subject)
    if query.serial:
        qs = qs.filter(serial=_serial(query.serial))
    if query.fingerprint:
        qs = qs.filter(fingerprint_sha256=query.fingerprint.replace(":", "").lower())
    if query.username:
        qs = qs.filter(username=query.username)
    if query.ca is not None:
        qs = qs.filter(ca=query.ca)
    if query.status:
        if query.status not in CertificateStatus.values:
            raise ValidationError(f"Unknown status '{query.status}'.", field="status")
        qs = qs.filter(status=query.status)
    if query.expires_after:
        qs = qs.filter(not_after__gte=query.expires_after)
    if query.expires_before:
        qs = qs.filter(not_after__lt=query.expires_before)
    if query.issued_after:
        qs = qs.filter(not_before__gte=query.issued_after)
    if query.issued_before:
        qs = qs.filter(not_before__lt=query.issued_before)
    if query.revoked_after:
        qs = qs.filter(revoked_at__gte=query.revoked_after)
    if query.revoked_before:
        qs = qs.filter(revoked_at__lt=query.revoked_before)
    if query.profile is not None:
        qs = qs.filter(certificate_profile=query.profile)
    return qs.order_by("-created_at", "-pk")
