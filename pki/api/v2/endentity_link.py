"""How the certificate search of the core learns which end entity profile a certificate belongs to.

Certificates name their end entity only by username; end entities and their profiles live in the
``endentities`` app, which sits above the core. That app registers a :class:`EndEntityProfileLink` at start-up
(``EndEntitiesConfig.ready``); without one, certificates have no end entity profile and the
``END_ENTITY_PROFILE`` criterion is refused.
"""

from __future__ import annotations

from typing import Protocol

from django.db.models import QuerySet

from ...auth.access import Actor


class EndEntityProfileLink(Protocol):
    """What the certificate search asks of the end entity app."""

    def annotate(self, qs: QuerySet) -> QuerySet:
        """``qs`` (certificates) with ``ee_profile_id``: the end entity profile each certificate was issued
        under (or, when none was recorded, its end entity's), None for a certificate without one."""

    def viewable_profile_ids(self, actor: Actor) -> list[int] | None:
        """The profiles whose end entities ``actor`` may view (None: all of them)."""

    def profile_id(self, actor: Actor, name: str) -> int | None:
        """The id of the profile ``name`` if it exists and ``actor`` may view its end entities."""


_link: list[EndEntityProfileLink] = []


def register_end_entity_profile_link(link: EndEntityProfileLink) -> None:
    """Called once by the end entity app (``EndEntitiesConfig.ready``)."""
    _link[:] = [link]


def end_entity_profile_link() -> EndEntityProfileLink | None:
    """The registered link, or None when the end entity app is not installed."""
    return _link[0] if _link else None
