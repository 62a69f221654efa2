"""E-mail notifications on end entity status changes, sent through a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
from aiosmtpd.controller import Controller

from endentities.notifications import render, variables
from endentities.services import enroll, set_status
from pki.models import AuditEvent

from .entities_support import *  # noqa: F403  (the shared fixtures)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = False
    yield inbox
    controller.stop()


def _subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


def _body(raw: bytes) -> str:
    return message_from_bytes(raw).get_payload(decode=True).decode().replace("\r\n", "\n")


@pytest.fixture
def notifying_profile(ee_profile_factory, root_ca):
    return ee_profile_factory("Notify", ca=root_ca, notifications=[
        {"events": ["NEW"], "recipients": ["USER", "ra-team@example.com"], "sender": "ca@example.com",
         "subject": "Certificate for ${USERNAME}", "body": "Hello ${CN},${NL}your enrollment code is ${PASSWORD}."},
        {"events": ["GENERATED"], "recipients": ["USER"], "subject": "Issued to ${user.CN}",
         "body": "Status ${STATUS} for ${user.EE.EMAIL}; ${UNKNOWN.VAR} stays."},
    ])


def test_new_end_entity_gets_templated_mail(smtp, entity_factory, notifying_profile,
                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        entity_factory("alice", password="foo123", profile=notifying_profile, email="alice@example.com",
                       subject_dn="CN=Alice Smith,O=Test")
    assert len(smtp.messages) == 1
    sender, rcpts, raw = smtp.messages[0]
    assert sender == "ca@example.com" and sorted(rcpts) == ["alice@example.com", "ra-team@example.com"]
    assert _subject(raw) == "Certificate for alice"
    assert _body(raw).strip() == "Hello Alice Smith,\nyour enrollment code is foo123."
    event = AuditEvent.objects.get(event_type="EE_NOTIFICATION", object_id="alice")
    assert "foo123" not in str(event.details)  # the body (with the code) is never logged


def test_generated_after_enrollment(smtp, entity_factory, notifying_profile, csr_factory,
                                   django_capture_on_commit_callbacks):
    entity_factory("bob", password="foo123", profile=notifying_profile, email="bob@example.com",
                   subject_dn="CN=Bob,O=Test")
    csr, _ = csr_factory("CN=bob")
    with django_capture_on_commit_callbacks(execute=True):
        enroll("bob", "foo123", csr=csr, interface="rest")
    assert len(smtp.messages) == 1
    _, rcpts, raw = smtp.messages[0]
    assert rcpts == ["bob@example.com"] and _subject(raw) == "Issued to Bob"
    assert _body(raw).strip() == "Status GENERATED for bob@example.com; ${UNKNOWN.VAR} stays."


def test_status_without_notification_sends_nothing(smtp, entity_factory, notifying_profile, actor,
                                                   django_capture_on_commit_callbacks):
    entity_factory("carol", password="foo123", profile=notifying_profile, email="carol@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        set_status(actor, "carol", "HISTORICAL")
    assert smtp.messages == []


def test_rolled_back_change_sends_nothing(smtp, entity_factory, notifying_profile,
                                          django_capture_on_commit_callbacks):
    from pki.errors import ValidationError

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        entity_factory("dave", password="foo123", profile=notifying_profile, email="dave@example.com",
                       subject_dn="O=No CN")
    assert smtp.messages == []


def test_smtp_down_is_audited_not_fatal(settings, entity_factory, notifying_profile,
                                        django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", _free_port()  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        ee = entity_factory("erin", password="foo123", profile=notifying_profile, email="erin@example.com")
    assert ee.pk is not None
    failure = AuditEvent.objects.get(event_type="EE_NOTIFICATION", object_id="erin")
    assert failure.outcome == "FAILURE"


@pytest.mark.parametrize("template, expected", [
    ("${USERNAME}", "u1"), ("${CN}", "Uno"), ("${O}", "Org"), ("${C}", "SE"), ("${DN}", "CN=Uno,O=Org,C=SE"),
    ("${user.EE.EMAIL}", "u1@example.com"), ("${user.SAN.EMAIL}", "san@example.com"), ("a${NL}b", "a\nb"),
    ("${PASSWORD}", "pw"), ("${NOPE}", "${NOPE}"),
])
def test_template_variables(entity_factory, template, expected):
    ee = entity_factory("u1", subject_dn="CN=Uno,O=Org,C=SE", email="u1@example.com",
                        subject_alt_name="RFC822NAME=san@example.com")
    assert render(template, variables(ee, "pw")) == expected
