"""The admin UI's global search: one text, read every way an operator writes it (a serial number in hex with
or without colons, ``0x`` or decimal; a SHA-256 fingerprint; part of a subject; a username; a CA name), and
only what the caller may see (``/ca/<id>`` for a CA and its certificates, as the certificate search)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db.models import Q

from ..auth.access import Actor
from ..ids import parse_decimal
from ..models import Certificate, CertificateAuthority
from .certificates import restrict

MAX_QUERY = 256  # longer than any DN fragment, serial or fingerprint worth typing
MAX_HITS = 20  # per kind; the full lists are one link away
_HEX = re.compile(r"^(0x)?[0-9a-f]+$")
_MAX_SERIAL_HEX = 40  # RFC 5280: at most 20 octets


@dataclass(frozen=True)
class Hit:
    """One object found: its kind (``ca``, ``certificate``), primary key and label."""

    kind: str
    pk: int
    label: str
    detail: str = ""


@dataclass
class SearchResult:
    """What a search found, per kind, each capped at MAX_HITS (``more`` names the kinds that had more)."""

    query: str
    cas: list[Hit] = field(default_factory=list)
    certificates: list[Hit] = field(default_factory=list)
    more: set[str] = field(default_factory=set)

    @property
    def hits(self) -> list[Hit]:
        return self.cas + self.certificates

    @property
    def single(self) -> Hit | None:
        """The one object found, when exactly one was (and no kind was cut off)."""
        hits = self.hits
        return hits[0] if len(hits) == 1 and not self.more else None


def serial_candidates(text: str) -> set[str]:
    """Every stored form (lower-case hex, no leading zeros) ``text`` may mean as a serial number: hex with or
    without ``:``/blanks/``0x`` in any case, and, when it is all digits, the same digits read as decimal."""
    compact = re.sub(r"[\s:]", "", text).lower()
    found: set[str] = set()
    if _HEX.match(compact):
        digits = compact.removeprefix("0x")
        if len(digits.lstrip("0")) <= _MAX_SERIAL_HEX:
            found.add(format(int(digits, 16), "x"))
    number = parse_decimal(text.strip())
    if number is not None and number.bit_length() <= 8 * 20:
        found.add(format(number, "x"))
    return found


def fingerprint_candidate(text: str) -> str:
    """``text`` as a SHA-256 fingerprint (64 hex digits, ``:`` allowed, any case), else empty."""
    compact = re.sub(r"[\s:]", "", text).lower()
    return compact if len(compact) == 64 and _HEX.match(compact) and not compact.startswith("0x") else ""


def global_search(actor: Actor, text: str) -> SearchResult:
    """Objects ``actor`` may see that ``text`` names. Certificates need ``/ca_functionality/view_certificate``,
    CAs ``/ca_functionality/view_ca``; both only of CAs the caller holds ``/ca/<id>`` for."""
    query = text.strip()[:MAX_QUERY]
    result = SearchResult(query=query)
    if not query:
        return result
    if actor.is_allowed("/ca_functionality/view_ca"):
        cas = restrict(CertificateAuthority.objects.all(), actor, "pk").filter(
            Q(name__iexact=query) | Q(name__icontains=query) | Q(subject_dn__icontains=query)).order_by("name")
        exact = [ca for ca in cas if ca.name.lower() == query.lower()]
        rows = exact or list(cas[:MAX_HITS + 1])  # a CA named exactly so is the one meant
        result.cas = [Hit("ca", ca.pk, ca.name, ca.subject_dn) for ca in rows[:MAX_HITS]]
        if len(rows) > MAX_HITS:
            result.more.add("ca")
    if actor.is_allowed("/ca_functionality/view_certificate"):
        certificates, more, by_subject = _certificates(actor, query)
        # A CA named exactly so is what was meant, not the certificates whose subject mentions it.
        if not (by_subject and len(result.cas) == 1 and result.cas[0].label.lower() == query.lower()):
            result.certificates = certificates
            if more:
                result.more.add("certificate")
    return result


def _certificates(actor: Actor, query: str) -> tuple[list[Hit], bool, bool]:
    """Certificates named by serial, fingerprint or username exactly; else those whose subject (or alt name)
    contains it. Also returns whether there were more than MAX_HITS, and whether the subject matched."""
    qs = restrict(Certificate.objects.select_related("ca"), actor).order_by("-created_at", "-pk")
    exact = Q(username=query)
    if serials := serial_candidates(query):
        exact |= Q(serial__in=serials)
    if fingerprint := fingerprint_candidate(query):
        exact |= Q(fingerprint_sha256=fingerprint)
    rows = list(qs.filter(exact)[:MAX_HITS + 1])
    by_subject = not rows
    if by_subject:
        rows = list(qs.filter(Q(subject_dn__icontains=query) | Q(subject_alt_name__icontains=query))[:MAX_HITS + 1])
    hits = [Hit("certificate", c.pk, c.subject_dn or c.serial.upper(), f"{c.serial.upper()} · {c.ca.name}")
            for c in rows[:MAX_HITS]]
    return hits, len(rows) > MAX_HITS, by_subject
