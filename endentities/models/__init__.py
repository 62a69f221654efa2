"""Models of the end entity app, split by subdomain: profiles (mine) and end entities (entities.py)."""

from .entities import EndEntity, EndEntityQuerySet
from .expiry import ExpiryNotice
from .profiles import EndEntityProfile, normalize_field_instance, normalize_notification

__all__ = ["EndEntity", "EndEntityProfile", "EndEntityQuerySet", "ExpiryNotice", "normalize_field_instance",
           "normalize_notification"]
