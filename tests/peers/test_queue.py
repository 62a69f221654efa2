"""The RA's work queue on PostgreSQL with several connections at once: leases never overlap, a lease that runs out
hands the item out again with the same idempotency key, deadlines hold, and waiting ends on NOTIFY."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from peers import queue, waiting
from peers.choices import WorkStatus
from peers.models import PeerWorkItem
from pki.db import statement_name

pytestmark = pytest.mark.django_db(transaction=True)


def _in_thread(fn, *args, **kw):
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_concurrent_leases_never_hand_out_one_item_twice():
    items = [queue.submit("scep.get", {"n": n}, "scep:scep", 60) for n in range(24)]
    barrier = threading.Barrier(3)

    def lease(name):
        barrier.wait()
        got = []
        for _ in range(6):
            got += [i.pk for i in queue.lease(name, limit=3)]
        return got

    runs = [_in_thread(lease, f"connector-{n}") for n in range(3)]
    seen = []
    for thread, out in runs:
        thread.join(30)
        assert "error" not in out, out.get("error")
        seen += out["value"]
    assert sorted(seen) == sorted(i.pk for i in items)  # each once, none lost
    assert set(PeerWorkItem.objects.values_list("status", "attempts")) == {(WorkStatus.LEASED, 1)}


def test_a_lease_that_runs_out_hands_the_item_out_again_with_the_same_key():
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 60)
    (first,) = queue.lease("connector-a")
    assert queue.lease("connector-b") == []
    PeerWorkItem.objects.filter(pk=item.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    (again,) = queue.lease("connector-b")
    assert (again.pk, again.idempotency_key, again.attempts, again.leased_by) == (
        first.pk, first.idempotency_key, 2, "connector-b")
    # Answered by the connector that died late and by the new one: the first answer wins, once.
    assert queue.answer("connector-a", item.pk, item.idempotency_key, {"status": 200, "body": "QQ=="}) == "accepted"
    assert queue.answer("connector-b", item.pk, item.idempotency_key, {"status": 200, "body": "Qg=="}) == "duplicate"
    assert PeerWorkItem.objects.get().result["body"] == "QQ=="


def test_an_item_past_its_deadline_is_never_handed_out():
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 0.2)
    assert queue.wait_for_answer(item) is None
    assert PeerWorkItem.objects.get().status == WorkStatus.EXPIRED
    assert queue.lease("connector-a") == []


def test_the_requester_wakes_when_the_answer_comes():
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
    start = time.monotonic()
    thread, out = _in_thread(queue.wait_for_answer, item)
    time.sleep(0.3)
    queue.answer("connector-a", item.pk, item.idempotency_key, {"status": 200})
    thread.join(10)
    assert out["value"].status == WorkStatus.DONE
    assert time.monotonic() - start < 2  # woken by NOTIFY, not by the 20 s deadline


def test_a_waiting_lease_wakes_when_work_arrives():
    thread, out = _in_thread(queue.lease, "connector-a", limit=4, wait_seconds=20)
    time.sleep(0.3)
    start = time.monotonic()
    item = queue.submit("scep.get", {}, "scep:scep", 20)
    thread.join(10)
    assert [i.pk for i in out["value"]] == [item.pk]
    assert time.monotonic() - start < 2


def test_answers_posted_together_are_each_recorded_once():
    a, b = (queue.submit("scep.pkioperation", {}, "scep:scep", 60) for _ in range(2))
    queue.lease("connector-a")
    assert queue.answer("connector-a", b.pk, b.idempotency_key, {"status": 200, "body": "Qg=="}) == "accepted"
    outcomes = queue.answer_many("connector-a", [
        (a.pk, a.idempotency_key, {"status": 200, "body": "QQ=="}),
        (b.pk, b.idempotency_key, {"status": 200, "body": "Qw=="}),  # answered before: changes nothing
        (a.pk, "0" * 32, {"status": 200}),  # a wrong key
        (a.pk, a.idempotency_key, {"status": 500})])  # twice in one post: the first wins
    assert outcomes == ["accepted", "duplicate", "unknown", "duplicate"]
    assert dict(PeerWorkItem.objects.values_list("pk", "result__body")) == {a.pk: "QQ==", b.pk: "Qg=="}


@pytest.mark.parametrize(("body", "looks"), [
    ("QQ==", 0),  # the answer came with its notification: no statement at all
    ("Q" * (waiting.NOTICE_ANSWER_MAX + 100), 1),  # too large to travel with it: one look
])
def test_a_requester_is_woken_by_its_own_answer_only(fresh_listener, body, looks):
    """The process's one listener wakes a requester for its own answer only: others' answers must not wake it into
    a query, and its own connection neither LISTENs nor UNLISTENs. An answer that fits in its notification is
    handed over with it; a larger one is looked up once."""
    # Listening before the submit, as in a busy RA: a requester that came before the LISTEN (the process's first,
    # or the first after an idle close) looks once more when it is in place, which would count below.
    _listen_before_anything_is_submitted(fresh_listener)
    mine, *others = (queue.submit("scep.pkioperation", {}, "scep:scep", 20) for _ in range(6))
    statements: list[str] = []

    def wait_counting():
        with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
            return queue.wait_for_answer(mine)

    thread, out = _in_thread(wait_counting)
    time.sleep(0.3)
    for item in others:
        queue.answer("connector-a", item.pk, item.idempotency_key, {"status": 200, "body": "Qg=="})
        time.sleep(0.05)
    queue.answer("connector-a", mine.pk, mine.idempotency_key, {"status": 200, "body": body})
    thread.join(10)
    answered = out["value"]
    assert (answered.pk, answered.status, answered.result) == (mine.pk, WorkStatus.DONE, {"status": 200, "body": body})
    # Once (the session's first use): the prepared-statement registry's look-up and the PREPARE.
    statements = [s for s in statements if not s.startswith(("PREPARE", "SELECT name FROM pg_prepared_statements"))]
    # None for the five other answers; one look at most, the one its own answer woke.
    look = f"EXECUTE {statement_name('peers_answered', queue._ANSWERED_SQL)}"
    assert [s.split("(")[0] for s in statements] == [look] * looks, statements


def test_the_answer_statement_sends_answers_up_to_the_notice_limit():
    assert f"octet_length(result::text) <= {waiting.NOTICE_ANSWER_MAX} " in queue._ANSWER_SQL


@pytest.fixture
def fresh_listener(monkeypatch):
    """A listener of the test's own in place of the process's (stopped at the end, before the database goes)."""
    waiting.listener.stop()  # the process's, from earlier tests: its connection would count below
    mine = waiting.Listener()
    monkeypatch.setattr(waiting, "listener", mine)
    yield mine
    mine.stop()


def _listen_before_anything_is_submitted(listener: waiting.Listener) -> None:
    with listener.waiting("warming"):
        deadline = time.monotonic() + 10
        while not listener.listening:
            assert time.monotonic() < deadline, "the listener never listened"
            time.sleep(0.01)


def _answer_soon(item, delay: float = 0.3) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), queue.answer(
        "connector-a", item.pk, item.idempotency_key, {"status": 200}), connection.close()))
    thread.start()
    return thread


def test_many_requesters_share_one_listening_connection(fresh_listener):
    items = [queue.submit("scep.pkioperation", {}, "scep:scep", 20) for _ in range(6)]
    waiters = [_in_thread(queue.wait_for_answer, item) for item in items]
    time.sleep(0.3)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
                    ["LISTEN peers_done"])
        listening = cur.fetchone()[0]
    for item in items:
        queue.answer("connector-a", item.pk, item.idempotency_key, {"status": 200})
    for thread, out in waiters:
        thread.join(10)
        assert out["value"].status == WorkStatus.DONE
    assert listening == 1  # the listener's connection; six waiting requesters, none of them listening


def test_an_answer_notified_before_its_requester_registered_still_wakes_it(fresh_listener):
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
    fresh_listener._wake({str(item.pk)})  # as if its notification came between submit and wait
    looks: list[float] = []

    def look() -> list[tuple]:
        looks.append(time.monotonic())
        return [("answered",)] if len(looks) == 1 else []

    fresh_listener._since = time.monotonic() - 1  # listening since before the submit: covered
    fresh_listener._thread = threading.current_thread()  # no thread of its own for this test
    start = time.monotonic()
    assert waiting.wait(str(item.pk), look, 10, looked_at=time.monotonic()) == [("answered",)]
    assert looks and looks[0] - start < 0.5  # at once, not after the five-second look


def test_requesters_still_get_their_answer_while_the_listener_cannot_connect(monkeypatch):
    def refuse():
        raise OSError("connection refused")

    down = waiting.Listener(connect=refuse)
    monkeypatch.setattr(waiting, "listener", down)
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
    answering = _answer_soon(item)
    start = time.monotonic()
    try:
        done = queue.wait_for_answer(item)
    finally:
        down.stop()
    answering.join(10)
    assert done.status == WorkStatus.DONE
    assert time.monotonic() - start < 2  # looked every 50 ms, not every five seconds


def test_a_listener_back_after_a_loss_covers_its_waiters_again(fresh_listener):
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
    thread, out = _in_thread(queue.wait_for_answer, item)
    deadline = time.monotonic() + 5
    while not fresh_listener.listening and time.monotonic() < deadline:
        time.sleep(0.02)
    with connection.cursor() as cur:  # the listener's connection is lost
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND query = 'LISTEN peers_done'")
    time.sleep(0.5)  # it comes back (backoff 0.1 s) with a new LISTEN
    assert fresh_listener.listening
    start = time.monotonic()
    queue.answer("connector-a", item.pk, item.idempotency_key, {"status": 200})
    thread.join(10)
    assert out["value"].status == WorkStatus.DONE
    assert time.monotonic() - start < 1  # woken by the new LISTEN's notification


def test_an_idle_listener_closes_its_connection(fresh_listener, monkeypatch):
    monkeypatch.setattr(waiting, "IDLE_CLOSE", 0.2)
    item = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
    _answer_soon(item, 0.1).join(10)
    assert queue.wait_for_answer(item).status == WorkStatus.DONE
    deadline = time.monotonic() + 5
    while fresh_listener._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fresh_listener._thread is None and not fresh_listener.listening
    # The next requester starts it again.
    again = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
    answering = _answer_soon(again)
    assert queue.wait_for_answer(again).status == WorkStatus.DONE
    answering.join(10)


def test_the_queue_statements_commit_without_waiting_for_the_flush():
    """submit, lease and answer turn synchronous_commit off for their own implicit transaction (peers.queue's
    durability note); inside a caller's transaction the caller's durability stays."""
    no_flush = f"EXECUTE {statement_name('peers_no_flush', queue.NO_FLUSH[1])}"
    sent: list[str] = []
    with connection.execute_wrapper(lambda execute, sql, *args: sent.append(sql) or execute(sql, *args)):
        item = queue.submit("scep.pkioperation", {}, "scep:scep", 20)
        (leased,) = queue.lease("connector-a", limit=1)
        assert queue.answer("connector-a", leased.pk, leased.idempotency_key, {"status": 200}) == "accepted"
    kinds = ("peers_wake", "peers_lease", "peers_answer")
    for kind in kinds:
        (text,) = [s for s in sent if kind in s and not s.startswith("PREPARE")]
        assert text.startswith(no_flush + "; "), text
    with connection.cursor() as cur:
        cur.execute("SELECT current_setting('synchronous_commit')")
        assert cur.fetchone()[0] == "on"  # the session's own setting is untouched
    sent.clear()
    with transaction.atomic(), connection.execute_wrapper(
            lambda execute, sql, *args: sent.append(sql) or execute(sql, *args)):
        assert queue.answer("connector-a", item.pk, item.idempotency_key, {"status": 200}) == "duplicate"
    assert sent and not any(no_flush in s for s in sent)
