"""HTTP Basic on the REST API (pki.auth.basic): malformed credentials are 401 before the database, guessing is
throttled per address and per account (429 + Retry-After, no hashing), unknown and known users look the same,
right credentials are remembered without re-hashing, and an administrator clears a lockout."""

from __future__ import annotations

import base64
import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from pki.models import AuditEvent, AuthThrottle

STATUS = "/ejbca/ejbca-rest-api/v1/endentity/status"
_done = [0]
_lock = threading.Lock()


class CountingHasher(MD5PasswordHasher):
    """A real (fast) hasher that counts its work: what an attacker makes the server spend. verify() hashes
    through encode(), and so does the dummy hash Django spends on unknown users: one count per check."""

    algorithm = "counting_md5"

    def encode(self, password, salt):
        with _lock:
            _done[0] += 1
        return super().encode(password, salt)



def _peek() -> int:
    """Hash operations so far (thread-safe)."""
    with _lock:
        return _done[0]


@pytest.fixture(autouse=True)
def counting_hasher(settings, db):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    settings.PKI_AUTH_FAILURE_LIMIT = 5
    settings.PKI_AUTH_LOCKOUT_SECONDS = 60
    cache.clear()  # successes remembered by an earlier (transactional) test
    yield
    cache.clear()


def basic(username: str, password: str, raw: bytes | None = None) -> str:
    token = raw if raw is not None else f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(token).decode()


@pytest.fixture
def alice(db):
    from pki.choices import MemberMatch
    from pki.models import AccessRule, Role, RoleMember

    user = get_user_model().objects.create_user("alice", password="right-pw")
    role = Role.objects.create(name="alice-role")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type=MemberMatch.LOCAL_USER, match_value="alice")
    return user


def call(header: str, ip: str = "192.0.2.1"):
    return APIClient().get(STATUS, HTTP_AUTHORIZATION=header, REMOTE_ADDR=ip)


@pytest.mark.parametrize("raw, why", [
    (b"ad\0min:x", "NUL in the user name (was a 500: NUL reached the database)"),
    (b"alice:pw\0", "NUL in the password"),
    (b"al\x1bice:x", "escape character"),
    (b"alice:\x7f", "DEL"),
    ("al\u0085ice:x".encode(), "C1 control (NEL)"),
    (b"\xff\xfe:x", "not UTF-8"),
    (b"alice-no-colon", "no separator"),
    (b":x", "empty user name"),
    (b"a" * 151 + b":x", "user name longer than any account's"),
    (b"alice:" + b"p" * 5000, "absurd password length"),
])
def test_malformed_credentials_are_401_before_the_database(alice, django_assert_num_queries, raw, why):
    with django_assert_num_queries(0):
        r = call(basic("", "", raw))
    assert r.status_code == 401, why
    assert r.json()["error_code"] == 401 and "Invalid basic header" in r.json()["error_message"]


@pytest.mark.parametrize("header", ["Basic", "Basic !!!notbase64", "Basic YWxpY2U6cmlnaHQtcHc= extra"])
def test_unreadable_header_is_401(alice, header):
    assert call(header).status_code == 401


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_guessing_is_throttled_before_hashing(alice, username):
    """The attack: many passwords for one name from one address. Five are checked; the rest are 429 without
    hashing, for a known and an unknown name alike (the answers are the same, one by one)."""
    statuses, start = [], _peek()
    for n in range(12):
        r = call(basic(username, f"guess-{n}"))
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r["Retry-After"]) > 0 and r.json()["error_code"] == 429
    assert statuses == [401] * 5 + [429] * 7
    assert _peek() - start == 5  # one hash check per counted failure, none for the refused ones
    # The lockout is audited once per subject (account name and address), the refusals are not.
    locks = AuditEvent.objects.filter(event_type="ACCOUNT_LOCKOUT")
    assert sorted(locks.values_list("object_type", "object_id")) == [("account", username), ("address", "192.0.2.1")]


def test_unknown_and_known_users_look_the_same(alice):
    answers = {}
    for username in ("alice", "nobody"):
        cache.clear()
        r = call(basic(username, "wrong"), ip=f"198.51.100.{len(answers) + 1}")
        answers[username] = (r.status_code, r.json(), r.get("WWW-Authenticate"))
    assert answers["alice"] == answers["nobody"]
    assert answers["alice"][0] == 401


