"""Prometheus metrics (``/metrics``, served by :mod:`pki.http.probes`).

Two sources, chosen by where the fact already lives, so every value is right whichever process answers the scrape:

* **From the database, at scrape time** (:class:`DatabaseCollector`): everything the installation records anyway.
  Issuances (CA, certificate profile, interface) and their refusals, and crypto token operations and their
  failures, are counted from the HMAC-chained audit log, which every process writes (gunicorn workers, Celery
  workers, the scheduler, the CLI, other hosts on the same database); CRL age and time to nextUpdate, CA health
  and token state come from their tables. The audit log is append-only with contiguous sequence numbers that
  commit in order (appends serialize on the chain head), so each process keeps running totals and adds only the
  events after the last sequence it saw: the first scrape of a process reads the log's events of those kinds once,
  later scrapes read what was appended since. Restarts lose nothing (the totals are the log's).
* **In-process counters in prometheus_client's multiprocess mode**: the answers of the two public protocols, which
  are deliberately not written to the database per request (OCSP is the hot path): SCEP CertReps by status and
  failInfo, OCSP answers by responseStatus. Each process on a host writes its own file under
  ``PROMETHEUS_MULTIPROC_DIR`` (settings) and a scrape adds up all of them; several hosts are several scrape
  targets, added up by Prometheus (``sum by (...)``).
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import AuditChainHead, AuditEvent, CertificateAuthority
from .services import health

# --- in-process counters (multiprocess mode) ----------------------------------------------------------------

SCEP_RESPONSES = Counter("pki_scep_responses", "SCEP CertRep answers by alias, status and failInfo",
                         ["alias", "status", "fail_info"])
OCSP_RESPONSES = Counter("pki_ocsp_responses", "OCSP answers by responseStatus (RFC 6960) or HTTP error",
                         ["status"])

_OCSP_STATUS = {0: "successful", 1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired",
                6: "unauthorized"}


def count_scep_response(alias: str, status: str, fail_info: str = "") -> None:
    """One SCEP CertRep sent: status ``SUCCESS``, ``FAILURE`` or ``PENDING``; on FAILURE the failInfo, by its enum
    name (``BAD_MESSAGE_CHECK``) or RFC 8894's (``badMessageCheck``, what the label holds)."""
    if "_" in fail_info or fail_info.isupper():
        first, *rest = fail_info.lower().split("_")
        fail_info = first + "".join(word.capitalize() for word in rest)
    SCEP_RESPONSES.labels(alias=alias, status=status, fail_info=fail_info).inc()


def ocsp_response_status(body: bytes) -> str:
    """The responseStatus of a DER OCSPResponse (``SEQUENCE { ENUMERATED, ... }``) read from its first bytes,
    without parsing the rest; ``unreadable`` for anything else."""
    if len(body) < 5 or body[0] != 0x30:
        return "unreadable"
    length = body[1]
    offset = 2 + (length & 0x7F if length & 0x80 else 0)
    if body[offset:offset + 2] != b"\x0a\x01" or len(body) <= offset + 2:
        return "unreadable"
    return _OCSP_STATUS.get(body[offset + 2], "unreadable")


def count_ocsp_response(status_code: int, body: bytes) -> None:
    """One answer of the OCSP responder: its responseStatus, or ``http_<code>`` when it answered no OCSPResponse."""
    status = ocsp_response_status(body) if status_code == 200 else f"http_{status_code}"
    OCSP_RESPONSES.labels(status=status).inc()


# --- from the database --------------------------------------------------------------------------------------

ISSUANCE = "CERT_CREATION"
TOKEN_PREFIX = "CRYPTOTOKEN_"
# Issued by an administrator directly (Issue for CSR, `ca issuecert`), or a CA or key binding certificate.
DIRECT = "direct"


