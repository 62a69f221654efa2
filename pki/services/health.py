"""The real state of the installation, computed once for every reader: the CA list, the CA page, the dashboard,
``/readyz`` and the ``/metrics`` gauges.

A CA is healthy when it can do its job now: its crypto token is active (an offline token signs nothing, so the
CA issues no certificate and no CRL), its latest CRL exists and is within its ``nextUpdate``, the scheduler has
renewed it when due, and its certificate is not about to expire. Key bindings (a layer above the core) report
their own state through a provider registered at start-up (:func:`register_health_source`), so this module never
imports them.

Each problem has a ``code`` (stable, safe to show anyone: ``/readyz`` shows only codes), a ``message`` and an
``action`` for an administrator (they may name the crypto token, so they are for the admin pages only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ..choices import CAStatus
from ..models import CRL, CertificateAuthority

ERROR = "error"
WARNING = "warning"
OK = "ok"
_RANK = {OK: 0, WARNING: 1, ERROR: 2}

# Problem codes (what /readyz and the metrics say; the admin pages add the message and the action).
TOKEN_OFFLINE = "token_offline"
NO_TOKEN = "no_token"
CA_DISABLED = "ca_disabled"
NO_CERTIFICATE = "no_certificate"
CERTIFICATE_EXPIRED = "certificate_expired"
CERTIFICATE_EXPIRING = "certificate_expiring"
CRL_MISSING = "crl_missing"
CRL_EXPIRED = "crl_expired"
CRL_OVERDUE = "crl_renewal_overdue"
DELTA_CRL_EXPIRED = "delta_crl_expired"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an object, and what to do about it."""

    code: str
    severity: str
    message: str
    action: str = ""

    @property
    def label(self) -> str:
        """The code as words (``token offline``), what a badge shows."""
        return self.code.replace("_", " ")


