"""The CA's connector process: for each enabled outgoing connector, connect to the RA with mTLS, push the SCEP
data the RA answers on its own, then lease waiting work (held open by the RA until some arrives), run each item
(:func:`peers.carry.carry`) in a small thread pool and post its answer. On any failure: record it on the
connector (state, failures, last TLS error) and reconnect after a back-off that doubles up to
:data:`MAX_BACKOFF` seconds. ``manage.py peer run`` runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue
from typing import Any

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F
from django.utils import timezone

from pki.auth.access import Actor

from . import carry
from .choices import ConnectorState, WorkKind
from .models import PeerConnector
from .transport import PeerClient, PeerError

logger = logging.getLogger("peers")
LEASE_WAIT = 20.0
PUSH_EVERY = 60.0
MAX_BACKOFF = 60.0
# Requests carried at once per connector: as many as devices an RA holds at once in the usual case (its gunicorn
# holds each carried request's thread), so they are not queued at the RA while the CA has CPU to spare.
WORKERS = 8
ANSWER_ATTEMPTS = 3
MAX_ANSWERS = 64  # per post: what the RA takes (peers.ra_views.MAX_ANSWERS)
# Bytes of answer bodies per post: the RA reads a post within Django's upload limit (2.5 MB by default) and refuses
# a larger one whole; a carried answer is at most 1 MiB (1.4 MB in base64), so one always fits alone.
MAX_POST_BODIES = 2 * 1024 * 1024


def _answer_size(entry: tuple[dict, dict]) -> int:
    body = entry[1].get("body")
    return (len(body) if isinstance(body, str) else 0) + 1024


def _update(connector_id: int, **fields: Any) -> None:
    PeerConnector.objects.filter(pk=connector_id).update(**fields)


def _failed(connector: PeerConnector, exc: PeerError) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {"state": ConnectorState.FAILING, "failures": F("failures") + 1,
                              "last_error": exc.text[:1024]}
    if exc.tls:
        fields.update(last_tls_error=exc.text[:1024], last_tls_error_at=now)
    _update(connector.pk, **fields)
    logger.warning("Peer connector %s: %s", connector.name, exc.text)


def still_usable(connector: PeerConnector) -> bool:
    """Whether a connected session may go on with the credentials it connected with: the connector still enabled,
    its authentication key binding the same, active, with the same certificate, which is still valid (not revoked,
    not expired). Checked once a second while connected, so a binding disabled or revoked, or a certificate renewed,
    ends the session within a second (the next session connects with what is current, or is refused)."""
    from keybindings.choices import BindingStatus, CertificateState

    current = (PeerConnector.objects.select_related("binding__certificate")
               .filter(pk=connector.pk, enabled=True, binding_id=connector.binding_id).first())
    if current is None:
        return False
    binding = current.binding
    return (binding.status == BindingStatus.ACTIVE and binding.certificate_id == connector.binding.certificate_id
            and binding.certificate_state() == CertificateState.VALID)


def scep_push_payload() -> dict[str, Any]:
    """The CA's SCEP aliases and its answers to their read-only operations (what an RA serves by itself)."""
    from protocols.scep.models import ScepAlias

    aliases = []
    for name in ScepAlias.objects.order_by("name").values_list("name", flat=True):
        alias = carry._scep_alias(name)
        if alias is None:  # disabled
            aliases.append({"name": name, "enabled": False, "max_body_size": 65536, "responses": {}})
            continue
        responses = {f"{op}|": carry.scep_get(alias, op, None) for op in carry.SCEP_GETS}
        aliases.append({"name": name, "enabled": True, "max_body_size": alias.max_body_size,
                        "responses": responses})
    return {"aliases": aliases}


def test_connection(connector: PeerConnector) -> dict[str, Any]:
    """Connect once and say hello (``peer test``): the RA's answer, or PeerError."""
    client = PeerClient(connector, timeout=15)
    try:
        return client.call("GET", "hello")
    finally:
        client.close()


