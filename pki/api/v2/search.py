"""``POST /v2/certificate/search``: EJBCA's SearchCertificatesRestRequestV2 — the v1 criteria (``pki.api.search``)
plus ``END_ENTITY_PROFILE``, a sort order and page-wise results.

What a caller sees is bounded twice: by the CAs it may use (``/ca/<id>``, the v1 search's rule) and by the end
entity profiles whose end entities it may view (``/endentityprofilesrules/<id>/view_end_entity``): a certificate
issued to an end entity of a profile the caller may not view is not found, as in EJBCA. Certificates without an
end entity (CA certificates, certificates issued for a CSR by an administrator) follow their CA's rule alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q, QuerySet

from ...auth.access import Actor
from ...errors import ValidationError
from ...models import Certificate
from ..search import certificate_search
from .endentity_link import end_entity_profile_link

# One page holds at most this many certificates (EJBCA's default maximum query count).
MAX_PAGE_SIZE = 500
# The deepest page a caller may ask for: an OFFSET deeper than this is a full scan for nobody's benefit.
MAX_OFFSET = 100_000
COUNT_ONLY = -1  # current_page -1 asks for the number of matches only (EJBCA's convention)

SORT_FIELDS: dict[str, str] = {
    "USERNAME": "username",
    "ISSUER_DN": "issuer_dn",
    "SUBJECT_DN": "subject_dn",
    "END_ENTITY_PROFILE": "ee_profile_id",
    "CERTIFICATE_PROFILE": "certificate_profile__name",
    "STATUS": "status",
    "TYPE": "is_ca",
    "UPDATE_TIME": "updated_at",
    "ISSUED_DATE": "not_before",
    "EXPIRE_DATE": "not_after",
    "REVOCATION_DATE": "revoked_at",
}
# EJBCA sorts on these too; nothing here records them, so every certificate has the same (empty) value.
SORT_WITHOUT_VALUE = {"EXTERNAL_ACCOUNT_BINDING_ID", "TAG"}


@dataclass
class Page:
    """One page of a v2 search: the rows, and the total when only the count was asked for."""

    rows: list[Certificate]
    page_size: int
    current_page: int
    total: int | None = None


def _end_entity_profiles(actor: Actor, values: list[str]) -> list[int]:
    link = end_entity_profile_link()
    if link is None:
        raise ValidationError("Search property 'END_ENTITY_PROFILE' is not supported: there are no end entities "
                              "here.", field="criteria")
    ids = []
    for value in values:
        pk = link.profile_id(actor, value.strip())
        if pk is None:  # a profile the caller may not view is as unknown as a missing one
            raise ValidationError(f"Invalid search criteria content, unknown end entity profile '{value}'.",
                                  field="criteria")
        ids.append(pk)
    return ids


def _visible(actor: Actor, qs: QuerySet) -> QuerySet:
    link = end_entity_profile_link()
    if link is None:
        return qs
    qs = link.annotate(qs)
    allowed = None if actor.system else link.viewable_profile_ids(actor)
    if allowed is not None:
        qs = qs.filter(Q(ee_profile_id__isnull=True) | Q(ee_profile_id__in=allowed))
    return qs


def _order(qs: QuerySet, sort: dict | None) -> QuerySet:
    if not sort:
        return qs.order_by("-created_at", "-pk")
    prop = sort["property"].strip().upper()
    op = sort.get("operation", "ASC").strip().upper()
    if op not in ("ASC", "DESC"):
        raise ValidationError(f"Invalid sort operation '{sort.get('operation')}', should be ASC or DESC.",
                              field="sort")
    if prop in SORT_WITHOUT_VALUE:
        return qs.order_by("-created_at", "-pk")
    if prop not in SORT_FIELDS:
        raise ValidationError(f"Invalid sort property '{sort['property']}'. Use one of "
                              f"{', '.join([*SORT_FIELDS, *SORT_WITHOUT_VALUE])}.", field="sort")
    field = SORT_FIELDS[prop]
    if field == "ee_profile_id" and "ee_profile_id" not in qs.query.annotations:
        return qs.order_by("-created_at", "-pk")
    key = F(field).desc(nulls_last=True) if op == "DESC" else F(field).asc(nulls_last=True)
    return qs.order_by(key, "pk" if op == "ASC" else "-pk")


def search_v2(actor: Actor, criteria: list[dict], page_size: int, current_page: int,
              sort: dict | None = None) -> Page:
    """The page ``current_page`` (1-based; -1 for the count only) of the certificates matching ``criteria``
    that ``actor`` may see, in ``sort`` order (newest first without one)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationError(f"page_size must be between 1 and {MAX_PAGE_SIZE}.", field="pagination")
    if current_page != COUNT_ONLY and current_page < 1:
        raise ValidationError("current_page is 1 or more (or -1 for the number of matches only).",
                              field="pagination")
    if current_page != COUNT_ONLY and (current_page - 1) * page_size > MAX_OFFSET:
        raise ValidationError(f"Pages start at most {MAX_OFFSET} results deep: narrow the criteria.",
                              field="pagination")
    eep_values = [c["value"] for c in criteria if c["property"].strip().upper() == "END_ENTITY_PROFILE"]
    rest = [c for c in criteria if c["property"].strip().upper() != "END_ENTITY_PROFILE"]
    for c in criteria:
        if c["property"].strip().upper() == "END_ENTITY_PROFILE" and c["operation"].strip().upper() != "EQUAL":
            raise ValidationError(f"Invalid search criteria's operation '{c['operation']}' for END_ENTITY_PROFILE, "
                                  "should be EQUAL.", field="criteria")
    profile_ids = _end_entity_profiles(actor, eep_values) if eep_values else []
    qs = _visible(actor, certificate_search(actor, rest))
    if profile_ids:
        qs = qs.filter(ee_profile_id__in=profile_ids)
    if current_page == COUNT_ONLY:
        return Page([], page_size, current_page, total=qs.count())
    qs = _order(qs, sort)
    offset = (current_page - 1) * page_size
    return Page(list(qs[offset:offset + page_size]), page_size, current_page)
