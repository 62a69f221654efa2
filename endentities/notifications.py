"""E-mail notifications of end entity status changes (EJBCA's "E-Mail Notifications" of a profile).

A profile lists notifications: the statuses that trigger each (``events``), its recipients ("USER" is the
end entity's e-mail address; other entries are addresses), a sender, and subject and body templates with
EJBCA's variables. :func:`render` fills the templates; :func:`messages_for` builds the messages the Celery
task (``endentities.tasks.send_status_notifications``) sends through Django's e-mail backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from pki.x509.dn import parse_dn_pairs

from .choices import EndEntityStatus

USER = "USER"
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def _dn_values(subject_dn: str) -> dict[str, str]:
    """First value of each DN attribute (EJBCA's ${CN}, ${O}, ...)."""
    out: dict[str, str] = {}
    try:
        rdns = parse_dn_pairs(subject_dn) if subject_dn else []
    except Exception:  # a stored DN always parses; a broken one just leaves the variables empty
        rdns = []
    for rdn in rdns:
        for key, value in rdn:
            out.setdefault(key.upper(), value)
    return out


def variables(ee, password: str | None = None) -> dict[str, str]:
    """The template variables of one end entity (EJBCA's names; unknown ones stay in the text as written)."""
    dn = _dn_values(ee.subject_dn)
    san_email = ""
    for part in (ee.subject_alt_name or "").split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() in {"RFC822NAME", "EMAIL"}:
            san_email = value.strip()
            break
    now = timezone.now()
    values = {
        "NL": "\n",
        "DATE": now.strftime("%Y-%m-%d %H:%M"),
        "USERNAME": ee.username,
        "PASSWORD": password or "",
        "DN": ee.subject_dn,
        "CN": dn.get("CN", ""),
        "SN": dn.get("SERIALNUMBER", dn.get("SN", "")),
        "O": dn.get("O", ""),
        "OU": dn.get("OU", ""),
        "C": dn.get("C", ""),
        "STATUS": EndEntityStatus(ee.status).name,
        "user.USERNAME": ee.username,
        "user.CN": dn.get("CN", ""),
        "user.DN": ee.subject_dn,
        "user.EE.EMAIL": ee.email,
        "user.SAN.EMAIL": san_email,
        "user.TIMECREATED": ee.created_at.strftime("%Y-%m-%d %H:%M") if ee.created_at else "",
        "user.TIMEMODIFIED": ee.updated_at.strftime("%Y-%m-%d %H:%M") if ee.updated_at else "",
        "user.CA.NAME": ee.ca.name if ee.ca_id else "",
    }
    return values


def render(template: str, values: dict[str, str]) -> str:
    """Replace ``${NAME}`` with its value; an unknown variable is left as it was written."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template or "")


@dataclass
class Notification:
    sender: str
    recipients: list[str]
    subject: str
    body: str


def recipients_of(spec: list[str], ee) -> list[str]:
    """USER is the end entity's e-mail address (skipped when it has none); APPROVER is not used here."""
    out: list[str] = []
    for r in spec:
        r = r.strip()
        if r.upper() == USER:
            if ee.email:
                out.append(ee.email)
        elif "@" in r:
            out.append(r)
    return list(dict.fromkeys(out))


def messages_for(ee, status: int, indexes: list[int] | None = None, password: str | None = None,
                 ) -> list[Notification]:
    """The notifications of ``ee``'s profile that ``status`` triggers (optionally only those at ``indexes``)."""
    status_name = EndEntityStatus(status).name
    values = variables(ee, password)
    out: list[Notification] = []
    for i, spec in enumerate(ee.end_entity_profile.notifications or []):
        if indexes is not None and i not in indexes:
            continue
        if status_name not in [str(e).upper() for e in spec.get("events") or []]:
            continue
        to = recipients_of(list(spec.get("recipients") or []), ee)
        if not to:
            continue
        out.append(Notification(
            sender=spec.get("sender") or settings.DEFAULT_FROM_EMAIL, recipients=to,
            subject=render(spec.get("subject", ""), values).replace("\n", " ").strip(),
            body=render(spec.get("body", ""), values),
        ))
    return out


def describe(n: Notification) -> dict[str, Any]:
    """For the audit log: who got what (never the body, which may hold the password)."""
    return {"sender": n.sender, "recipients": n.recipients, "subject": n.subject}
