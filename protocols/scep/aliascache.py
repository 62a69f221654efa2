"""The SCEP alias of a request, with the rows every PKIOperation reads (its CAs, RA certificate profile, RA end
entity profile and that profile's available CAs and certificate profiles), kept per process between requests
and checked against PostgreSQL on every request.

Why: loading these through the ORM cost ~3 ms of CPU per request (query building for wide rows), more than the
SCEP message layer's own work. The check is one plain statement that reads each row's version (``xmin`` and
``ctid``: a new row version, committed anywhere or made earlier in this transaction, always has a new pair)
the ids of the profile's available CAs and certificate profiles, and whether the RA CA or certificate profile
requires approval; any difference, or a disabled or removed
alias, loads again. So nothing here is state another process needs: an edit in any process is seen by the next
request everywhere, as with no cache at all.

Other databases (SQLite: ``make run``'s default) have no row versions. There the rows themselves are the check:
the alias query's one row, with every column of the alias and its related rows as the database returns them,
and a second statement with the profile's available ids, the approval requirement and the version and activation
of the crypto tokens of the alias's CAs and RA key pair. When both equal what the kept alias was built from, it
is used again; any difference builds it anew. Building the model instances, not reading the rows, was the cost.

The versions also cover the crypto token rows of the alias's CAs and of its RA key pair: a key handle a request
obtained through :func:`cryptotokens.services.get_private_key_by_id` (which checked the token's activation) is
kept with the alias (:func:`responder_key`) and used again only while the statement finds those rows unchanged,
so the responder's key costs no second statement; any change to a token (activation, deactivation, new keys)
makes a new version, and the next request loads and checks again.

The statement is prepared once per database session (:mod:`pki.db`; PostgreSQL then plans it once): planning it
cost the server ~1 ms of CPU per request, more than all of this process's work for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from cryptotokens.services import TOKEN_ACTIVE_SQL
from pki import db
from pki.models.approvals import ApprovalAction, ApprovalSetting

from .models import ScepAlias

ADD_EDIT = ApprovalAction.ADD_EDIT_END_ENTITY.value  # a constant of the code, safe inside the statement text

_lock = threading.Lock()
_cache: dict[str, tuple[tuple, ScepAlias]] = {}
_MAX = 64
_sql: str | None = None


def _stamp_sql() -> str:
    """The version statement, built from the models' table and column names (quoted); the parameter is the alias
    name."""
    global _sql
    if _sql is None:
        from cryptotokens.models import CryptoToken
        from endentities.models import EndEntityProfile
        from pki.models import CertificateAuthority, CertificateProfile

        q = connection.ops.quote_name

        def version(alias: str) -> str:
            return f"{alias}.xmin::text || '/' || {alias}.ctid::text"

        def m2m(field: str) -> str:
            rel = EndEntityProfile._meta.get_field(field)
            through = rel.remote_field.through._meta
            own = q(rel.m2m_column_name())
            other = q(rel.m2m_reverse_name())
            table = q(through.db_table)
            return (f"(SELECT string_agg({other}::text, ',' ORDER BY {other}) FROM {table} "  # noqa: S608
                    f"WHERE {own} = a.{q(ScepAlias._meta.get_field('ra_end_entity_profile').column)})")

        def column(model, name: str) -> str:
            return q(model._meta.get_field(name).column)

        ca, cp, ep, tok = (q(m._meta.db_table) for m in (CertificateAuthority, CertificateProfile, EndEntityProfile,
                                                         CryptoToken))
        ca_token = column(CertificateAuthority, "crypto_token")

        def ca_version(field: str) -> str:
            # The CA row and its crypto token's row, one version string (the token part empty without one).
            return (f"(SELECT {version('c')} || '|' || coalesce({version('t')}, '') FROM {ca} c "  # noqa: S608
                    f"LEFT JOIN {tok} t ON t.id = c.{ca_token} WHERE c.id = a.{column(ScepAlias, field)})")

        def row_version(table: str, field: str) -> str:
            return f"(SELECT {version('x')} FROM {table} x WHERE x.id = a.{column(ScepAlias, field)})"  # noqa: S608

        req = q(ApprovalSetting._meta.db_table)
        # Scalar subqueries rather than joins: the planner has no join order to search (half the planning cost).
        # Only quoted names from the models go into the text; the alias name is the parameter.
        _sql = (
            f"SELECT a.id, {version('a')}, {ca_version('default_ca')}, {ca_version('ra_default_ca')}, "  # noqa: S608
            f"{row_version(cp, 'ra_certificate_profile')}, {row_version(ep, 'ra_end_entity_profile')}, "
            f"{row_version(tok, 'ra_crypto_token')}, "
            f"{m2m('available_cas')}, {m2m('available_certificate_profiles')}, "
            f"EXISTS (SELECT 1 FROM {req} r WHERE r.{column(ApprovalSetting, 'action')} = '{ADD_EDIT}' AND "
            f"(r.{column(ApprovalSetting, 'ca')} = a.{column(ScepAlias, 'ra_default_ca')} OR "
            f"r.{column(ApprovalSetting, 'certificate_profile')} = a.{column(ScepAlias, 'ra_certificate_profile')})) "
            f"FROM {q(ScepAlias._meta.db_table)} a WHERE a.name = %s AND a.enabled"
        )
    return _sql


def _read_stamp(name: str) -> tuple | None:
    """The versions row of alias ``name`` (None: no such enabled alias), through the session's prepared statement."""
    with connection.cursor() as cur:
        db.execute(cur, "scep_alias_stamp", _stamp_sql(), [name])
        row = cur.fetchone()
    return tuple(row) if row is not None else None


