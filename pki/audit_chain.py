"""The audit chain's definition and its verification.

What each event's MAC covers (:func:`_canonical`, :func:`_mac`) and the head row's own MAC (:func:`head_mac`) are
shared by the writer (:mod:`pki.audit`) and :func:`verify_chain`, which checks the whole log and reports every
break (missing, altered, forged or inserted events, a forged or set-back head, certificates and CRLs without their
creation event, anchors recorded outside the database). :mod:`pki.audit` re-exports the verification API.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Exists, OuterRef
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from cryptotokens.secrets import derive_subkey

from .choices import AuditOutcome
from .errors import ValidationError
from .models import CRL, AuditChainHead, AuditEvent, Certificate


def _canonical(seq: int, ts: datetime, event_type: str, actor: str, object_type: str, object_id: str,
               outcome: str, details: dict[str, Any]) -> bytes:
    return json.dumps(
        [seq, ts.isoformat(), event_type, actor, object_type, object_id, outcome, details],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    ).encode()


def _mac(prev_mac: str, payload: bytes) -> str:
    return hmac.digest(derive_subkey(b"audit-chain"), prev_mac.encode() + payload, "sha256").hex()


def head_mac(sequence: int, last_mac: str) -> str:
    """The chain head row's own MAC over (sequence, last event's MAC), under a sub-key of its own so that no
    event MAC can pass for a head MAC. Without it, pointing the head at an earlier event would hide a cut tail."""
    return hmac.digest(derive_subkey(b"audit-chain-head"), f"{sequence}:{last_mac}".encode(), "sha256").hex()


@dataclass
class ChainBreak:
    """One break found by :func:`verify_chain`: its kind, the first event concerned (if any), and what it means."""

    kind: str  # MISSING, ALTERED, HEAD, UNAUDITED, ANCHOR
    sequence: int | None
    message: str


@dataclass
class ChainReport:
    ok: bool
    checked: int
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def broken_at(self) -> int | None:
        """The sequence number of the first break (None when intact or when it concerns no one event)."""
        return self.breaks[0].sequence if self.breaks else None

    @property
    def problem(self) -> str:
        return self.breaks[0].message if self.breaks else ""


@dataclass(frozen=True)
class Anchor:
    """A (sequence, MAC) of the chain recorded outside the database by ``audit anchor``."""

    sequence: int
    mac: str

    def line(self) -> str:
        return f"pki-audit-anchor sequence={self.sequence} mac={self.mac} at={timezone.now().isoformat()}"


# Anywhere in a line, so that anchors sent to syslog can be checked from its files as they are.
_ANCHOR_LINE = re.compile(r"pki-audit-anchor sequence=([0-9]{1,19}) mac=([0-9a-f]{64})\b")
UNAUDITED_LISTED = 1000  # certificates without their event listed one by one; the rest as a count


def parse_anchors(text: str) -> list[Anchor]:
    """The anchors written by :meth:`Anchor.line` in ``text`` (other lines are ignored)."""
    return [Anchor(int(m.group(1)), m.group(2)) for m in map(_ANCHOR_LINE.search, text.splitlines()) if m]


class AuditChainError(ValidationError):
    """The audit chain cannot be anchored as it stands (its head is forged or does not match its last event)."""


def current_anchor() -> Anchor:
    """The chain head as an anchor, once its own MAC and its last event agree with it."""
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.last_sequence == 0:
        raise AuditChainError("The audit log is empty: there is nothing to anchor.")
    if not _same(head_mac(head.last_sequence, head.last_mac), head.head_mac):
        raise AuditChainError(f"The audit chain head (#{head.last_sequence}) fails its MAC: it was forged or "
                              "rewritten. Run 'audit verify'.")
    last = AuditEvent.objects.filter(sequence=head.last_sequence).values_list("mac", flat=True).first()
    if last is None or not _same(last, head.last_mac):
        raise AuditChainError(f"The audit chain head names event #{head.last_sequence}, which is missing or "
                              "differs. Run 'audit verify'.")
    return Anchor(head.last_sequence, head.last_mac)


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of stored text that an attacker may have set to anything (non-ASCII too)."""
    return hmac.compare_digest(str(a).encode(), str(b).encode())