class _Pushing:
    """A session's status-push thread; ``done`` ends it."""

    def __init__(self) -> None:
        self.done = threading.Event()


class ConnectorRunner:
    """One connector's loop (a thread of ``peer run``)."""

    def __init__(self, connector_id: int, stop: threading.Event, *, workers: int = WORKERS,
                 lease_wait: float = LEASE_WAIT):
        self.connector_id, self.stop = connector_id, stop
        self.workers, self.lease_wait = workers, lease_wait
        self.backoff = 1.0
        self._looked = threading.local()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                close_old_connections()
                connector = PeerConnector.objects.select_related("binding").filter(pk=self.connector_id).first()
                if connector is None:
                    return
                if not connector.enabled:
                    _update(connector.pk, state=ConnectorState.DISCONNECTED)
                    self.stop.wait(5)
                    continue
                try:
                    self._session(connector)
                except PeerError as exc:
                    _failed(connector, exc)
                    delay = self.backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret
                    self.backoff = min(self.backoff * 2, MAX_BACKOFF)
                    self.stop.wait(delay)
        finally:
            _update(self.connector_id, state=ConnectorState.DISCONNECTED)
            connection.close()

    def _session(self, connector: PeerConnector) -> None:
        _update(connector.pk, state=ConnectorState.CONNECTING)
        client = PeerClient(connector)
        pushing: _Pushing | None = None
        try:
            hello = client.call("GET", "hello")
            if hello.get("node") == "va":  # nothing to lease at a VA: push status as it changes (peers.push)
                self._push_session(connector, client, "va")
                return
            client.call("POST", "push/scep", scep_push_payload())
            _update(connector.pk, state=ConnectorState.CONNECTED, remote_role=str(hello.get("node", ""))[:8],
                    last_contact=timezone.now(), last_error="")
            self.backoff = 1.0
            logger.info("Peer connector %s connected to %s (%s)", connector.name, connector.url, hello.get("node"))
            # After the first lease is on its way: the RA is served first when the connector (re)starts.
            pushing = self._start_pusher(connector, client, "ra", delay=0.5)
            pushed = checked = time.monotonic()
            # The connector's rights (5 queries), looked up with the once-a-second check rather than per lease: a
            # rule taken away stops the carrying within a second, as a disabled binding does.
            who = carry.connector_actor(connector)
            answers = _Answers(self, connector, client)
            try:
                # Twice the workers: a worker whose answer went before its record (peers.carry) frees its place
                # for the next item while its thread still writes that record.
                with ThreadPoolExecutor(2 * self.workers, thread_name_prefix=f"peer-{connector.pk}") as pool:
                    busy = threading.Semaphore(self.workers)
                    freed = threading.Event()
                    while not self.stop.is_set():
                        # Once a second, not per lease: under load a lease comes back at once for each new item.
                        if time.monotonic() - checked >= 1.0:
                            if not still_usable(connector):
                                return
                            who = carry.connector_actor(connector)
                            _update(connector.pk, last_contact=timezone.now(), state=ConnectorState.CONNECTED,
                                    **answers.carried_since())
                            checked = time.monotonic()
                        if time.monotonic() - pushed > PUSH_EVERY:
                            client.call("POST", "push/scep", scep_push_payload())
                            pushed = time.monotonic()
                        free = self._free(busy)
                        if not free:  # every worker busy: sleep until one is done (no polling)
                            freed.wait(1.0)
                            freed.clear()
                            continue
                        try:
                            leased = client.call("POST", "lease", {"wait": self.lease_wait, "max": free,
                                                                   "kinds": list(WorkKind.values)},
                                                 timeout=self.lease_wait + 15)
                        finally:
                            for _ in range(free):
                                busy.release()
                        for item in leased.get("items", []):
                            busy.acquire()
                            pool.submit(self._carry_one, connector, answers, item, who, busy, freed)
            finally:
                answers.close()
        finally:
            if pushing is not None:
                pushing.done.set()
            client.close()

    def _push_session(self, connector: PeerConnector, client: PeerClient, role: str) -> None:
        from .push import StatusPusher

        _update(connector.pk, state=ConnectorState.CONNECTED, remote_role=role, last_contact=timezone.now(),
                last_error="")
        self.backoff = 1.0
        logger.info("Peer connector %s connected to %s (%s): pushing certificate status", connector.name,
                    connector.url, role)

        def alive() -> bool:
            _update(connector.pk, last_contact=timezone.now())
            return still_usable(connector)

        StatusPusher(client, connector, role).run(self.stop, alive)

    def _start_pusher(self, connector: PeerConnector, client: PeerClient, role: str, delay: float = 0.0
                      ) -> _Pushing:
        """The status push to an RA beside the lease loop, in a thread of its own (a lease waits long). A push that
        fails is recorded and started again (with a fresh resynchronisation) after a pause; carrying goes on."""
        from .push import StatusPusher

        pushing = _Pushing()

        def run() -> None:
            pause = 1.0
            pushing.done.wait(delay)
            while not pushing.done.is_set() and not self.stop.is_set():
                try:
                    StatusPusher(client, connector, role).run(self.stop, lambda: not pushing.done.is_set())
                except Exception as exc:  # noqa: BLE001 - recorded; the push starts over
                    text = exc.text if isinstance(exc, PeerError) else f"{exc.__class__.__name__}: {exc}"
                    logger.warning("Peer connector %s: status push failed: %s", connector.name, text)
                    _update(connector.pk, last_error=f"Status push: {text}"[:1024], failures=F("failures") + 1)
                    client.close()
                    close_old_connections()
                    pushing.done.wait(pause)
                    pause = min(pause * 2, MAX_BACKOFF)
            client.close()  # this thread's connection
            connection.close()

        threading.Thread(target=run, name=f"peer-push-{connector.pk}", daemon=True).start()
        return pushing

    @staticmethod
    def _free(busy: threading.Semaphore) -> int:
        n = 0
        while busy.acquire(blocking=False):
            n += 1
        return n

    def _carry_one(self, connector: PeerConnector, answers: _Answers, item: dict, who: Actor | None,
                   busy: threading.Semaphore, freed: threading.Event) -> None:
        posted = False

        def free() -> None:  # once: when the answer is on its way, or at the end
            nonlocal posted
            if not posted:
                posted = True
                busy.release()
                freed.set()

        def answer_ready(result: dict) -> None:  # a SCEP answer, before its record is written (peers.carry)
            answers.put(item, result)
            free()

        try:
            # A connection past its age or broken is replaced; at most once a second per thread, as each look costs
            # a round trip to the database (its health check) before the item's first query.
            if time.monotonic() - getattr(self._looked, "at", 0.0) > 1.0:
                close_old_connections()
                self._looked.at = time.monotonic()
            try:
                result = carry.carry(connector, item, who, answer_ready)
            except carry.Busy:
                return  # another process runs it; the lease runs out and it comes back with the answer stored
            if not posted:
                answers.put(item, result)
        except Exception:
            self._looked.at = 0.0  # the next item looks at the connection first
            logger.exception("Peer connector %s: work item %s failed", connector.name, item.get("id"))
        finally:
            free()


