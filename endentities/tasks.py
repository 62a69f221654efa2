"""Celery tasks of the end entity app. Queued with ``transaction.on_commit``; without a broker they run in-process."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.core.mail import EmailMessage, get_connection

from cryptotokens.secrets import SecretDecryptionError, decrypt_secret
from pki import audit

logger = logging.getLogger("endentities.tasks")


@shared_task(bind=True, name="endentities.tasks.send_status_notifications", max_retries=3, default_retry_delay=30)
def send_status_notifications(self, ee_id: int, status: int, indexes: list[int] | None = None,
                              sealed_password: str = "") -> int:
    """Send the profile's notifications for ``status`` to the end entity's recipients; returns how many were sent.

    ``sealed_password``: the code just set, encrypted under the master key for the trip through the broker.
    Sending failures are retried (SMTP server down), then recorded in the audit log.
    """
    from .models import EndEntity
    from .notifications import describe, messages_for

    ee = EndEntity.objects.select_related("end_entity_profile", "ca").filter(pk=ee_id).first()
    if ee is None:
        return 0
    password = None
    if sealed_password:
        try:
            password = decrypt_secret(sealed_password, f"notification:{ee_id}").decode()
        except SecretDecryptionError:
            password = None
    notes = messages_for(ee, status, indexes, password)
    if not notes:
        return 0
    sent = 0
    try:
        with get_connection() as connection:
            for note in notes:
                EmailMessage(note.subject, note.body, note.sender, note.recipients, connection=connection).send()
                sent += 1
                audit.record("EE_NOTIFICATION", "system", object_type="endentity", object_id=ee.username,
                             details=describe(note))
    except (smtplib.SMTPException, OSError) as exc:
        if self.request.called_directly or self.request.retries >= self.max_retries or self.request.is_eager:
            audit.record_failure("EE_NOTIFICATION", "system", f"{exc.__class__.__name__}: {exc}",
                                 object_type="endentity", object_id=ee.username)
            logger.warning("Notification for end entity %s not sent: %s", ee.username, exc)
            return sent
        raise self.retry(exc=exc) from None
    return sent


@shared_task(name="endentities.tasks.notify_expiring_certificates")
def notify_expiring_certificates() -> int:
    """Beat task: the certificate expiration check (endentities.expiry)."""
    from .expiry import notify_expiring

    return notify_expiring()
