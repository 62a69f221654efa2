"""The SCEP alias of a request, with the rows every PKIOperation reads (its CAs, RA certificate profile, RA end
entity profile and that profile's available CAs and certificate profiles), kept per process between requests
and checked against PostgreSQL on every request.

Why: loading these through the ORM cost ~3 ms of CPU per request (query building for wide rows), more than the
SCEP message layer's own work. The check is one plain statement that reads each row's version (``xmin`` and
``ctid``: a new row version, committed anywhere or made earlier in this transaction, always has a new pair)
the ids of the profile's available CAs and certificate profiles, and whether the RA CA or certificate profile
requires approval; any difference, or a disabled or removed
alias, loads again. So nothing here is state another process needs: an edit in any process is seen by the next
request everywhere, as with no cache at all. Other databases than PostgreSQL load every time.
"""

from __future__ import annotations

import threading

from django.db import connection

from .models import ApprovalRequirement, ScepAlias

_lock = threading.Lock()
_cache: dict[str, tuple[tuple, ScepAlias]] = {}
_MAX = 64
_sql: str | None = None


def _stamp_sql() -> str:
    """The version statement, built from the models' table and column names (quoted; values are parameters)."""
    global _sql
    if _sql is None:
        from endentities.models import EndEntityProfile
        from pki.models import CertificateAuthority, CertificateProfile

        q = connection.ops.quote_name

        def m2m(field: str) -> str:
            rel = EndEntityProfile._meta.get_field(field)
            through = rel.remote_field.through._meta
            own = q(rel.m2m_column_name())
            other = q(rel.m2m_reverse_name())
            table = q(through.db_table)
            return f"(SELECT string_agg({other}::text, ',' ORDER BY {other}) FROM {table} WHERE {own} = ep.id)"  # noqa: S608

        ca, cp, ep = (q(m._meta.db_table) for m in (CertificateAuthority, CertificateProfile, EndEntityProfile))
        req = q(ApprovalRequirement._meta.db_table)
        versions = ", ".join(f"({t}.xmin::text || '/' || {t}.ctid::text)" for t in ("a", "dc", "rc", "cp", "ep"))
        # Only quoted names from the models go into the text; the alias name is a parameter.
        _sql = (
            f"SELECT a.id, {versions}, {m2m('available_cas')}, {m2m('available_certificate_profiles')}, "  # noqa: S608
            f"EXISTS (SELECT 1 FROM {req} r WHERE r.ca_id = a.ra_default_ca_id "
            "OR r.certificate_profile_id = a.ra_certificate_profile_id) "
            f"FROM {q(ScepAlias._meta.db_table)} a "
            f"LEFT JOIN {ca} dc ON dc.id = a.default_ca_id LEFT JOIN {ca} rc ON rc.id = a.ra_default_ca_id "
            f"LEFT JOIN {cp} cp ON cp.id = a.ra_certificate_profile_id "
            f"LEFT JOIN {ep} ep ON ep.id = a.ra_end_entity_profile_id "
            "WHERE a.name = %s AND a.enabled"
        )
    return _sql


def _load(name: str) -> ScepAlias | None:
    alias = (ScepAlias.objects.select_related("default_ca", "ra_default_ca", "ra_certificate_profile",
                                              "ra_end_entity_profile")
             .filter(name=name, enabled=True).first())
    if alias is not None and alias.ra_end_entity_profile is not None:
        from endentities.extended import _available_ids

        _available_ids(alias.ra_end_entity_profile)  # read now, with the versions (see get_alias)
    return alias


def get_alias(name: str) -> ScepAlias | None:
    """The enabled alias ``name`` with its related rows loaded, or None."""
    if connection.vendor != "postgresql":
        return _load(name)
    with connection.cursor() as cur:
        cur.execute(_stamp_sql(), [name])
        row = cur.fetchone()
    if row is None:
        with _lock:
            _cache.pop(name, None)
        return None
    stamp = tuple(row)
    hit = _cache.get(name)
    if hit is not None and hit[0] == stamp:
        alias = hit[1]
        # Rows reached from the cached ones (a CA's token or issuing CA, a profile's defaults) are not covered
        # by the versions: forget them, so they are read fresh when a request needs them, as without a cache.
        for related in (alias.default_ca, alias.ra_default_ca, alias.ra_certificate_profile,
                         alias.ra_end_entity_profile):
            if related is not None and related._state.fields_cache:
                related._state.fields_cache.clear()
        return alias
    alias = _load(name)
    if alias is None:
        return None
    # Whether the RA CA or RA certificate profile requires approval, as of the versions above (part of them).
    alias.ra_approval_required = bool(stamp[-1])
    # Read after the versions: a change in between makes the next request load again (never a stale hit).
    with _lock:
        if len(_cache) >= _MAX:
            _cache.clear()
        _cache[name] = (stamp, alias)
    return alias


def clear() -> None:
    """Forget every cached alias (tests; never needed for correctness)."""
    with _lock:
        _cache.clear()