@dataclass
class Health:
    """The state of one object (a CA, a key binding): its problems, worst first."""

    kind: str
    name: str
    pk: int
    problems: list[Problem] = field(default_factory=list)
    url: str = ""

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``ok``: the worst of its problems."""
        return max((p.severity for p in self.problems), key=_RANK.__getitem__, default=OK)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def state(self) -> str:
        """One word for the object: ``ok`` or the code of its worst problem."""
        return self.problems[0].code if self.problems else OK

    @property
    def label(self) -> str:
        """What a list shows in its status column."""
        return self.problems[0].label if self.problems else "OK"

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.problems.sort(key=lambda p: -_RANK[p.severity])


# --- windows ----------------------------------------------------------------------------------------------

def renewal_window(not_before: datetime, not_after: datetime, days: int) -> timedelta:
    """How long before expiry a certificate counts as "expiring": ``days`` (a setting), but at most a fifth of
    its whole validity, so a short-lived test CA or binding is not "expiring" from the day it is made."""
    return min(timedelta(days=days), (not_after - not_before) / 5)


def _overdue_grace() -> timedelta:
    # The scheduler looks every PKI_CRL_CHECK_INTERVAL seconds (the regenerate-crls job): two looks missed means
    # that it is not running.
    job = getattr(settings, "CELERY_BEAT_SCHEDULE", {}).get("regenerate-crls", {})
    return timedelta(seconds=2 * float(job.get("schedule", 60)) + 60)


# --- CAs ------------------------------------------------------------------------------------------------

def latest_crls(cas: Iterable[CertificateAuthority], delta: bool = False) -> dict[int, CRL]:
    """CA id -> its latest full (or delta) CRL without the DER, in two queries whatever the number of CAs."""
    ids = [ca.pk for ca in cas]
    if not ids:
        return {}
    latest = CRL.objects.filter(ca=OuterRef("pk"), is_delta=delta).order_by("-crl_number").values("pk")[:1]
    rows = CertificateAuthority.objects.filter(pk__in=ids).annotate(crl_id=Subquery(latest)).values_list(
        "pk", "crl_id")
    found = {ca_id: crl_id for ca_id, crl_id in rows if crl_id is not None}
    by_id = CRL.objects.defer("der").in_bulk(list(found.values()))
    return {ca_id: by_id[crl_id] for ca_id, crl_id in found.items()}


def _token_problems(ca: CertificateAuthority, health: Health) -> None:
    token = ca.crypto_token
    if token is None:
        health.add(Problem(NO_TOKEN, ERROR, "The CA has no crypto token: it cannot sign.",
                           "Renew the CA on a key of a crypto token."))
    elif not token.is_active:
        health.add(Problem(
            TOKEN_OFFLINE, ERROR,
            f"Token offline: crypto token '{token.name}' is not active, so the CA signs no certificate and no CRL.",
            f"Activate crypto token '{token.name}' (Crypto tokens → {token.name} → Activate, or "
            f"`manage.py cryptotoken activate {token.name}`), or set it to auto-activate."))


def _certificate_problems(ca: CertificateAuthority, health: Health, now: datetime) -> None:
    cert = ca.certificate
    if cert is None:
        health.add(Problem(NO_CERTIFICATE, ERROR, "The CA has no certificate yet.",
                           "Import the certificate its external issuer signed, or renew the CA."))
        return
    not_after = cert.not_valid_after_utc
    if not_after <= now:
        health.add(Problem(CERTIFICATE_EXPIRED, ERROR, f"The CA certificate expired on {not_after:%Y-%m-%d %H:%M} UTC.",
                           "Renew the CA (CA → Renew)."))
        return
    window = renewal_window(cert.not_valid_before_utc, not_after, settings.PKI_CA_RENEWAL_WINDOW_DAYS)
    if not_after - now <= window and not (ca.rollover_certificate_der and ca.rollover_at):
        health.add(Problem(CERTIFICATE_EXPIRING, WARNING,
                           f"The CA certificate expires on {not_after:%Y-%m-%d %H:%M} UTC.",
                           "Renew the CA (CA → Renew), now or as a rollover."))


def _crl_problems(ca: CertificateAuthority, health: Health, crl: CRL | None, delta: CRL | None,
                  now: datetime) -> None:
    if crl is None:
        health.add(Problem(CRL_MISSING, ERROR, "The CA has no CRL: relying parties that check revocation refuse "
                           "its certificates.", "Create a CRL (CRLs → Create CRL)."))
        return
    if crl.next_update <= now:
        health.add(Problem(CRL_EXPIRED, ERROR,
                           f"The latest CRL (#{crl.crl_number}) is past its nextUpdate "
                           f"({crl.next_update:%Y-%m-%d %H:%M} UTC).",
                           "Create a CRL now, and check that Celery beat or `manage.py scheduler` runs."))
    elif crl.next_update - ca.crl_overlap + _overdue_grace() <= now:
        health.add(Problem(CRL_OVERDUE, WARNING,
                           f"The latest CRL (#{crl.crl_number}) was due for renewal at "
                           f"{crl.next_update - ca.crl_overlap:%Y-%m-%d %H:%M} UTC and has not been renewed.",
                           "Check that Celery beat or `manage.py scheduler` runs (`manage.py scheduler --list`)."))
    if ca.delta_crl_period and delta is not None and delta.next_update <= now:
        health.add(Problem(DELTA_CRL_EXPIRED, WARNING,
                           f"The latest delta CRL (#{delta.crl_number}) is past its nextUpdate.",
                           "Create a delta CRL, and check that the scheduler runs."))


def ca_health(cas: Iterable[CertificateAuthority], now: datetime | None = None) -> dict[int, Health]:
    """CA id -> its :class:`Health`, for ``cas`` (with ``crypto_token`` selected) in two more queries.
    External CAs (trust only) have nothing to run and are always ``ok``."""
    now = now or timezone.now()
    cas = list(cas)
    local = [ca for ca in cas if not ca.is_external]
    full, delta = latest_crls(local), latest_crls([ca for ca in local if ca.delta_crl_period], delta=True)
    result: dict[int, Health] = {}
    for ca in cas:
        health = Health("ca", ca.name, ca.pk)
        result[ca.pk] = health
        if ca.is_external:
            continue
        if ca.status != CAStatus.ACTIVE:
            health.add(Problem(CA_DISABLED, ERROR, f"The CA is {ca.get_status_display().lower()}.",
                               "Edit the CA to set it active again, if it should issue."))
        _token_problems(ca, health)
        _certificate_problems(ca, health, now)
        _crl_problems(ca, health, full.get(ca.pk), delta.get(ca.pk), now)
    return result


def local_cas():
    """Every CA holding a key here, with its token, for health checks (one query)."""
    return CertificateAuthority.objects.local().select_related("crypto_token")


# --- other objects (registered by the layers above) -------------------------------------------------------

HealthSource = Callable[[datetime], list[Health]]
_sources: list[HealthSource] = []


def register_health_source(source: HealthSource) -> None:
    """Add ``source(now) -> [Health, ...]`` (key bindings, peers): its objects join the dashboard's list."""
    if source not in _sources:
        _sources.append(source)


def other_health(now: datetime | None = None) -> list[Health]:
    """The registered sources' objects, each with its problems."""
    now = now or timezone.now()
    return [h for source in _sources for h in source(now)]
