"""The certificate expiration check: certificates expiring within PKI_EXPIRY_NOTIFY_DAYS get one e-mail (end entity
and PKI_EXPIRY_NOTIFY_ADMINS) through a real SMTP server, once even when two checks run at once; a refused mail is
tried again next run; it is one of the scheduler's jobs."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from endentities.expiry import AUDIT_EVENT, notify_expiring
from endentities.models import ExpiryNotice
from endentities.services import enroll
from pki.models import AuditEvent, Certificate
from pki.revocation import revoke

from .entities_support import *  # noqa: F403  (the shared fixtures)
from .test_notifications import _body, _subject, smtp  # noqa: F401, F811  (the SMTP fixture)


@pytest.fixture
def expiry_settings(settings):
    settings.PKI_EXPIRY_NOTIFY_DAYS = 30
    settings.PKI_EXPIRY_NOTIFY_ADMINS = "pki-team@example.com"
    return settings


@pytest.fixture
def certificate_expiring(entity_factory, csr_factory):
    """``certificate_expiring("alice", days=10)``: an enrolled end entity whose certificate ends in ``days``."""
    def make(username: str, days: float, email: str = ""):
        entity_factory(username, password="foo123", email=email)
        csr, _ = csr_factory(f"CN={username},O=Test")
        row = enroll(username, "foo123", csr=csr, interface="rest").row
        Certificate.objects.filter(pk=row.pk).update(not_after=timezone.now() + timedelta(days=days))
        return Certificate.objects.get(pk=row.pk)
    return make


def test_an_expiring_certificate_is_told_once(smtp,  # noqa: F811
                                               expiry_settings, certificate_expiring, actor):
    soon = certificate_expiring("alice", 10, email="alice@example.com")
    certificate_expiring("bob", 60, email="bob@example.com")  # outside the window
    gone = certificate_expiring("carol", 5, email="carol@example.com")
    revoke(actor, gone, 1)  # revoked: no notice
    certificate_expiring("dave", -1, email="dave@example.com")  # already expired: no notice

    assert notify_expiring() == 1
    ((sender, rcpts, raw),) = smtp.messages
    assert sorted(rcpts) == ["alice@example.com", "pki-team@example.com"]
    assert sender == django_settings.DEFAULT_FROM_EMAIL
    assert _subject(raw).startswith("Certificate alice expires on ")
    body = _body(raw)
    assert soon.serial.upper() in body and ("in 9 days" in body or "in 10 days" in body)
    event = AuditEvent.objects.get(event_type=AUDIT_EVENT)
    assert event.object_id == soon.serial and event.outcome == "SUCCESS"
    assert notify_expiring() == 0 and len(smtp.messages) == 1  # told once


def test_without_an_address_only_the_admins_hear_and_zero_days_turns_it_off(smtp, expiry_settings,  # noqa: F811
                                                                           certificate_expiring):
    certificate_expiring("eve", 3)
    expiry_settings.PKI_EXPIRY_NOTIFY_DAYS = 0
    assert notify_expiring() == 0 and smtp.messages == []
    expiry_settings.PKI_EXPIRY_NOTIFY_DAYS = 30
    assert notify_expiring() == 1
    assert smtp.messages[0][1] == ["pki-team@example.com"]


def test_a_refused_mail_is_sent_by_the_next_run(expiry_settings, certificate_expiring, settings):
    cert = certificate_expiring("frank", 7, email="frank@example.com")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens
    assert notify_expiring() == 0
    assert not ExpiryNotice.objects.filter(certificate=cert).exists()
    assert AuditEvent.objects.filter(event_type=AUDIT_EVENT, outcome="FAILURE", object_id=cert.serial).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notify_expiring() == 1


@pytest.mark.django_db(transaction=True)
def test_two_checks_at_once_send_one_notice(expiry_settings, certificate_expiring, settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    for n in range(6):
        certificate_expiring(f"grace{n}", 12, email=f"grace{n}@example.com")
    barrier = threading.Barrier(2)
    results: list[int] = []

    def check() -> None:
        barrier.wait()
        try:
            results.append(notify_expiring())
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 6 and len(mail.outbox) == 6
    assert ExpiryNotice.objects.count() == 6


def test_the_check_is_a_scheduled_job():
    job = django_settings.CELERY_BEAT_SCHEDULE["notify-expiring-certificates"]
    assert job["task"] == "endentities.tasks.notify_expiring_certificates"
