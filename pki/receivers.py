"""Signal receivers: events of lower layers written to the audit log."""

from __future__ import annotations

from typing import Any

from . import audit


def audit_crypto_token_event(sender: Any, *, event_type: str, actor: str, token, outcome: str,
                             details: dict[str, Any], **kwargs: Any) -> None:
    audit.record(
        event_type, actor, object_type="cryptotoken", object_id=getattr(token, "pk", "") or "",
        outcome=outcome, details={"token": getattr(token, "name", ""), **details},
    )
