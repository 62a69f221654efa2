"""Peer connectors on the CA: add, edit, remove, list, under the access rules and in the audit log.

The connector process (:mod:`peers.connector`) writes each connector's state; these functions manage the
configuration. A connector names the authentication key binding it connects with, so that binding cannot be
deleted while the connector exists (:func:`connectors_using`, registered with the key binding app).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from keybindings.choices import BindingType
from keybindings.models import InternalKeyBinding
from pki import audit
from pki.auth.access import Actor
from pki.errors import ConflictError, NotFoundError, ValidationError

from . import push
from .choices import MODIFY_RULE, VIEW_RULE
from .models import IncomingPeer, PeerConnector

logger = logging.getLogger("peers")

NAME_MAX = 255
EDITABLE = ("name", "url", "binding", "enabled")


def connectors_using(binding: InternalKeyBinding) -> list[str]:
    """Peer connectors that connect with ``binding`` (asked before the binding is deleted)."""
    return [f"peer connector '{name}'" for name in
            PeerConnector.objects.filter(binding=binding).values_list("name", flat=True)]


def _record(event: str, actor: Actor, connector: PeerConnector, **details: Any) -> None:
    audit.record(event, actor.name, object_type="peerconnector", object_id=connector.pk,
                 details={"name": connector.name, **details}, in_transaction=True)


def _clean_name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > NAME_MAX or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ValidationError("A connector name is 1 to 255 printable characters.", field="name")
    return name


def _clean_url(value: Any) -> str:
    url = str(value or "").strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username \
            or len(url) > 1024 or any(ord(c) < 33 for c in url):
        raise ValidationError("The peer URL is https://host[:port][/path] (mTLS; no query, no credentials).",
                              field="url")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError("The peer URL has a bad port.", field="url") from None
    return url.rstrip("/")


def _clean_binding(value: Any) -> InternalKeyBinding:
    if isinstance(value, InternalKeyBinding):
        binding = value
    else:
        text = str(value or "").strip()
        binding = InternalKeyBinding.objects.filter(name=text).first() if text and "\x00" not in text else None
        if binding is None:
            raise ValidationError(f"No key binding '{text[:64]}'.", field="binding")
    if binding.binding_type != BindingType.AUTHENTICATION:
        raise ValidationError(f"Key binding '{binding.name}' is not an authentication key binding (remote "
                              "authenticator).", field="binding")
    return binding


def list_connectors(actor: Actor):
    """The outgoing connectors, with their binding."""
    actor.require(VIEW_RULE)
    return PeerConnector.objects.select_related("binding", "push_state")


def list_incoming(actor: Actor):
    """The CA connectors that connected in to this node (RA/VA)."""
    actor.require(VIEW_RULE)
    return IncomingPeer.objects.all()


def get_connector(actor: Actor, ref: str | int) -> PeerConnector:
    """A connector by name or id (NotFoundError otherwise)."""
    actor.require(VIEW_RULE)
    text = str(ref).strip()
    qs = PeerConnector.objects.select_related("binding")
    found = qs.filter(name=text).first() if "\x00" not in text and len(text) <= NAME_MAX else None
    if found is None and text.isascii() and text.isdigit() and len(text) < 19:
        found = qs.filter(pk=int(text)).first()
    if found is None:
        raise NotFoundError(f"Peer connector '{text[:64]}' does not exist.")
    return found


def add_connector(actor: Actor, *, name: str, url: str, binding: Any, enabled: bool = True) -> PeerConnector:
    """A new outgoing connector (the connector process picks it up on its next look)."""
    actor.require(MODIFY_RULE)
    connector = PeerConnector(name=_clean_name(name), url=_clean_url(url), binding=_clean_binding(binding),
                              enabled=bool(enabled))
    try:
        with transaction.atomic():
            connector.save()
            _record("PEER_CONNECTOR_ADD", actor, connector, url=connector.url, binding=connector.binding.name,
                    enabled=connector.enabled)
    except IntegrityError:
        raise ConflictError(f"A peer connector named '{connector.name}' exists already.", field="name") from None
    logger.info("Peer connector %s added by %s", connector.name, actor.name)
    return connector


def edit_connector(actor: Actor, connector: PeerConnector, **changes: Any) -> PeerConnector:
    """Change name, URL, binding or enabled; audited with old and new values."""
    actor.require(MODIFY_RULE)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"Unknown connector field(s): {', '.join(sorted(unknown))}.")
    cleaners = {"name": _clean_name, "url": _clean_url, "binding": _clean_binding, "enabled": bool}
    diff: dict[str, list[Any]] = {}
    for field, value in changes.items():
        new = cleaners[field](value)
        old = getattr(connector, field)
        if new != old:
            show = (lambda v: v.name) if field == "binding" else (lambda v: v)
            diff[field] = [show(old), show(new)]
            setattr(connector, field, new)
    if not diff:
        return connector
    try:
        with transaction.atomic():
            connector.save()
            _record("PEER_CONNECTOR_EDIT", actor, connector, changes=diff)
    except IntegrityError:
        raise ConflictError(f"A peer connector named '{connector.name}' exists already.", field="name") from None
    return connector


def remove_connector(actor: Actor, connector: PeerConnector) -> None:
    """Remove a connector (its carried-request records go with it)."""
    actor.require(MODIFY_RULE)
    with transaction.atomic():
        _record("PEER_CONNECTOR_REMOVE", actor, connector, url=connector.url, binding=connector.binding.name)
        connector.delete()


def connector_summary(connector: PeerConnector) -> dict[str, Any]:
    """What the UI, REST and the CLI show of a connector."""
    return {
        "id": connector.pk, "name": connector.name, "url": connector.url, "binding": connector.binding.name,
        "enabled": connector.enabled, "state": connector.state, "remote_role": connector.remote_role,
        "last_contact": connector.last_contact.isoformat() if connector.last_contact else None,
        "requests_carried": connector.requests_carried, "failures": connector.failures,
        "last_error": connector.last_error, "last_tls_error": connector.last_tls_error,
        "last_tls_error_at": connector.last_tls_error_at.isoformat() if connector.last_tls_error_at else None,
        # To a VA/RA: the status push (last resynchronisation, last push, what it sent).
        "status_push": push.status_summary(connector),
    }


def incoming_summary(peer: IncomingPeer) -> dict[str, Any]:
    """What the UI, REST and the CLI show of an incoming connection."""
    return {"identity": peer.identity, "subject": peer.subject, "issuer": peer.issuer, "serial": peer.serial,
            "fingerprint": peer.fingerprint, "first_seen": peer.first_seen.isoformat(),
            "last_contact": peer.last_contact.isoformat(), "requests_leased": peer.requests_leased,
            "answers": peer.answers}
