"""Celery tasks of the token layer: key generation can take minutes on a slow HSM or cloud service."""

from __future__ import annotations

from celery import shared_task


class _TaskActor:
    """The caller was authorized when the task was queued; the task acts in the caller's name."""

    def __init__(self, name: str):
        self.name = name

    def require(self, resource: str) -> None:
        return None


@shared_task(bind=True, name="cryptotokens.tasks.generate_key_pair")
def generate_key_pair_task(self, token_id: int, alias: str, key_spec: str, actor_name: str) -> dict:
    """Generate a key pair; the task state goes STARTED -> GENERATING -> SUCCESS with the key's details."""
    from . import services
    from .models import CryptoToken

    if self.request.id and not self.request.called_directly:
        self.update_state(state="GENERATING", meta={"alias": alias, "key_spec": key_spec})
    token = CryptoToken.objects.get(pk=token_id)
    entry = services.generate_key_pair(_TaskActor(actor_name), token, alias, key_spec)
    return {"alias": entry.alias, "key_algorithm": entry.key_algorithm, "key_spec": entry.key_spec,
            "subject_key_id": entry.subject_key_id}


def queue_key_generation(actor, token, alias: str, key_spec: str):
    """Check the caller's right now, then generate on a worker (in-process when no broker is set)."""
    from .backends import KeySpec
    from .services import backend_for

    actor.require(f"/cryptotoken/generate_keys/{token.pk}")
    backend_for(token).supported(KeySpec.parse(key_spec))  # refuse what cannot work before queuing
    return generate_key_pair_task.delay(token.pk, alias, key_spec, actor.name)