class _AliasQuery:
    """The alias query with its related rows (``select_related``), compiled to SQL once per process and database
    vendor: each load sends the same text with the alias name and builds the instances the way Django's
    ``ModelIterable`` does. Compiling it (query building for five wide rows) was most of a load's cost, and on
    SQLite, where there are no row versions to check a kept alias against, every request loads."""

    RELATED = ("default_ca", "ra_default_ca", "ra_certificate_profile", "ra_end_entity_profile")
    _NAME = "\x00alias-name\x00"  # a stand-in for the name, found again among the compiled parameters

    def __init__(self, using: str) -> None:
        from django.db.models.query import get_related_populators

        qs = ScepAlias.objects.using(using).select_related(*self.RELATED).filter(name=self._NAME, enabled=True)
        compiler = qs.query.get_compiler(using=using)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.name_at = self.params.index(self._NAME)
        self.compiler, self.using = compiler, using
        info = compiler.klass_info
        first, last = info["select_fields"][0], info["select_fields"][-1] + 1
        self.own = slice(first, last)
        self.init_list = [col[0].target.attname for col in compiler.select[self.own]]
        self.populators = get_related_populators(info, compiler.select, using)
        self.converters = compiler.get_converters([col[0] for col in compiler.select[:compiler.col_count]])

    def fetch(self, name: str) -> tuple | None:
        """The query's row for alias ``name`` as the database returns it (None: no such enabled alias)."""
        params = list(self.params)
        params[self.name_at] = name
        with connection.cursor() as cur:
            cur.execute(self.sql, params)
            row = cur.fetchone()
        return tuple(row) if row is not None else None

    def load(self, name: str, row: tuple | None = None) -> ScepAlias | None:
        """The alias built from ``row`` (read now when not given)."""
        if row is None:
            row = self.fetch(name)
        if row is None:
            return None
        if self.converters:
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        alias = ScepAlias.from_db(self.using, self.init_list, row[self.own])
        for populator in self.populators:
            populator.populate(row, alias)
        return alias


_queries: dict[str, _AliasQuery] = {}


_extras: str | None = None


def _extras_sql() -> str:
    """Other databases than PostgreSQL: the alias's RA end entity profile's available CA and certificate profile
    ids, the approval settings of its RA CA and certificate profile and the (version, activation) of the crypto
    tokens of its CAs and RA key pair, in one statement whose parameter is the alias name (so it can run before
    the alias is built). Rows: (kind, id, token state or NULL). PostgreSQL's version statement reads the same."""
    global _extras
    if _extras is not None:
        return _extras
    from cryptotokens.models import CryptoToken
    from endentities.models import EndEntityProfile
    from pki.models import CertificateAuthority

    q = connection.ops.quote_name

    def column(model, name: str) -> str:
        return q(model._meta.get_field(name).column)

    alias_table = q(ScepAlias._meta.db_table)

    def of_alias(field: str) -> str:  # the alias's column, read by the alias name
        return f"(SELECT {column(ScepAlias, field)} FROM {alias_table} WHERE name = %s AND enabled)"  # noqa: S608

    parts = []
    for kind, field in (("ca", "available_cas"), ("cp", "available_certificate_profiles")):
        rel = EndEntityProfile._meta.get_field(field)
        parts.append(f"SELECT '{kind}', {q(rel.m2m_reverse_name())}, NULL FROM "  # noqa: S608 - model names
                     f"{q(rel.remote_field.through._meta.db_table)} WHERE {q(rel.m2m_column_name())} = "
                     f"{of_alias('ra_end_entity_profile')}")
    col = {f: column(ApprovalSetting, f) for f in ("action", "ca", "certificate_profile")}
    parts.append(f"SELECT 'approval', 1, NULL FROM {q(ApprovalSetting._meta.db_table)} WHERE {col['action']} = "  # noqa: S608
                 f"'{ADD_EDIT}' AND ({col['ca']} = {of_alias('ra_default_ca')} OR {col['certificate_profile']} = "
                 f"{of_alias('ra_certificate_profile')})")
    ca_table, ca_token = q(CertificateAuthority._meta.db_table), column(CertificateAuthority, "crypto_token")
    parts.append(f"SELECT 'token', t.id, CAST(t.{column(CryptoToken, 'version')} AS text) || '/' || "  # noqa: S608
                 f"CAST({TOKEN_ACTIVE_SQL} AS text) FROM {q(CryptoToken._meta.db_table)} t WHERE t.id IN "
                 f"(SELECT {ca_token} FROM {ca_table} WHERE id IN ({of_alias('default_ca')}, "
                 f"{of_alias('ra_default_ca')})) OR t.id = {of_alias('ra_crypto_token')}")
    _extras = " UNION ALL ".join(parts)
    return _extras


