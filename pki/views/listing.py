"""Sortable list pages: ``?o=<column>`` (``-<column>`` for descending) orders a list by one of the columns the
view whitelists, the header links keep the other query parameters (filters), and the pagination links keep
the order. A column name nobody whitelisted is never passed to the database: the list keeps its default order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.expressions import BaseExpression
from django.db.models.functions import Length
from django.http import HttpRequest

logger = logging.getLogger("pki.views")

Ordering = Sequence[str | BaseExpression]


@dataclass(frozen=True)
class SortLink:
    """One column header: where clicking it goes and how the list is sorted by it now."""

    query: str  # the query string of the link (filters kept, page dropped)
    direction: str  # "ascending", "descending" or "" (not sorted by this column)

    @property
    def aria(self) -> str:
        return self.direction or "none"


@dataclass(frozen=True)
class Sorting:
    """The chosen order of a list page: ``key`` and ``descending``, and ``columns.<name>`` for the headers."""

    key: str
    descending: bool
    columns: dict[str, SortLink]
    value: str  # the ``o`` parameter as it is now ("" for the default order), for the filter form


def hex_serial(field: str = "serial") -> list[BaseExpression]:
    """Ordering by a hexadecimal serial stored without leading zeros: shorter is smaller, then by text."""
    return [Length(field), F(field)]


def _parse(request: HttpRequest, columns: dict[str, Any], default: str) -> tuple[str, bool, bool]:
    raw = request.GET.get("o", "")
    key = raw.removeprefix("-")
    if key in columns:
        return key, raw.startswith("-"), True
    if raw:
        logger.info("list %s: ignored unknown sort column %r", request.path, raw[:40])
    return default.removeprefix("-"), default.startswith("-"), False


# Parameters that ask for a one-off action (check the audit chain, download CSV), not a view to keep.
_NOT_KEPT = ("page", "verify", "format")


def _links(request: HttpRequest, columns: Iterable[str], key: str, descending: bool) -> dict[str, SortLink]:
    links = {}
    for name in columns:
        params = request.GET.copy()
        for drop in _NOT_KEPT:
            params.pop(drop, None)
        current = name == key
        params["o"] = f"-{name}" if current and not descending else name
        links[name] = SortLink(params.urlencode(), ("descending" if descending else "ascending") if current else "")
    return links


def sort_queryset(request: HttpRequest, qs: QuerySet, columns: dict[str, Ordering], default: str
                  ) -> tuple[QuerySet, Sorting]:
    """``qs`` ordered by the column ``?o=`` names (one of ``columns``: name -> fields or expressions), else by
    ``default``; the primary key breaks ties so that pages never repeat or skip a row."""
    key, descending, chosen = _parse(request, columns, default)
    fields = [f for f in columns[key]]
    ordering: list[Any] = []
    for f in fields:
        if isinstance(f, str):
            ordering.append(f"-{f}" if descending else f)
        else:
            ordering.append(f.desc() if descending else f.asc())
    ordering.append("-pk" if descending else "pk")
    return qs.order_by(*ordering), Sorting(key, descending, _links(request, columns, key, descending),
                                           request.GET.get("o", "") if chosen else "")


def sort_rows(request: HttpRequest, rows: list, columns: dict[str, Callable[[Any], Any]], default: str
              ) -> tuple[list, Sorting]:
    """The same for a short list built in Python (a handful of CAs): ``columns`` maps a name to a sort key;
    rows whose key is None go last either way."""
    key, descending, chosen = _parse(request, columns, default)
    get = columns[key]
    present = [r for r in rows if get(r) is not None]
    missing = [r for r in rows if get(r) is None]
    present.sort(key=get, reverse=descending)
    return present + missing, Sorting(key, descending, _links(request, columns, key, descending),
                                      request.GET.get("o", "") if chosen else "")
