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


def cas_using_token(token, alias: str | None) -> list[str]:
    """CAs whose current or rollover key lives on ``token`` (optionally: under ``alias``)."""
    from django.db.models import Q

    from .models import CertificateAuthority

    qs = CertificateAuthority.objects.filter(crypto_token=token)
    if alias is not None:
        qs = qs.filter(Q(key_alias=alias) | Q(rollover_key_alias=alias))
    return [f"CA '{name}'" for name in qs.values_list("name", flat=True)]
