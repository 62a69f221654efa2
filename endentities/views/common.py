"""What the admin end entity pages and the RA portal share: which profiles and actions the caller's rules
allow (to offer only those; the services check again), and service refusals placed on form inputs."""

from __future__ import annotations

from django.db.models import QuerySet

from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, as_pki_error

from ..models import EndEntity, EndEntityProfile
from ..services.common import PROFILE_ACTIONS, RA_RULES


def profiles_for(who: Actor, action: str) -> QuerySet[EndEntityProfile]:
    """End entity profiles whose ``/endentityprofilesrules/<id>/<action>`` rule ``who`` holds."""
    ids = [pk for pk in EndEntityProfile.objects.values_list("pk", flat=True)
           if who.is_allowed(f"/endentityprofilesrules/{pk}/{action}")]
    return EndEntityProfile.objects.filter(pk__in=ids).order_by("name")


def may(who: Actor, action: str, ee: EndEntity) -> bool:
    """Whether ``who`` holds the RA rule, the profile rule and the CA rule of ``action`` on ``ee``."""
    return (who.is_allowed(RA_RULES[action])
            and who.is_allowed(f"/endentityprofilesrules/{ee.end_entity_profile_id}/{PROFILE_ACTIONS[action]}")
            and who.is_allowed(f"/ca/{ee.ca_id}"))


def entity_actions(who: Actor, ee: EndEntity) -> dict[str, bool]:
    """``can.edit`` / ``can.revoke`` / ``can.delete`` for the page's buttons."""
    return {action: may(who, action, ee) for action in ("edit", "revoke", "delete")}


def place_refusal(form, exc: Exception) -> int:
    """Put a service refusal on the input it names (see ``EndEntityForm.place_error``) and return the HTTP
    status to answer with; a missing access rule goes up to the "not authorized" page."""
    exc = as_pki_error(exc)
    if isinstance(exc, AuthorizationDenied):
        raise exc
    if hasattr(form, "place_error"):
        form.place_error(exc.field, exc.message)
    else:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    return exc.http_status
