"""Guessing enrollment codes (issue 11 item 8): the built-in EMPTY profile limits failed attempts, also over
SCEP CA mode (the default alias's mode), and REST does not say which end entities exist."""

from __future__ import annotations

import importlib
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity, EndEntityProfile
from endentities.services import ensure_empty_profile
from endentities.services.passwords import check_password, hash_password
from pki.models import Certificate
from protocols.scep.messages import FailInfo, PkiStatus
from tests.pki.test_api_auth import V1, fast_password_hashing, make_client  # noqa: F401 (autouse fixture)
from tests.protocols.scep.server_fixtures import *  # noqa: F403  (scep, scep_ca, alias_factory, ...)
from tests.protocols.scep.server_fixtures import client_key, make_csr

from .entities_support import *  # noqa: F403  (the shared fixtures)

WRONG = "Wrong username or enrollment code."


def test_empty_profile_limits_failed_logins(builtin_profiles):
    empty = ensure_empty_profile()
    assert (empty.max_failed_logins_use, empty.max_failed_logins) == (True, 10)


def test_existing_empty_profile_gets_the_limit(builtin_profiles, end_entity_factory, root_ca):
    """An installation from before: EMPTY unlimited and end entities registered without a limit. Both the data
    migration and the init path (ensure_empty_profile) close it."""
    end_entity_factory("old-device", ca=root_ca)
    EndEntityProfile.objects.filter(name="EMPTY").update(max_failed_logins_use=False, max_failed_logins=-1)
    EndEntity.objects.filter(username="old-device").update(max_failed_logins=None)
    from django.apps import apps

    migration = importlib.import_module("endentities.migrations.0004_empty_profile_failed_login_limit")
    migration.limit_empty(apps, None)
    assert EndEntityProfile.objects.get(name="EMPTY").max_failed_logins == 10
    assert EndEntity.objects.get(username="old-device").max_failed_logins == 10
    EndEntityProfile.objects.filter(name="EMPTY").update(max_failed_logins_use=False, max_failed_logins=-1)
    assert ensure_empty_profile().max_failed_logins_use is True
    assert EndEntityProfile.objects.get(name="EMPTY").max_failed_logins == 10


def test_scep_ca_mode_guessing_stops_at_the_limit(scep, scep_ca, alias_factory, end_entity_factory):
    """The attack: guess router1's code over the public SCEP endpoint. After 10 wrong guesses on the default
    (EMPTY) profile the code is dead: even the right one no longer issues anything."""
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "right-code", ca=scep_ca)
    key = client_key(40)
    for n in range(10):
        result = scep.enroll(make_csr(key, "CN=router1", f"guess-{n}"), key, scep_ca.certificate)
        assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    ee = EndEntity.objects.get(username="router1")
    assert (ee.failed_login_count, ee.status) == (10, EndEntityStatus.GENERATED)
    result = scep.enroll(make_csr(key, "CN=router1", "right-code"), key, scep_ca.certificate)
    assert result.status == PkiStatus.FAILURE
    assert not Certificate.objects.filter(username="router1").exists()


# --- REST: one answer whatever the name ----------------------------------------------------------------

@pytest.fixture
def rest_entities(entity_factory, ee_profile_factory, ca_factory, root_ca, actor):
    from endentities.services import add_end_entity
    from endentities.validation import EndEntityInput

    entity_factory("p12user", token_type="P12")
    entity_factory("csruser")
    entity_factory("deaduser", token_type="P12", status="GENERATED")
    other = ca_factory("OtherCA")
    elsewhere = ee_profile_factory("Elsewhere", ca=other)
    add_end_entity(actor, EndEntityInput(username="otheruser", password="foo123", subject_dn="CN=otheruser",
                                         token_type="P12"), profile=elsewhere)


def _keystore(client, username: str, password: str):
    return client.post(f"{V1}/certificate/enrollkeystore",
                       {"username": username, "password": password, "key_alg": "EC", "key_spec": "P-256"},
                       format="json")


def _pkcs10(client, username: str, password: str, csr_factory):
    csr, _ = csr_factory(f"CN={username}")
    return client.post(f"{V1}/certificate/pkcs10enroll",
                       {"certificate_request": csr.public_bytes(Encoding.PEM).decode(), "username": username,
                        "password": password, "include_chain": False}, format="json")


ENROLLER_RULES = ["/ca_functionality/create_certificate"]


@pytest.mark.parametrize("endpoint, username, password, why", [
    ("keystore", "nobody", "foo123", "unknown name"),
    ("keystore", "p12user", "wrong", "wrong code"),
    ("keystore", "csruser", "wrong", "wrong code of a USERGENERATED end entity"),
    ("keystore", "deaduser", "wrong", "wrong code of an end entity that may not enroll"),
    ("keystore", "otheruser", "foo123", "right code, but the caller may not use its CA"),
    ("pkcs10", "nobody", "foo123", "unknown name, caller may not add end entities"),
    ("pkcs10", "csruser", "wrong", "wrong code"),
    ("pkcs10", "otheruser", "foo123", "right code, but the caller may not use its CA"),
])
def test_rest_does_not_reveal_end_entities(rest_entities, root_ca, csr_factory, endpoint, username, password, why):
    client = make_client("enroller", [*ENROLLER_RULES, f"/ca/{root_ca.pk}"])
    before = EndEntity.objects.count()
    r = _keystore(client, username, password) if endpoint == "keystore" else \
        _pkcs10(client, username, password, csr_factory)
    assert (r.status_code, r.json()) == (403, {"error_code": 403, "error_message": WRONG}), why
    assert EndEntity.objects.count() == before and not Certificate.objects.filter(username=username).exists()


def test_unknown_name_costs_a_hash_check(rest_entities, root_ca, settings):
    """Timing class: an unknown name is refused after as much hashing as a wrong code (without it the answer
    came ~100 times faster, which tells the names apart as well as a different text would)."""
    settings.PKI_ENROLLMENT_CODE_ITERATIONS = 400_000
    EndEntity.objects.filter(username="p12user").update(password_hash=hash_password("foo123"))
    encoded = EndEntity.objects.get(username="p12user").password_hash
    start = time.perf_counter()
    check_password("wrong", encoded)
    one_check = time.perf_counter() - start
    client = make_client("enroller", [*ENROLLER_RULES, f"/ca/{root_ca.pk}"])
    for username in ("nobody", "otheruser", "p12user"):
        start = time.perf_counter()
        r = _keystore(client, username, "wrong-code")
        elapsed = time.perf_counter() - start
        assert r.status_code == 403 and r.json()["error_message"] == WRONG
        assert elapsed >= 0.6 * one_check, (username, elapsed, one_check)


def test_right_code_still_hears_the_status(entity_factory):
    """Whoever knows the code may learn why it cannot be used now (nothing is revealed to a guesser)."""
    from endentities.services import EnrollmentDenied, enroll_keystore

    entity_factory("done", token_type="P12", status="GENERATED")
    with pytest.raises(EnrollmentDenied) as exc:
        enroll_keystore("done", "foo123", interface="rest")
    assert "GENERATED" in exc.value.message
    with pytest.raises(EnrollmentDenied) as exc:
        enroll_keystore("done", "wrong", interface="rest")
    assert exc.value.message == WRONG
    assert EndEntity.objects.get(username="done").failed_login_count == 0  # nothing left to lock