def _range(first: int, last: int) -> str:
    return f"event #{first}" if first == last else f"events #{first}..#{last}"


class _Walk:
    """The state of one pass over the events: breaks so far, runs of altered events merged into one."""

    def __init__(self, anchors: list[Anchor]):
        self.breaks: list[ChainBreak] = []
        self.altered: list[int] | None = None  # [first, last] of the current run
        self.anchors = {a.sequence: a.mac for a in anchors}
        self.anchor_hits: set[int] = set()

    def flush_altered(self) -> None:
        if self.altered:
            first, last = self.altered
            what = "does not match its MAC" if first == last else "do not match their MACs"
            self.breaks.append(ChainBreak("ALTERED", first, f"{_range(first, last)} {what}: altered, forged or "
                                          "inserted"))
            self.altered = None

    def alter(self, seq: int) -> None:
        if self.altered and self.altered[1] == seq - 1:
            self.altered[1] = seq
        else:
            self.flush_altered()
            self.altered = [seq, seq]


def verify_chain(anchors: list[Anchor] | None = None) -> ChainReport:
    """Check the whole audit log and report EVERY break: missing events (gaps, a cut tail), events that fail
    their MAC (altered, forged, inserted), a head that fails its own MAC or does not end the chain, certificates
    and CRLs without their creation event, and ``anchors`` (recorded outside the database) the chain no longer
    holds or does not reach. Runs on one snapshot of the database where the backend allows (PostgreSQL)."""
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    if snapshot:
        connection.close_if_health_check_failed()  # its SELECT 1 must not open the snapshot's transaction
    with transaction.atomic():
        if snapshot:
            # First statement of our own transaction: the events, the head and the certificates are read
            # as of one moment, so appends committed meanwhile do not look like breaks.
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _verify(anchors or [])


def _verify(anchors: list[Anchor]) -> ChainReport:
    walk = _Walk(anchors)
    prev_seq, prev_mac, checked = 0, "", 0
    fields = ("sequence", "timestamp", "event_type", "actor", "object_type", "object_id", "outcome", "details", "mac")
    for row in AuditEvent.objects.order_by("sequence").values_list(*fields).iterator(chunk_size=5000):
        seq, ts, event_type, actor, object_type, object_id, outcome, details, mac = row
        if seq != prev_seq + 1:
            walk.flush_altered()
            walk.breaks.append(ChainBreak("MISSING", prev_seq + 1, f"{_range(prev_seq + 1, seq - 1)} "
                                          f"{'is' if seq - 1 == prev_seq + 1 else 'are'} missing (next found is "
                                          f"#{seq}, whose link to the previous event cannot be checked)"))
        else:
            payload = _canonical(seq, ts, event_type, actor, object_type, object_id, outcome, details)
            if not _same(_mac(prev_mac, payload), mac):
                walk.alter(seq)
        if seq in walk.anchors:
            walk.anchor_hits.add(seq)
            if not _same(walk.anchors[seq], mac):
                walk.flush_altered()
                walk.breaks.append(ChainBreak("ANCHOR", seq, f"event #{seq} differs from its anchor: the chain "
                                              "was rewritten from there"))
        prev_seq, prev_mac = seq, mac
        checked += 1
    walk.flush_altered()
    _check_head(walk, prev_seq, prev_mac)
    for seq in sorted(set(walk.anchors) - walk.anchor_hits):
        if seq > prev_seq:
            walk.breaks.append(ChainBreak("ANCHOR", seq, f"the chain ends at #{prev_seq}, before anchored event "
                                          f"#{seq}: its tail was cut"))
        else:
            walk.breaks.append(ChainBreak("ANCHOR", seq, f"anchored event #{seq} is missing"))
    _check_unaudited_certificates(walk)
    _check_unaudited_crls(walk)
    return ChainReport(not walk.breaks, checked, walk.breaks)


