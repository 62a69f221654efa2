"""The certificate expiration check (EJBCA's "Certificate Expiration Check Service"): certificates that expire
within ``PKI_EXPIRY_NOTIFY_DAYS`` get one e-mail to their end entity's address and to the addresses in
``PKI_EXPIRY_NOTIFY_ADMINS``. Run by the scheduler (Celery beat or ``manage.py scheduler``) every
``PKI_EXPIRY_CHECK_INTERVAL`` seconds, and on demand through REST ``system/service/{name}/run``.

A notice is claimed by inserting its row (unique per certificate) before the mail goes out, so two checks
running at once send it once; a mail the SMTP server refuses gives its claim back for the next run.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.utils import timezone

from pki import audit
from pki.choices import CertificateStatus
from pki.models import Certificate

from .models import EndEntity, ExpiryNotice
from .notifications import render, variables

logger = logging.getLogger("endentities.expiry")

AUDIT_EVENT = "CERT_EXPIRY_NOTIFICATION"
BATCH = 500  # certificates looked at per run; the rest wait for the next run
SUBJECT = "Certificate ${CN} expires on ${EXPIRES}"
BODY = ("The certificate ${SERIAL} of ${DN}, issued by ${CA}, expires on ${EXPIRES} (in ${DAYS} days).${NL}"
        "Renew it before then.${NL}${NL}End entity: ${USERNAME}${NL}")


def _admins() -> list[str]:
    value = getattr(settings, "PKI_EXPIRY_NOTIFY_ADMINS", "")
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return [a.strip() for a in items if "@" in a]


def expiring(now: datetime, days: int):
    """Valid end entity certificates that expire within ``days`` and were not told yet, soonest first."""
    return (Certificate.objects.filter(status=CertificateStatus.ACTIVE, is_ca=False, not_after__gt=now,
                                       not_after__lte=now + timedelta(days=days), expiry_notice__isnull=True)
            .select_related("ca").order_by("not_after"))


def _claim(cert: Certificate, recipients: list[str]) -> bool:
    try:
        with transaction.atomic():
            ExpiryNotice.objects.create(certificate=cert, recipients=recipients)
        return True
    except IntegrityError:  # another check claimed it first
        return False


def _values(cert: Certificate, ee: EndEntity | None, now: datetime) -> dict[str, str]:
    values = variables(ee) if ee is not None else {"NL": "\n", "USERNAME": cert.username, "DN": cert.subject_dn,
                                                   "CN": ""}
    if not values.get("CN"):
        values["CN"] = next((p.split("=", 1)[1] for p in cert.subject_dn.split(",")
                             if p.strip().upper().startswith("CN=")), cert.subject_dn)
    values.update({"SERIAL": cert.serial.upper(), "DN": cert.subject_dn, "CA": cert.ca.name,
                   "EXPIRES": cert.not_after.strftime("%Y-%m-%d %H:%M UTC"),
                   "DAYS": str(max(0, (cert.not_after - now).days))})
    return values


def notify_expiring(now: datetime | None = None) -> int:
    """Send the notices that are due; returns how many certificates were told."""
    days = int(getattr(settings, "PKI_EXPIRY_NOTIFY_DAYS", 30) or 0)
    if days <= 0:
        return 0
    now = now or timezone.now()
    admins = _admins()
    certs = list(expiring(now, days)[:BATCH])
    owners = {ee.username: ee for ee in EndEntity.objects.select_related("ca").filter(
        username__in={c.username for c in certs if c.username})}
    sent = 0
    connection = get_connection()  # opened by the first message, so a server that is down is a refused mail
    try:
        for cert in certs:
            ee = owners.get(cert.username)
            recipients = list(dict.fromkeys(([ee.email] if ee is not None and ee.email else []) + admins))
            if not _claim(cert, recipients) or not recipients:
                continue  # told by another check, or nobody to tell (claimed, so not looked at again)
            values = _values(cert, ee, now)
            try:
                EmailMessage(render(SUBJECT, values), render(BODY, values), settings.DEFAULT_FROM_EMAIL, recipients,
                             connection=connection).send()
            except (smtplib.SMTPException, OSError) as exc:
                ExpiryNotice.objects.filter(certificate=cert).delete()  # the next run tries again
                audit.record_failure(AUDIT_EVENT, "system", f"{exc.__class__.__name__}: {exc}",
                                     object_type="certificate", object_id=cert.serial,
                                     details={"recipients": recipients})
                logger.warning("Expiry notice for certificate %s not sent: %s", cert.serial, exc)
                break  # the server is down: the rest wait for the next run
            audit.record(AUDIT_EVENT, "system", object_type="certificate", object_id=cert.serial,
                         details={"recipients": recipients, "username": cert.username, "ca": cert.ca.name,
                                  "not_after": cert.not_after.isoformat()})
            sent += 1
    finally:
        connection.close()
    if sent:
        logger.info("Expiry notices sent for %d certificates", sent)
    return sent