def test_account_locked_across_addresses_and_cleared_by_the_admin(alice, capsys):
    for n in range(5):  # spread over addresses: the per-account count still adds up
        assert call(basic("alice", f"guess-{n}"), ip=f"203.0.113.{n}").status_code == 401
    assert call(basic("alice", "right-pw"), ip="203.0.113.99").status_code == 429  # even the right one
    call_command("users", "status")
    assert "alice" in capsys.readouterr().out
    call_command("users", "unlock", "alice")
    assert "Unlocked" in capsys.readouterr().out
    assert call(basic("alice", "right-pw"), ip="203.0.113.99").status_code == 200
    assert AuditEvent.objects.filter(event_type="ACCOUNT_UNLOCK", object_id="alice", actor="cli").exists()
    assert not AuthThrottle.objects.filter(scope="account", subject="alice").exists()


def test_success_does_not_reset_the_address(alice, settings):
    """An attacker with one valid account must not reset the address budget it spends on other accounts."""
    for n in range(4):
        assert call(basic(f"victim{n}", "guess")).status_code == 401
    assert call(basic("alice", "right-pw")).status_code == 200
    assert call(basic("victim9", "guess")).status_code == 401  # the fifth failure of this address
    assert call(basic("victim10", "guess")).status_code == 429


def test_right_credentials_are_remembered_until_the_password_changes(alice):
    start = _peek()
    for _ in range(5):
        assert call(basic("alice", "right-pw")).status_code == 200
    assert _peek() - start == 1  # hashed once, then the cache of recent successes answers
    alice.set_password("new-pw")
    alice.save()
    assert call(basic("alice", "right-pw")).status_code == 401  # the remembered success no longer counts
    assert call(basic("alice", "new-pw")).status_code == 200
    alice.is_active = False
    alice.save()
    assert call(basic("alice", "new-pw")).status_code == 401


def test_cache_holds_no_password(alice):
    call(basic("alice", "right-pw"))
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT cache_key, value FROM pki_cache")
        rows = cur.fetchall()
    assert rows and not any("right-pw" in k or "alice" in k for k, _v in rows)


@pytest.mark.django_db(transaction=True)
def test_concurrent_guessing_overshoots_by_at_most_the_concurrency(alice):
    """16 threads guess at once on PostgreSQL, 4 rounds: the checks that run are at most the limit plus the
    requests in flight when it was reached, never one per request."""
    from django.db import connections

    threads, rounds, limit = 16, 4, 5
    start = _peek()
    statuses: list[int] = []
    barrier = threading.Barrier(threads)

    def guess(t: int) -> None:
        try:
            barrier.wait()
            for r in range(rounds):
                statuses.append(call(basic("alice", f"guess-{t}-{r}")).status_code)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=guess, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    checked = _peek() - start
    assert len(statuses) == threads * rounds and set(statuses) <= {401, 429}
    assert statuses.count(401) == checked
    assert checked <= limit - 1 + threads, checked
    assert statuses.count(429) >= threads * rounds - (limit - 1 + threads)
    assert AuditEvent.objects.filter(event_type="ACCOUNT_LOCKOUT", object_type="account").count() == 1


def test_a_one_time_password_does_not_open_the_api_by_basic(alice, settings):
    """The attack: an administrator resets alice's password and hands her the one-time one (or someone reads
    it over a shoulder); over HTTP Basic it would open the whole API without ever being changed. It must be
    changed first, as in the browser: 403 saying so, and the credential is not remembered either."""
    from pki.models import LocalAccount

    settings.PKI_BASIC_AUTH_CACHE_SECONDS = 60
    alice.set_password("one-time-pw")
    alice.save()
    LocalAccount.objects.update_or_create(user=alice, defaults={"must_change_password": True})
    for _ in range(2):  # a second call must not get in through the success cache
        r = call(basic("alice", "one-time-pw"))
        assert r.status_code == 403
        assert "one-time password" in r.json()["error_message"]
    LocalAccount.objects.filter(user=alice).update(must_change_password=False)
    assert call(basic("alice", "one-time-pw")).status_code == 200
