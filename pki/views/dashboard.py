"""The start page: counts, latest CRLs and issuance/expiry charts."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncDate, TruncWeek
from django.shortcuts import render
from django.utils import timezone

from ..choices import CertificateStatus
from ..models import CRL, Certificate, CertificateAuthority
from ..services.certificates import restrict
from .base import actor, requires
from .charts import bar_chart


@requires("/administrator")
def dashboard(request):
    who = actor(request)
    now = timezone.now()
    certs = restrict(Certificate.objects.all(), who)
    counts = certs.aggregate(
        active=Count("pk", filter=_q(status=CertificateStatus.ACTIVE, not_after__gt=now)),
        revoked=Count("pk", filter=_q(status__in=[CertificateStatus.REVOKED, CertificateStatus.ON_HOLD])),
        expiring=Count("pk", filter=_q(status=CertificateStatus.ACTIVE, not_after__gt=now,
                                       not_after__lte=now + timedelta(days=30))),
    )
    cas = [ca for ca in CertificateAuthority.objects.all() if who.is_allowed(f"/ca/{ca.pk}")]
    crls = {ca.pk: CRL.objects.filter(ca=ca, is_delta=False).defer("der").order_by("-crl_number").first()
            for ca in cas}

    # Issued per day over the last 30 days: one aggregated query.
    start = (now - timedelta(days=29)).date()
    per_day = dict(certs.filter(created_at__date__gte=start).annotate(d=TruncDate("created_at"))
                   .values("d").annotate(n=Count("pk")).values_list("d", "n"))
    days = [start + timedelta(days=i) for i in range(30)]
    issued_chart = bar_chart([d.strftime("%d %b") for d in days], [per_day.get(d, 0) for d in days],
                             "Certificates issued per day (last 30 days)", label_every=5)
    # Expiring per week over the next 12 weeks.
    week0 = (now - timedelta(days=now.weekday())).date()
    per_week = {row[0].date() if hasattr(row[0], "date") else row[0]: row[1] for row in
                certs.filter(status=CertificateStatus.ACTIVE, not_after__gt=now,
                             not_after__lt=now + timedelta(weeks=12))
                .annotate(w=TruncWeek("not_after")).values("w").annotate(n=Count("pk")).values_list("w", "n")}
    weeks = [week0 + timedelta(weeks=i) for i in range(12)]
    expiry_chart = bar_chart([w.strftime("%d %b") for w in weeks], [per_week.get(w, 0) for w in weeks],
                             "Active certificates expiring per week (next 12 weeks)", label_every=2)
    return render(request, "pki/dashboard.html", {
        "counts": counts, "cas": cas, "crls": crls, "issued_chart": issued_chart, "expiry_chart": expiry_chart,
        "now": now,
    })


def _q(**kwargs):
    from django.db.models import Q

    return Q(**kwargs)
