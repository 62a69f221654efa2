"""CA side: pushing certificate status and CRLs to a VA or RA node over the connector's mTLS connection.

On connect, a full resynchronisation: the CA certificates, then every certificate of every local CA (to a VA with
its DER, which the VA keeps as the responder's rows; to an RA only those revoked or on hold), in batches, then the
latest CRLs. After that, changes as they happen: the connector sleeps on ``LISTEN peers_status`` (a trigger of
migration 0002 notifies on every change of a certificate's status and every new CRL) and looks at least every
:data:`LOOK_EVERY` seconds for new certificates (found by id, so issuance costs no trigger).

What changed is read through indexes the CA already has: new certificates by primary key, revocations by
``(ca, revocation_recorded_at)``, reactivations by ``(ca, unrevoked_at)``, new CRLs by primary key. A change
written by a transaction that commits after a look is still caught: each look re-reads :data:`LOOKBACK` seconds
(and the last :data:`ID_WINDOW` ids), and what was pushed unchanged is skipped. Every record carries the CA's time
of the change, so a late push from another connector process never undoes a newer status on the node.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from pki.choices import CertificateStatus
from pki.models import CRL, Certificate, CertificateAuthority

from .models import PeerConnector, PushState
from .transport import PeerClient

logger = logging.getLogger("peers")
CHANNEL = "peers_status"
LOOK_EVERY = 2.0
LOOKBACK = dt.timedelta(seconds=60)
ID_WINDOW = 512
BATCH = 500


def _b64(data) -> str:
    return base64.b64encode(bytes(data)).decode()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _changed_at(row: Certificate) -> dt.datetime:
    return max(t for t in (row.updated_at, row.revocation_recorded_at, row.unrevoked_at, row.created_at) if t)


def certificate_record(row: Certificate, *, with_der: bool, fingerprints: dict[int, str]) -> dict[str, Any]:
    """One certificate's status as a node stores it (the DER for a VA, which keeps the certificate)."""
    record = {"ca": fingerprints[row.ca_id], "serial": row.serial, "status": row.status,
              "reason": row.revocation_reason, "revoked_at": _iso(row.revoked_at),
              "changed_at": _iso(_changed_at(row))}
    if with_der:
        record["der"] = _b64(row.der)
    return record