class _Answers:
    """A session's answer poster: a thread of its own (with its own keep-alive connection) that posts every answer
    ready at that moment in one call, so under load one call and one authentication at the RA carry several
    answers, and when idle an answer goes at once. A post that fails is tried again (an answer is accepted once
    per key, so a repeat is harmless); one lost for good leaves its item to the RA's lease, which runs out and hands
    it out again, and the CA answers it from its record."""

    def __init__(self, runner: ConnectorRunner, connector: PeerConnector, client: PeerClient):
        self.runner, self.connector, self.client = runner, connector, client
        self.pending: SimpleQueue[tuple[dict, dict] | None] = SimpleQueue()
        self._carried, self._counting = 0, threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"peer-answers-{connector.pk}", daemon=True)
        self.thread.start()

    def put(self, item: dict, result: dict) -> None:
        self.pending.put((item, result))

    def close(self) -> None:
        """Post what is left, end the thread, and count what it carried."""
        self.pending.put(None)
        self.thread.join(timeout=30)
        counted = self.carried_since()
        if counted:
            try:
                _update(self.connector.pk, **counted)
            except DatabaseError:
                logger.exception("Peer connector %s: counting carried requests failed", self.connector.name)

    def carried_since(self) -> dict[str, Any]:
        """The requests the RA accepted answers for since the last call, as an update of the connector's counter
        (the session's once-a-second update records them: no statement of its own per answer post)."""
        with self._counting:
            carried, self._carried = self._carried, 0
        return {"requests_carried": F("requests_carried") + carried} if carried else {}

    def _run(self) -> None:
        try:
            closing, held = False, None
            while not closing:
                first = held if held is not None else self.pending.get()
                held = None
                if first is None:
                    return
                batch, size = [first], _answer_size(first)
                while len(batch) < MAX_ANSWERS and not self.pending.empty():
                    nxt = self.pending.get()
                    if nxt is None:
                        closing = True
                        break
                    if size + _answer_size(nxt) > MAX_POST_BODIES:
                        held = nxt  # the next post's first answer
                        break
                    batch.append(nxt)
                    size += _answer_size(nxt)
                self._post(batch)
        finally:
            self.client.close()  # this thread's connection
            connection.close()

    def _post(self, batch: list[tuple[dict, dict]]) -> None:
        body = {"answers": [{"id": item.get("id"), "key": item.get("key"), "result": result}
                            for item, result in batch]}
        for attempt in range(ANSWER_ATTEMPTS):
            try:
                outcomes = self.client.call("POST", "answer", body).get("outcomes", [])
                break
            except PeerError as exc:
                if attempt + 1 == ANSWER_ATTEMPTS or self.runner.stop.is_set() \
                        or (exc.status or 0) in (400, 401, 403, 404):
                    _failed(self.connector, exc)
                    return
                self.runner.stop.wait(0.2 * (attempt + 1))
        with self._counting:
            self._carried += sum(o != "unknown" for o in outcomes)
        try:
            for (item, _), outcome in zip(batch, outcomes, strict=False):
                if outcome != "unknown":
                    carry.forget_answer(self.connector, item)  # the RA has it: no keystore or personal data here
        except DatabaseError:
            logger.exception("Peer connector %s: recording answers failed", self.connector.name)
            close_old_connections()


def run_all(stop: threading.Event, *, names: list[str] | None = None, workers: int = WORKERS,
            lease_wait: float = LEASE_WAIT) -> None:
    """Run every enabled connector (or those named) until ``stop`` is set; new connectors are picked up."""
    threads: dict[int, threading.Thread] = {}
    while not stop.is_set():
        qs = PeerConnector.objects.all()
        if names:
            qs = qs.filter(name__in=names)
        try:
            pks = list(qs.values_list("pk", flat=True))
        except DatabaseError as exc:  # the database restarting, or not migrated yet: look again, do not exit
            logger.warning("Peer connectors: cannot read the connectors (%s); retrying", str(exc).strip()[:200])
            close_old_connections()
            pks = []
        for pk in pks:
            if pk not in threads or not threads[pk].is_alive():
                runner = ConnectorRunner(pk, stop, workers=workers, lease_wait=lease_wait)
                threads[pk] = threading.Thread(target=runner.run, name=f"peer-connector-{pk}", daemon=True)
                threads[pk].start()
        connection.close()
        stop.wait(10)
    for thread in threads.values():
        thread.join(timeout=lease_wait + 20)
