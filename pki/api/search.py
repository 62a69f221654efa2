"""``POST /v1/certificate/search``: EJBCA's certificate search criteria, translated into a query of the
certificate service (``pki.services.certificates``), which applies the caller's access rules.

Criteria semantics follow EJBCA's v1 search: every criterion must match; several values of CA,
CERTIFICATE_PROFILE or STATUS match any of them; QUERY with EQUAL matches a subject DN, alt name,
user name or serial exactly and with LIKE as a part. SERIAL_NUMBER, USERNAME, SUBJECT_DN,
SUBJECT_ALT_NAME and UPDATE_TIME are the criteria of newer EJBCA versions; FINGERPRINT is this CA's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..auth.access import Actor, actor_for_request
from ..choices import CertificateStatus, RevocationReason
from ..errors import NotFoundError, ValidationError
from ..ids import parse_decimal
from ..models import Certificate, CertificateAuthority, CertificateProfile
from ..services.certificates import CertificateQuery, search_certificates
from .lookups import (
    end_entity_profile_id,
    end_entity_profile_names,
    parse_date,
    parse_fingerprint,
    parse_serial,
    resolve_ca,
    resolve_profile,
)
from .serializers import SearchRequestSerializer, SearchResponseSerializer, build_search_result, with_errors

# EJBCA caps a search at its "maximum query count" (500 by default) and reports more_results.
MAX_RESULTS = 500
STRING_OPERATIONS = ("EQUAL", "LIKE")
DATE_OPERATIONS = ("BEFORE", "AFTER")
UNSUPPORTED = {
    "EXTERNAL_ACCOUNT_BINDING_ID": "there is no ACME external account binding here",
}
# STATUS values: EJBCA's certificate states and revocation reasons.
STATUS_VALUES: dict[str, tuple[str, ...]] = {
    "CERT_ACTIVE": (CertificateStatus.ACTIVE,),
    "CERT_NOTIFIEDABOUTEXPIRATION": (CertificateStatus.ACTIVE,),
    "CERT_REVOKED": (CertificateStatus.REVOKED, CertificateStatus.ON_HOLD),
}
REASON_VALUES: dict[str, RevocationReason] = {
    "REVOCATION_REASON_" + reason.name.replace("_", ""): reason for reason in RevocationReason
}
REASON_VALUES["REVOCATION_REASON_PRIVILEGESWITHDRAWN"] = REASON_VALUES.pop("REVOCATION_REASON_PRIVILEGEWITHDRAWN")
DATE_FIELDS = {"ISSUED_DATE": "issued", "EXPIRE_DATE": "expires", "REVOCATION_DATE": "revoked"}


@dataclass
class _Search:
    """What the criteria ask for, gathered before anything is queried."""

    actor: Actor
    query: CertificateQuery = field(default_factory=CertificateQuery)
    narrowing: list[Q] = field(default_factory=list)
    cas: list[CertificateAuthority] = field(default_factory=list)
    profiles: list[CertificateProfile] = field(default_factory=list)
    ee_profiles: list[int] = field(default_factory=list)
    statuses: set[str] = field(default_factory=set)
    reasons: set[int] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)

    def once(self, key: str, message: str) -> None:
        if key in self.seen:
            raise ValidationError(message, field="criteria")
        self.seen.add(key)


def _query(search: _Search, value: str, op: str) -> None:
    search.once("QUERY", "Invalid criteria value, multiple 'QUERY' properties are not allowed.")
    if op == "LIKE":
        search.query.text = value
        return
    text = value.strip()
    # Alt names are stored as "DNSNAME=host": EJBCA writes the key as "dNSName", so case does not count there.
    exact = Q(subject_dn=text) | Q(subject_alt_name__iexact=text) | Q(username=text)
    hexish = text.lower().removeprefix("0x").replace(":", "")
    if hexish and all(c in "0123456789abcdef" for c in hexish):
        exact |= Q(serial=format(int(hexish, 16), "x"))
    if (number := parse_decimal(text)) is not None:  # EJBCA also reads the value as a decimal serial
        exact |= Q(serial=format(number, "x"))
    search.narrowing.append(exact)


def _serial(search: _Search, value: str, op: str) -> None:
    search.once("SERIAL_NUMBER", "Only one SERIAL_NUMBER criterion is allowed.")
    search.query.serial = parse_serial(value)


def _username(search: _Search, value: str, op: str) -> None:
    if op == "EQUAL":
        search.query.username = value
    else:
        search.narrowing.append(Q(username__icontains=value))


def _subject_dn(search: _Search, value: str, op: str) -> None:
    if op == "LIKE":
        search.query.subject = value
    else:
        search.narrowing.append(Q(subject_dn=value.strip()))


def _subject_alt_name(search: _Search, value: str, op: str) -> None:
    lookup = "subject_alt_name__icontains" if op == "LIKE" else "subject_alt_name__iexact"
    search.narrowing.append(Q(**{lookup: value.strip()}))


def _fingerprint(search: _Search, value: str, op: str) -> None:
    search.once("FINGERPRINT", "Only one FINGERPRINT criterion is allowed.")
    search.query.fingerprint = parse_fingerprint(value)


def _ca(search: _Search, value: str, op: str) -> None:
    # EJBCA matches the CA's name exactly; a DN or id is accepted when no CA has that name.
    ca = CertificateAuthority.objects.filter(name=value).first()
    if ca is None:
        try:
            ca = resolve_ca(value)
        except NotFoundError:
            ca = None
    # A CA the caller may not use is as unknown as one that does not exist (EJBCA says the same).
    if ca is None or not search.actor.is_allowed(f"/ca/{ca.pk}"):
        raise ValidationError(f"Invalid search criteria content, unknown CA '{value}'.", field="criteria")
    search.cas.append(ca)


def _profile(search: _Search, value: str, op: str) -> None:
    try:
        search.profiles.append(resolve_profile(value))
    except NotFoundError:
        raise ValidationError(f"Invalid search criteria content, unknown certificate profile '{value}'.",
                              field="criteria") from None


def _end_entity_profile(search: _Search, value: str, op: str) -> None:
    """The profile a certificate was issued under (recorded at issuance); several values match any of them.
    A profile whose end entities the caller may not view is as unknown as one that does not exist."""
    pk = end_entity_profile_id(search.actor, value)
    if pk is None:
        raise ValidationError(f"Invalid search criteria content, unknown end entity profile '{value}'.",
                              field="criteria")
    search.ee_profiles.append(pk)


def _status(search: _Search, value: str, op: str) -> None:
    name = value.strip().upper()
    search.once(f"STATUS:{name}", "Invalid criteria value, 'STATUS' property repetition.")
    if name in STATUS_VALUES:
        search.statuses.update(STATUS_VALUES[name])
    elif name in REASON_VALUES:
        search.reasons.add(int(REASON_VALUES[name]))
    else:
        known = ", ".join([*STATUS_VALUES, *REASON_VALUES])
        raise ValidationError(f"Invalid search criteria content, unknown certificate status '{value}'. "
                              f"Use one of {known}.", field="criteria")


def _date(prop: str) -> Callable[[_Search, str, str], None]:
    def apply(search: _Search, value: str, op: str) -> None:
        search.once(f"{prop}:{op}", f"Invalid criteria value, overlapping properties '{prop}' with '{op}' operation.")
        when = parse_date(value, "criteria")
        if prop == "UPDATE_TIME":
            lookup = "updated_at__lt" if op == "BEFORE" else "updated_at__gte"
            search.narrowing.append(Q(**{lookup: when}))
        else:
            setattr(search.query, f"{DATE_FIELDS[prop]}_{op.lower()}", when)

    return apply


# property -> (allowed operations, handler)
CRITERIA: dict[str, tuple[tuple[str, ...], Callable[[_Search, str, str], None]]] = {
    "QUERY": (STRING_OPERATIONS, _query),
    "SERIAL_NUMBER": (("EQUAL",), _serial),
    "USERNAME": (STRING_OPERATIONS, _username),
    "SUBJECT_DN": (STRING_OPERATIONS, _subject_dn),
    "SUBJECT_ALT_NAME": (STRING_OPERATIONS, _subject_alt_name),
    "FINGERPRINT": (("EQUAL",), _fingerprint),
    "CA": (("EQUAL",), _ca),
    "CERTIFICATE_PROFILE": (("EQUAL",), _profile),
    "END_ENTITY_PROFILE": (("EQUAL",), _end_entity_profile),
    "STATUS": (("EQUAL",), _status),
    **{prop: (DATE_OPERATIONS, _date(prop)) for prop in (*DATE_FIELDS, "UPDATE_TIME")},
}


def certificate_search(actor: Actor, criteria: list[dict]) -> QuerySet[Certificate]:
    """The certificates matching EJBCA-style ``criteria`` that ``actor`` may see, newest first."""
    actor.require("/ca_functionality/view_certificate")
    search = _Search(actor)
    for criterion in criteria:
        prop, op = criterion["property"].strip().upper(), criterion["operation"].strip().upper()
        if prop in UNSUPPORTED:
            raise ValidationError(f"Search property '{prop}' is not supported: {UNSUPPORTED[prop]}.",
                                  field="criteria")
        if prop not in CRITERIA:
            raise ValidationError(f"Invalid search criteria's property, unrecognized: '{criterion['property']}'. "
                                  f"Use one of {', '.join(CRITERIA)}.", field="criteria")
        operations, handler = CRITERIA[prop]
        if op not in operations:
            raise ValidationError(f"Invalid search criteria's operation '{criterion['operation']}' for {prop}, "
                                  f"should be {' or '.join(operations)}.", field="criteria")
        handler(search, criterion["value"], op)
    query = search.query
    if len(search.cas) == 1:
        query.ca = search.cas[0]
    elif search.cas:
        search.narrowing.append(Q(ca__in=search.cas))
    if len(search.profiles) == 1:
        query.profile = search.profiles[0]
    elif search.profiles:
        search.narrowing.append(Q(certificate_profile__in=search.profiles))
    if len(search.statuses) == 1:
        query.status = next(iter(search.statuses))
    elif search.statuses:
        search.narrowing.append(Q(status__in=search.statuses))
    if search.ee_profiles:
        search.narrowing.append(Q(end_entity_profile_id__in=search.ee_profiles))
    if search.reasons:
        search.narrowing.append(Q(revocation_reason__in=search.reasons))
    qs = search_certificates(actor, query)
    for condition in search.narrowing:
        qs = qs.filter(condition)
    return qs


class SearchView(APIView):
    """``POST /v1/certificate/search``."""

    @extend_schema(tags=["v1/certificate"], operation_id="certificate_search", summary="Search certificates",
                   request=SearchRequestSerializer,
                   responses=with_errors({200: SearchResponseSerializer}, 400, 401, 403))
    def post(self, request: Request) -> Response:
        """At most ``max_number_of_results`` (capped at 500), newest first; ``more_results`` says there are more."""
        actor_for_request(request).require("/ca_functionality/view_certificate")  # the rule before the body
        data = SearchRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        limit = min(data.validated_data["max_number_of_results"], MAX_RESULTS)
        qs = certificate_search(actor_for_request(request), data.validated_data["criteria"])
        rows = list(qs[: limit + 1])
        names = end_entity_profile_names({c.end_entity_profile_id for c in rows[:limit]})
        return Response({
            "certificates": [build_search_result(cert, names) for cert in rows[:limit]],
            "more_results": len(rows) > limit,
        })
