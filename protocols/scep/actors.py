"""Who SCEP acts as in the services it calls, and the interface name it reports.

Its own module so that enrollment (PKCSReq) and approvals (issuing once a request is approved) both use it
without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pki.auth.access import Actor

if TYPE_CHECKING:
    from .models import ScepAlias

INTERFACE = "scep"


def scep_actor(alias: ScepAlias) -> Actor:
    """Who SCEP acts as: the server itself, named after the alias in the audit log. The caller's proof
    (enrollment code, RA shared secret, renewal signature) was checked before this actor is used."""
    return Actor.client_proxy(f"scep:{alias.name}")
