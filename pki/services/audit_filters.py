"""Finding audit events by the object they are about, and linking each event to that object's page.

An operator names an object the way it is shown: a username, a serial number in any form, a CA or profile
by name. Events store the object as ``object_type`` + ``object_id`` (a CA or profile by primary key, a
certificate by serial, an end entity by username) and often name it again in ``details``."""

from __future__ import annotations

from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode

from ..models import AuditEvent, CertificateAuthority, CertificateProfile
from .search import serial_candidates

# object_type -> (URL name, whether it takes the object id as the primary key). The others get a search link.
_DETAIL_PAGES = {
    "ca": "ca-detail",
    "certificate_profile": "profile-detail",
    "end_entity_profile": "ee-profile-detail",
}
_SEARCH_PAGES = {
    "certificate": ("search", "q"),  # a serial is unique per CA only: the search lists them all
    "endentity": ("ee-search", "text"),
}


def object_filter(text: str) -> Q:
    """Events about the object ``text`` names: its id as stored, a serial number in any form, a CA or
    certificate profile by name, or a name the event's details give (username, CA, profile)."""
    text = text.strip()
    cond = Q(object_id__iexact=text)
    if serials := serial_candidates(text):
        cond |= Q(object_type="certificate", object_id__in=serials)
    ca_ids = [str(pk) for pk in CertificateAuthority.objects.filter(name__iexact=text).values_list("pk", flat=True)]
    if ca_ids:
        cond |= Q(object_type="ca", object_id__in=ca_ids)
    profile_ids = [str(pk) for pk in CertificateProfile.objects.filter(name__iexact=text).values_list("pk", flat=True)]
    if profile_ids:
        cond |= Q(object_type="certificate_profile", object_id__in=profile_ids)
    for key in ("username", "ca", "profile", "name"):
        cond |= Q(**{f"details__{key}": text})
    return cond


def object_url(event: AuditEvent) -> str:
    """The page of the object ``event`` is about, or "" when there is none to link to."""
    if not event.object_id:
        return ""
    try:
        if (name := _DETAIL_PAGES.get(event.object_type)) and event.object_id.isdigit():
            return reverse(name, args=[int(event.object_id)])
        if page := _SEARCH_PAGES.get(event.object_type):
            return f"{reverse(page[0])}?{urlencode({page[1]: event.object_id})}"
    except NoReverseMatch:  # the app that has the page is not installed on this node
        return ""
    return ""
