"""Guessing the SCEP RA shared secret (ra.authPwd, issue 11 item 8): after the limit of wrong secrets from an
address, its requests are refused before the secret is compared (CertRep FAILURE badRequest), other addresses
are not affected, and concurrent guesses overshoot the limit by at most the requests in flight."""

from __future__ import annotations

import threading

import pytest
from django.test import Client

from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate
from protocols.scep.messages import FailInfo, PkiStatus

from .server_fixtures import *  # noqa: F403
from .server_fixtures import ScepTestClient, client_key, make_csr

COMPARED = "the challenge password is not the alias's RA shared secret"
UNCHECKED = "refused unchecked"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.PKI_SCEP_RA_FAILURE_LIMIT = 5
    settings.PKI_SCEP_RA_LOCKOUT_SECONDS = 60


def device(ip: str) -> ScepTestClient:
    return ScepTestClient(Client(REMOTE_ADDR=ip))


def reasons() -> list[str]:
    return [e.details.get("reason", "") for e in
            AuditEvent.objects.filter(event_type="SCEP_ENROLLMENT", outcome="FAILURE").order_by("sequence")]


@pytest.mark.django_db
@pytest.mark.parametrize("secrets, last_ok", [
    (["wrong"] * 4 + ["s3cret"], True),    # under the limit: the right secret still works
    (["wrong"] * 5 + ["s3cret"], False),   # at the limit: refused before comparing, even the right secret
    (["wrong"] * 9 + ["s3cret"], False),
])
def test_guessing_from_one_address_stops_at_the_limit(scep_ca, ra, secrets, last_ok):
    attacker, key = device("192.0.2.66"), client_key(70)
    for n, secret in enumerate(secrets):
        result = attacker.enroll(make_csr(key, f"CN=guess{n}", secret), key, scep_ca.certificate)
        if secret == "s3cret" and last_ok:
            assert result.status == PkiStatus.SUCCESS
        else:
            assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    compared = sum(COMPARED in r for r in reasons())
    assert compared == min(secrets.count("wrong"), 5)
    assert sum(UNCHECKED in r for r in reasons()) == len(secrets) - compared - (1 if last_ok else 0)
    assert Certificate.objects.filter(username__startswith="guess").count() == (1 if last_ok else 0)


@pytest.mark.django_db
def test_other_addresses_are_not_affected(scep_ca, ra):
    attacker, honest, key = device("192.0.2.66"), device("198.51.100.20"), client_key(71)
    for n in range(5):
        attacker.enroll(make_csr(key, f"CN=bad{n}", "wrong"), key, scep_ca.certificate)
    assert honest.enroll(make_csr(key, "CN=good", "s3cret"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    # A success elsewhere does not lift the attacker's lockout.
    result = attacker.enroll(make_csr(key, "CN=bad9", "s3cret"), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.filter(username__startswith="bad").exists()
    assert AuditEvent.objects.filter(event_type="ACCOUNT_LOCKOUT", object_type="scep-ra",
                                     object_id="192.0.2.66").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_guessing_overshoots_by_at_most_the_concurrency(scep_ca, ra):
    from django.db import connections

    threads, rounds, limit = 6, 3, 5
    barrier = threading.Barrier(threads)
    statuses: list[PkiStatus] = []

    def guess(t: int) -> None:
        try:
            attacker, key = device("192.0.2.77"), client_key(72 + t)
            barrier.wait()
            for r in range(rounds):
                statuses.append(attacker.enroll(make_csr(key, f"CN=c{t}-{r}", f"wrong{r}"), key,
                                                scep_ca.certificate).status)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=guess, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert statuses == [PkiStatus.FAILURE] * (threads * rounds)
    compared = sum(COMPARED in r for r in reasons())
    assert limit <= compared <= limit - 1 + threads, compared
    assert sum(UNCHECKED in r for r in reasons()) == threads * rounds - compared
