"""The start page: counts, the latest CRL of each CA, and issuance and expiry charts."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate, TruncWeek
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from ..choices import CertificateStatus
from ..models import Certificate, CertificateAuthority
from ..services.certificates import restrict
from ..services.health import ca_health, latest_crls, other_health
from .base import actor, requires
from .charts import bar_chart

ISSUED_DAYS = 30
EXPIRY_WEEKS = 12
EXPIRING_DAYS = 30


def certificate_counts(certs: QuerySet, now: datetime) -> dict[str, int]:
    """Active, revoked (or on hold) and soon-expiring certificates, in one query."""
    active = Q(status=CertificateStatus.ACTIVE, not_after__gt=now)
    return certs.aggregate(
        active=Count("pk", filter=active),
        revoked=Count("pk", filter=Q(status__in=[CertificateStatus.REVOKED, CertificateStatus.ON_HOLD])),
        expiring=Count("pk", filter=active & Q(not_after__lte=now + timedelta(days=EXPIRING_DAYS))),
    )


def _day(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def issued_per_day(certs: QuerySet, today: date) -> list[tuple[date, int]]:
    """Certificates issued on each of the last 30 days (today included), in one grouped query."""
    start = today - timedelta(days=ISSUED_DAYS - 1)
    rows = (certs.filter(created_at__date__gte=start).annotate(day=TruncDate("created_at"))
            .values("day").annotate(n=Count("pk")).values_list("day", "n"))
    counts = {_day(d): n for d, n in rows}
    return [(start + timedelta(days=i), counts.get(start + timedelta(days=i), 0)) for i in range(ISSUED_DAYS)]


def expiring_per_week(certs: QuerySet, today: date) -> list[tuple[date, int]]:
    """Active certificates expiring in each of the next 12 weeks (Monday to Sunday, this week first), in one
    grouped query."""
    week0 = today - timedelta(days=today.weekday())
    start = datetime.combine(week0, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    rows = (certs.filter(status=CertificateStatus.ACTIVE, not_after__gt=timezone.now(),
                         not_after__lt=start + timedelta(weeks=EXPIRY_WEEKS))
            .annotate(week=TruncWeek("not_after")).values("week").annotate(n=Count("pk")).values_list("week", "n"))
    counts = {_day(w): n for w, n in rows}
    weeks = [week0 + timedelta(weeks=i) for i in range(EXPIRY_WEEKS)]
    return [(w, counts.get(w, 0)) for w in weeks]


def _filters(today: date) -> dict[str, str]:
    """The query strings of the certificate list that each card links to (the same sets the cards count)."""
    return {
        "active": f"status={CertificateStatus.ACTIVE}&expires_after={today:%Y-%m-%d}",
        "expiring": f"status={CertificateStatus.ACTIVE}&expires_after={today:%Y-%m-%d}"
                    f"&expires_before={today + timedelta(days=EXPIRING_DAYS + 1):%Y-%m-%d}",
        "revoked": f"status={CertificateStatus.REVOKED}",
    }


@requires("/administrator")
def dashboard(request: HttpRequest) -> HttpResponse:
    """Counts of CAs and certificates, each CA's latest CRL, and the two charts."""
    who = actor(request)
    now = timezone.now()
    today = timezone.localdate(now)
    certs = restrict(Certificate.objects.all(), who)
    cas = [ca for ca in CertificateAuthority.objects.select_related("crypto_token") if who.is_allowed(f"/ca/{ca.pk}")]
    crls = latest_crls(cas)
    states = ca_health(cas, now)
    # Key bindings (and whatever else registers) only for those who may see them.
    others = other_health(now) if who.is_allowed("/internalkeybinding/view") else []
    issued = issued_per_day(certs, today)
    expiring = expiring_per_week(certs, today)
    return render(request, "pki/dashboard.html", {
        "counts": certificate_counts(certs, now), "now": now,
        "ca_rows": [{"ca": ca, "crl": crls.get(ca.pk), "health": states[ca.pk]} for ca in cas],
        "cas_attention": sum(1 for ca in cas if not states[ca.pk].ok),
        "other_problems": [h for h in others if not h.ok],
        "filters": _filters(today),
        "local_cas": sum(1 for ca in cas if not ca.is_external),
        "issued_total": sum(n for _, n in issued), "expiring_total": sum(n for _, n in expiring),
        "issued_chart": bar_chart([d.strftime("%d %b") for d, _ in issued], [n for _, n in issued],
                                  f"Certificates issued per day (last {ISSUED_DAYS} days)", label_every=5),
        "expiry_chart": bar_chart([f"wk {w.strftime('%d %b')}" for w, _ in expiring], [n for _, n in expiring],
                                  f"Active certificates expiring per week (next {EXPIRY_WEEKS} weeks)",
                                  label_every=2, color="#c27c0e"),
    })
