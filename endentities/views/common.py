"""What the admin end entity pages and the RA portal share: which profiles and actions the caller's rules
allow (to offer only those; the services check again), and service refusals placed on form inputs."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, as_pki_error
from pki.services.approvals import WaitingForApproval
from pki.views.base import SERVICE_ERRORS

from .. import services
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


def save_edit(request: HttpRequest, who: Actor, ee: EndEntity, form, detail_view: str
              ) -> tuple[HttpResponse | None, int | None]:
    """A posted end entity edit (admin UI and RA portal alike): ``(redirect, None)`` once saved or stored for
    approval, ``(None, status)`` with the refusal on the form, ``(None, None)`` when there is nothing to save."""
    if request.method != "POST" or not form.is_valid():
        return None, None
    try:
        services.edit_end_entity(who, ee.username, form.to_input())
    except WaitingForApproval as waiting:
        messages.info(request, waiting.message)
    except SERVICE_ERRORS as exc:
        return None, place_refusal(form, exc)
    else:
        messages.success(request, f"End entity '{ee.username}' saved.")
    return redirect(detail_view, ee.pk), None