#: How many times :func:`_extras_sql` takes the alias name.
_EXTRAS_NAMES = 7


def _read_extras(name: str) -> tuple:
    """The rows of :func:`_extras_sql` for alias ``name``, in a fixed order (compared with a kept alias's)."""
    with connection.cursor() as cur:
        cur.execute(_extras_sql(), [name] * _EXTRAS_NAMES)
        return tuple(sorted(cur.fetchall(), key=lambda row: (row[0], row[1])))


def _ids(text: str | None) -> set[int]:
    return {int(x) for x in text.split(",")} if text else set()


def _query() -> _AliasQuery:
    query = _queries.get(connection.vendor)
    if query is None:
        query = _queries[connection.vendor] = _AliasQuery(connection.alias)
    return query


def _load(name: str, stamp: tuple | None = None, rows: tuple | None = None) -> ScepAlias | None:
    """The alias with its related rows, the RA profile's available ids and whether the RA CA or certificate
    profile requires approval: from PostgreSQL's version row ``stamp``, or from ``rows`` (the alias query's row
    and :func:`_read_extras`' rows, other databases), else read here."""
    from endentities.extended import remember_available_ids

    if stamp is None and rows is None:
        row = _query().fetch(name)
        rows = (row, _read_extras(name)) if row is not None else None
        if rows is None:
            return None
    alias = _query().load(name, rows[0] if rows is not None else None)
    if alias is None:
        return None
    profile = alias.ra_end_entity_profile
    if stamp is not None:
        cas, cps, required = _ids(stamp[-3]), _ids(stamp[-2]), bool(stamp[-1])
    else:
        kinds: dict[str, set[int]] = {"ca": set(), "cp": set(), "approval": set(), "token": set()}
        for kind, value, _state in rows[1]:
            kinds[kind].add(value)
        cas, cps, required = kinds["ca"], kinds["cp"], bool(kinds["approval"])
    if profile is not None:
        remember_available_ids(profile, cas, cps)
    # Whether the RA CA or RA certificate profile requires approval (enrollment asks again for any other CA).
    alias.ra_approval_required = required
    return alias


def get_alias(name: str) -> ScepAlias | None:
    """The enabled alias ``name`` with its related rows loaded, or None."""
    rows = None
    if connection.vendor == "postgresql":
        stamp = _read_stamp(name)
    else:  # no row versions: the rows themselves (see the module doc)
        row = _query().fetch(name)
        stamp = rows = (row, _read_extras(name)) if row is not None else None
    if stamp is None:
        with _lock:
            _cache.pop(name, None)
        return None
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
    alias = _load(name, None if rows is not None else stamp, rows)
    if alias is None:
        return None
    # The versions cover the token rows of these CAs and of the RA key pair: their keys may be kept with the alias.
    alias._scep_keys = {}
    alias._scep_key_tokens = {ca.crypto_token_id for ca in (alias.default_ca, alias.ra_default_ca)
                              if ca is not None and ca.crypto_token_id is not None}
    if alias.ra_crypto_token_id is not None:
        alias._scep_key_tokens.add(alias.ra_crypto_token_id)
    # Read after the versions (on other databases: built from the rows compared): a change in between makes the
    # next request load again (never a stale hit).
    with _lock:
        if len(_cache) >= _MAX:
            _cache.clear()
        _cache[name] = (stamp, alias)
    return alias


def responder_key(alias: ScepAlias, token_id: int, key_alias: str, load: Callable[[int, str], Any]) -> Any:
    """The key ``key_alias`` of crypto token ``token_id`` for a request of ``alias``: ``load(token_id, key_alias)``
    (which checks the token's state in the database), kept with the cached alias when this request's version
    statement covered the token's row, and then used again while that row is unchanged (see the module doc)."""
    keys = getattr(alias, "_scep_keys", None)
    if keys is None or token_id not in alias._scep_key_tokens:
        return load(token_id, key_alias)
    key = keys.get((token_id, key_alias))
    if key is None:
        key = keys[(token_id, key_alias)] = load(token_id, key_alias)
    return key


def clear() -> None:
    """Forget every cached alias (tests; never needed for correctness)."""
    with _lock:
        _cache.clear()
