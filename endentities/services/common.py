"""What the end entity services share: access rules, audit event names, redaction, notification queueing."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from pki.auth.access import Actor

from ..choices import EndEntityStatus

# EJBCA's audit event types for end entity changes.
AUDIT_ADD = "RA_ADDENDENTITY"
AUDIT_EDIT = "RA_EDITENDENTITY"
AUDIT_DELETE = "RA_DELETEENDENTITY"
AUDIT_REVOKE = "RA_REVOKEDENDENTITY"

# EJBCA's access rules: the RA function, the end entity profile's own rule, and the CA's.
RA_RULES = {
    "create": "/ra_functionality/create_end_entity",
    "edit": "/ra_functionality/edit_end_entity",
    "delete": "/ra_functionality/delete_end_entity",
    "revoke": "/ra_functionality/revoke_end_entity",
    "view": "/ra_functionality/view_end_entity",
}
PROFILE_ACTIONS = {
    "create": "create_end_entity",
    "edit": "edit_end_entity",
    "delete": "delete_end_entity",
    "revoke": "revoke_end_entity",
    "view": "view_end_entity",
}


def require(actor: Actor, action: str, profile_id: int | None, ca_id: int | None) -> None:
    """``/ra_functionality/<action>``, ``/endentityprofilesrules/<profile>/<action>`` and ``/ca/<id>``."""
    actor.require(RA_RULES[action])
    if profile_id is not None:
        actor.require(f"/endentityprofilesrules/{profile_id}/{PROFILE_ACTIONS[action]}")
    if ca_id is not None:
        actor.require(f"/ca/{ca_id}")


def redact(profile, value: str) -> str:
    """The subject DN or alt name as logs may show it: replaced when the profile (or the system) redacts."""
    from ..subject import redact_subject

    return redact_subject(value, profile) or ""


def redacted_details(profile, subject: str | None = None, alt_name: str | None = None, /, **extra: Any) -> dict:
    """Audit details with the subject DN and alt name redacted as the profile says."""
    out: dict[str, Any] = dict(extra)
    if subject is not None:
        out["subject"] = redact(profile, subject)
    if alt_name is not None:
        out["subject_alt_name"] = redact(profile, alt_name)
    return out


def notify_status_change(ee, old_status: int | None, password: str | None = None, *,
                         status: int | None = None) -> None:
    """Queue the profile's e-mail notifications for ``ee``'s new status once the change has committed.

    ``password``: the code just set, for ``${PASSWORD}``; it crosses the broker encrypted under the master key.
    ``status``: the new status when it is not (or no longer) ``ee.status``."""
    new_status = int(ee.status if status is None else status)
    if old_status is not None and int(old_status) == new_status:
        return
    profile = ee.end_entity_profile
    if not getattr(profile, "notifications", None):
        return
    if profile.send_notification_use and not ee.send_notification:
        return
    status_name = EndEntityStatus(new_status).name
    wanted = [i for i, n in enumerate(profile.notifications) if status_name in (n.get("events") or [])]
    if not wanted:
        return
    from cryptotokens.secrets import encrypt_secret

    from ..tasks import send_status_notifications

    ee_id, status = ee.pk, new_status
    sealed = encrypt_secret(password, f"notification:{ee_id}") if password else ""
    transaction.on_commit(lambda: send_status_notifications.delay(ee_id, status, wanted, sealed))