class _AuditTotals:
    """Running totals of the audit events this module counts, advanced by sequence number (see the module doc).

    The totals remember the MAC of the last event they include: a log that no longer has that event there (the
    database was restored from a backup, or replaced) is counted again from the start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.sequence, self.mac = 0, ""
        self.issued: Tally = Tally()     # (ca, profile, interface) -> n
        self.refused: Tally = Tally()    # (ca id, interface) -> n
        self.token_ops: Tally = Tally()  # (operation, outcome) -> n

    def _still_there(self) -> bool:
        if not self.sequence:
            return True
        mac = AuditEvent.objects.filter(sequence=self.sequence).values_list("mac", flat=True).first()
        return mac == self.mac

    def refresh(self) -> None:
        with self.lock:
            head = AuditChainHead.objects.filter(pk=1).values_list("last_sequence", "last_mac").first() or (0, "")
            if head == (self.sequence, self.mac):
                return
            if head[0] < self.sequence or not self._still_there():
                self._reset()
            self._add(self.sequence, head[0])
            self.sequence, self.mac = head

    def _add(self, after: int, upto: int) -> None:
        window = AuditEvent.objects.filter(sequence__gt=after, sequence__lte=upto)
        issuance = (window.filter(event_type=ISSUANCE)
                    .annotate(ca=KeyTextTransform("ca", "details"), profile=KeyTextTransform("profile", "details"),
                              interface=KeyTextTransform("interface", "details"))
                    .values_list("outcome", "object_id", "ca", "profile", "interface").annotate(n=Count("pk"))
                    .order_by())
        for outcome, object_id, ca, profile, interface, n in issuance:
            if outcome == "SUCCESS":
                self.issued[(ca or "", profile or "", interface or DIRECT)] += n
            else:
                self.refused[(object_id or "", interface or DIRECT)] += n
        tokens = (window.filter(event_type__startswith=TOKEN_PREFIX).values_list("event_type", "outcome")
                  .annotate(n=Count("pk")).order_by())
        for event_type, outcome, n in tokens:
            self.token_ops[(event_type[len(TOKEN_PREFIX):].lower(), outcome.lower())] += n


_totals = _AuditTotals()


def _ca_names() -> dict[str, str]:
    return {str(pk): name for pk, name in CertificateAuthority.objects.values_list("pk", "name")}


class DatabaseCollector(Collector):
    """The metrics computed from the database at each scrape (see the module doc)."""

    def collect(self) -> Iterator:
        _totals.refresh()
        now = timezone.now()
        yield from self._counters()
        yield from self._health(now)

    @staticmethod
    def _counters() -> Iterator:
        issued = CounterMetricFamily("pki_certificates_issued", "Certificates issued, from the audit log",
                                     labels=["ca", "profile", "interface"])
        for (ca, profile, interface), n in sorted(_totals.issued.items()):
            issued.add_metric([ca, profile, interface], n)
        yield issued
        refused = CounterMetricFamily("pki_issuance_refusals", "Issuance requests refused, from the audit log",
                                      labels=["ca", "interface"])
        names = _ca_names() if _totals.refused else {}
        for (ca_id, interface), n in sorted(_totals.refused.items()):
            refused.add_metric([names.get(ca_id, ca_id), interface], n)
        yield refused
        tokens = CounterMetricFamily("pki_crypto_token_operations",
                                     "Crypto token operations (activation, key generation, ...) by outcome",
                                     labels=["operation", "outcome"])
        for (operation, outcome), n in sorted(_totals.token_ops.items()):
            tokens.add_metric([operation, outcome], n)
        yield tokens

    @staticmethod
    def _health(now: datetime) -> Iterator:
        cas = list(health.local_cas())
        states = health.ca_health(cas, now)
        crls = health.latest_crls(cas)
        up = GaugeMetricFamily("pki_ca_healthy", "1 when the CA has no problem (token active, CRL fresh, ...)",
                               labels=["ca"])
        problems = GaugeMetricFamily("pki_ca_problem", "1 for each problem a CA has (see /readyz codes)",
                                     labels=["ca", "problem"])
        token = GaugeMetricFamily("pki_ca_token_active", "1 when the CA's crypto token is active", labels=["ca"])
        age = GaugeMetricFamily("pki_crl_age_seconds", "Seconds since the CA's latest CRL was issued (thisUpdate)",
                                labels=["ca"])
        left = GaugeMetricFamily("pki_crl_next_update_seconds",
                                 "Seconds until the latest CRL's nextUpdate (negative: expired)", labels=["ca"])
        expiry = GaugeMetricFamily("pki_ca_certificate_expiry_seconds", "Seconds until the CA certificate expires",
                                   labels=["ca"])
        for ca in cas:
            state = states[ca.pk]
            up.add_metric([ca.name], 1.0 if state.ok else 0.0)
            for problem in state.problems:
                problems.add_metric([ca.name, problem.code], 1.0)
            token.add_metric([ca.name], 1.0 if ca.crypto_token is not None and ca.crypto_token.is_active else 0.0)
            crl = crls.get(ca.pk)
            if crl is not None:
                age.add_metric([ca.name], (now - crl.this_update).total_seconds())
                left.add_metric([ca.name], (crl.next_update - now).total_seconds())
            cert = ca.certificate
            if cert is not None:
                expiry.add_metric([ca.name], (cert.not_valid_after_utc - now).total_seconds())
        yield from (up, problems, token, age, left, expiry)


def exposition() -> bytes:
    """The text exposition of every metric: this host's processes' counters and the database's figures."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