def _check_head(walk: _Walk, last_seq: int, last_mac: str) -> None:
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None:
        if last_seq:
            walk.breaks.append(ChainBreak("HEAD", None, "the chain head row is missing"))
        return
    if not (head.last_sequence == 0 and head.last_mac == "" and head.head_mac == "") and not _same(
            head_mac(head.last_sequence, head.last_mac), head.head_mac):
        walk.breaks.append(ChainBreak("HEAD", head.last_sequence, f"the chain head (#{head.last_sequence}) fails "
                                      "its own MAC: it was forged or rewritten"))
    if head.last_sequence > last_seq:
        walk.breaks.append(ChainBreak(
            "MISSING", last_seq + 1, f"the chain ends at #{last_seq} but the head records #{head.last_sequence}: "
            f"{_range(last_seq + 1, head.last_sequence)} were removed"))
    elif head.last_sequence < last_seq:
        walk.breaks.append(ChainBreak(
            "ALTERED", head.last_sequence + 1, f"{_range(head.last_sequence + 1, last_seq)} lie past the chain "
            f"head (#{head.last_sequence}): inserted, or the head was set back"))
    elif last_seq and not _same(head.last_mac, last_mac):
        walk.breaks.append(ChainBreak("HEAD", last_seq, f"the chain head's MAC of #{last_seq} is not event "
                                      f"#{last_seq}'s: one of them was replaced"))


def _check_unaudited_certificates(walk: _Walk) -> None:
    """Every certificate row has its CERT_CREATION event: deleting events (or a tail) cannot hide an issuance.
    One anti-join (NOT EXISTS, a hash anti-join on PostgreSQL) over both tables; only the certificates it finds
    are looked for among events folded into another one by :func:`combined`."""
    created = AuditEvent.objects.filter(event_type="CERT_CREATION", outcome=AuditOutcome.SUCCESS,
                                        object_type="certificate", object_id=OuterRef("serial"))
    missing = dict(Certificate.objects.filter(~Exists(created)).order_by("pk").values_list("serial", "pk"))
    if not missing:
        return
    for details in AuditEvent.objects.filter(event_type="CERT_CREATION", outcome=AuditOutcome.SUCCESS,
                                             details__has_key="with").values_list("details", flat=True).iterator():
        for folded in details.get("with") or []:
            if isinstance(folded, dict) and folded.get("event_type") == "CERT_CREATION":
                missing.pop(str(folded.get("object_id")), None)
    for n, serial in enumerate(missing):
        if n == UNAUDITED_LISTED:
            walk.breaks.append(ChainBreak("UNAUDITED", None, f"and {len(missing) - n} more certificates without "
                                          "their CERT_CREATION event"))
            break
        walk.breaks.append(ChainBreak("UNAUDITED", None, f"certificate {serial} (id {missing[serial]}) has no "
                                      "CERT_CREATION event: its event was deleted"))


def _check_unaudited_crls(walk: _Walk) -> None:
    """Every CRL row has its CRL_CREATION event (the CA's id and the CRL number): one anti-join, as above."""
    created = AuditEvent.objects.annotate(number=Cast(KeyTextTransform("crl_number", "details"), CharField())).filter(
        event_type="CRL_CREATION", outcome=AuditOutcome.SUCCESS, object_type="ca",
        object_id=Cast(OuterRef("ca_id"), CharField()), number=Cast(OuterRef("crl_number"), CharField()))
    missing = CRL.objects.filter(~Exists(created)).order_by("pk").values_list("ca__name", "crl_number")
    for n, (ca_name, number) in enumerate(missing.iterator()):
        if n == UNAUDITED_LISTED:
            walk.breaks.append(ChainBreak("UNAUDITED", None, "and more CRLs without their CRL_CREATION event"))
            break
        walk.breaks.append(ChainBreak("UNAUDITED", None, f"CRL #{number} of CA '{ca_name}' has no CRL_CREATION "
                                      "event: its event was deleted"))