def ca_records() -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The CA certificates pushed (local CAs only: the CA pushes what it is the CA of) and id -> fingerprint."""
    from cryptography.hazmat.primitives import hashes

    records, fingerprints = [], {}
    for ca in CertificateAuthority.objects.local().exclude(certificate_der=None).order_by("pk"):
        cert = ca.certificate
        if cert is None:
            continue
        fingerprints[ca.pk] = cert.fingerprint(hashes.SHA256()).hex()
        records.append({"name": ca.name, "fingerprint": fingerprints[ca.pk], "certificate": _b64(ca.certificate_der)})
    return records, fingerprints


class _Waker:
    """Sleep until a NOTIFY on :data:`CHANNEL` or ``timeout``. LISTEN stays on for the session, so a change
    notified while a push is being sent wakes the next wait at once. Elsewhere than PostgreSQL: a plain sleep."""

    def __init__(self) -> None:
        self._listening_on = None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if connection.vendor != "postgresql":
            stop.wait(timeout)
            return
        connection.ensure_connection()
        raw = connection.connection
        if self._listening_on is not raw:  # a new database session: LISTEN again, and look once without waiting
            with connection.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            self._listening_on = raw
            return
        if not raw.notifies:
            select.select([raw], [], [], timeout)
        raw.poll()
        raw.notifies.clear()


class StatusPusher:
    """One connector's push to one VA or RA node (a thread of the connector's session)."""

    def __init__(self, client: PeerClient, connector: PeerConnector, remote_role: str):
        self.client, self.connector = client, connector
        self.with_der = remote_role == "va"
        self.revoked_only = remote_role != "va"
        self.fingerprints: dict[int, str] = {}
        self.cursor: dt.datetime | None = None
        self.last_id = 0
        self.last_crl_id = 0
        self.sent: dict[int, str] = {}  # certificate id -> changed_at pushed, within the look-back only

    # --- sending -------------------------------------------------------------------------------------------

    def _post(self, *, cas=None, certificates=(), crls=(), full: bool = False) -> None:
        body: dict[str, Any] = {"certificates": list(certificates), "crls": list(crls), "full": full}
        if cas is not None:
            body["cas"] = cas
        self.client.call("POST", "push/status", body, timeout=60)
        PushState.objects.filter(connector=self.connector).update(
            last_push_at=timezone.now(), certificates_pushed=F("certificates_pushed") + len(body["certificates"]),
            crls_pushed=F("crls_pushed") + len(body["crls"]))

    def _send(self, rows: list[Certificate]) -> int:
        records = []
        for row in rows:
            record = certificate_record(row, with_der=self.with_der, fingerprints=self.fingerprints)
            if self.sent.get(row.pk) == record["changed_at"]:
                continue
            if self.revoked_only and row.status == CertificateStatus.ACTIVE and row.unrevoked_at is None:
                continue  # an RA keeps only revocations (and reactivations, to drop one)
            records.append((row.pk, record))
        for start in range(0, len(records), BATCH):
            chunk = records[start:start + BATCH]
            self._post(certificates=[r for _, r in chunk])
            for pk, record in chunk:
                self.sent[pk] = record["changed_at"]
        return len(records)

    def _crls(self) -> int:
        rows = list(CRL.objects.filter(pk__gt=self.last_crl_id, ca_id__in=list(self.fingerprints)).order_by("pk")
                    .only("pk", "ca_id", "crl_number", "is_delta", "der"))
        if not rows:
            return 0
        # Only the latest full and delta CRL of each CA matter to the node.
        latest: dict[tuple[int, bool], CRL] = {}
        for row in rows:
            latest[(row.ca_id, row.is_delta)] = row
        self._post(crls=[{"ca": self.fingerprints[r.ca_id], "der": _b64(r.der)} for r in latest.values()])
        self.last_crl_id = rows[-1].pk
        return len(latest)

    # --- the two kinds of push -----------------------------------------------------------------------------

    def resync(self) -> None:
        """Everything the node needs, from the start (on every connect)."""
        started = timezone.now()
        PushState.objects.get_or_create(connector=self.connector)  # what follows counts on it
        cas, self.fingerprints = ca_records()
        self._post(cas=cas, full=True)
        qs = Certificate.objects.filter(ca_id__in=list(self.fingerprints))
        if self.revoked_only:
            qs = qs.exclude(status=CertificateStatus.ACTIVE)
        last = 0
        count = 0
        while True:
            rows = list(qs.filter(pk__gt=last).order_by("pk")[:BATCH])
            if not rows:
                break
            count += self._send(rows)
            last = rows[-1].pk
        self.last_id = Certificate.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        self.last_crl_id = 0
        crls = self._crls()
        self.cursor = started
        PushState.objects.filter(connector=self.connector).update(resynced_at=timezone.now())
        logger.info("Peer connector %s: resynchronised %d CAs, %d certificates, %d CRLs", self.connector.name,
                    len(cas), count, crls)

    def step(self) -> int:
        """Push what changed since the last look; the number of certificate records sent."""
        look = timezone.now()
        cas, fingerprints = ca_records()
        if fingerprints != self.fingerprints:  # a CA added or renewed: its certificate first
            self.fingerprints = fingerprints
            self._post(cas=cas)
        since = (self.cursor or look) - LOOKBACK
        ca_ids = list(self.fingerprints)
        changed = list(Certificate.objects.filter(ca_id__in=ca_ids).filter(
            Q(revocation_recorded_at__gte=since) | Q(unrevoked_at__gte=since)))
        window = Certificate.objects.filter(ca_id__in=ca_ids, pk__gt=max(0, self.last_id - ID_WINDOW)).order_by("pk")
        if self.revoked_only:
            # An RA keeps revocations only: the new ids are followed by id alone (an index-only read), and only
            # the rows already revoked or on hold are read whole. Reading every new certificate every two seconds
            # (hundreds of rows with their DER under load) cost the connector's carried requests its CPU.
            ids = list(window.values_list("pk", flat=True)[:BATCH * 4])
            new = list(window.filter(pk__lte=ids[-1]).exclude(status=CertificateStatus.ACTIVE,
                                                               unrevoked_at__isnull=True)) if ids else []
            if ids:
                self.last_id = max(self.last_id, ids[-1])
        else:
            new = list(window[:BATCH * 4])
            if new:
                self.last_id = max(self.last_id, new[-1].pk)
        sent = self._send(sorted({r.pk: r for r in changed + new}.values(), key=lambda r: r.pk))
        self._crls()
        self.cursor = look
        # Forget what is out of the look-back and the id window: it is not read again.
        if len(self.sent) > 4 * ID_WINDOW:
            keep = {r.pk for r in changed + new}
            self.sent = {k: v for k, v in self.sent.items() if k in keep}
        return sent

    def run(self, stop: threading.Event, alive: Callable[[], bool]) -> None:
        """Resynchronise, then push changes as they happen until ``stop`` or the session ends."""
        waker = _Waker()
        waker.wait(0, stop)  # LISTEN before the resynchronisation: nothing changed during it is missed
        self.resync()
        while not stop.is_set() and alive():
            waker.wait(LOOK_EVERY, stop)
            if stop.is_set():
                return
            woke = time.monotonic()
            sent = self.step()
            if sent:
                logger.info("Peer connector %s: pushed %d certificate status records in %.0f ms",
                            self.connector.name, sent, (time.monotonic() - woke) * 1000)


def status_summary(connector: PeerConnector) -> dict[str, Any]:
    """The push state for the connector's status (UI, REST, ``peer status``)."""
    state = PushState.objects.filter(connector=connector).first()
    if state is None:
        return {}
    return {"resynced_at": _iso(state.resynced_at), "last_push_at": _iso(state.last_push_at),
            "certificates_pushed": state.certificates_pushed, "crls_pushed": state.crls_pushed}

