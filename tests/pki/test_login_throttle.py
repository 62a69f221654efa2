"""The admin UI login form (issue 11 item 9): guessing is throttled per account name and per client address
(429 without checking the password, growing lockouts), unknown and known names look the same, the lockout is
audited and an administrator clears it (``manage.py users unlock``)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from pki.auth import throttle
from pki.models import AuditEvent

from .test_basic_auth import CountingHasher, _peek  # noqa: F401 (the hasher is named in the settings)


@pytest.fixture(autouse=True)
def counting(settings):
    settings.PASSWORD_HASHERS = ["tests.pki.test_basic_auth.CountingHasher"]
    settings.PKI_AUTH_FAILURE_LIMIT = 5
    settings.PKI_AUTH_LOCKOUT_SECONDS = 60


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="right-pw")


def login(username: str, password: str, ip: str = "192.0.2.7"):
    return Client(REMOTE_ADDR=ip).post("/login/", {"username": username, "password": password})


def _errors(response) -> list[str]:
    return [str(e) for e in response.context["form"].non_field_errors()] if response.context else []


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_login_guessing_is_throttled(alice, username):
    start = _peek()
    answers = [login(username, f"guess-{n}") for n in range(8)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    assert all("correct username and password" in _errors(r)[0] for r in answers[:5])
    assert "Too many failed attempts" in _errors(answers[5])[0] and int(answers[5]["Retry-After"]) > 0
    assert _peek() - start == 5  # the throttled ones were not hashed
    if username == "alice":  # locked as an account: even the right password, from another address
        assert login("alice", "right-pw", ip="192.0.2.8").status_code == 429
    assert AuditEvent.objects.filter(event_type="ACCOUNT_LOCKOUT", object_type="account",
                                     object_id=username).count() == 1


def test_unknown_and_known_names_answer_alike(alice):
    known, unknown = login("alice", "wrong", ip="198.51.100.1"), login("nobody", "wrong", ip="198.51.100.2")
    assert (known.status_code, _errors(known)) == (unknown.status_code, _errors(unknown))


def test_admin_clears_the_lockout(alice, capsys):
    for n in range(5):
        login("alice", f"guess-{n}", ip=f"203.0.113.{n}")
    assert login("alice", "right-pw", ip="203.0.113.50").status_code == 429
    call_command("users", "unlock", "alice")
    response = login("alice", "right-pw", ip="203.0.113.50")
    assert response.status_code == 302 and response["Location"] == "/start/"  # the start page (pki.views.auth.landing)
    with pytest.raises(CommandError, match="No failed logins"):
        call_command("users", "unlock", "alice")


def test_lockouts_grow(alice, settings):
    """Each lockout of the same subject lasts twice as long as the one before."""
    seconds = []
    for _ in range(3):
        for _ in range(5):
            got = throttle.record_failure(throttle.ACCOUNT, "alice")
        seconds.append(got)
        from pki.models import AuthThrottle

        AuthThrottle.objects.filter(subject="alice").update(locked_until=0)  # the lockout has passed
    assert seconds == [60, 120, 240]


def test_success_resets_the_account(alice):
    for n in range(4):
        login("alice", f"guess-{n}")
    assert login("alice", "right-pw").status_code == 302
    assert login("alice", "guess-x", ip="192.0.2.99").status_code == 200  # counting starts again
