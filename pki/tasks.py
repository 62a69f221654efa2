"""Celery tasks of the CA core. Queued with ``transaction.on_commit``; without a broker they run in-process."""

from __future__ import annotations

import logging

from celery import shared_task

from .auth.access import Actor

logger = logging.getLogger("pki.tasks")


@shared_task(bind=True, name="pki.tasks.create_crl")
def create_crl_task(self, ca_id: int, delta: bool = False, actor_name: str = "system") -> dict:
    """Build a CRL, reporting progress (entries written so far) through the task state."""
    from .crl import create_crl
    from .models import Certificate, CertificateAuthority

    ca = CertificateAuthority.objects.get(pk=ca_id)
    total = Certificate.objects.filter(ca=ca).revoked().count()

    def progress(done: int) -> None:
        if not self.request.called_directly and self.request.id:
            self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    # The caller was authorized before queuing; the task acts with the server's rights in its name.
    crl = create_crl(Actor.system_actor(actor_name), ca, delta=delta, progress=progress)
    return {"crl_id": crl.pk, "crl_number": crl.crl_number, "entries": crl.entries, "ca": ca.name}


@shared_task(name="pki.tasks.regenerate_due_crls")
def regenerate_due_crls() -> list[str]:
    """Beat task: activate due CA rollovers, then renew every CRL that is about to expire."""
    from .crl import create_crl, due_crls
    from .errors import PkiError
    from .models import CertificateAuthority
    from .services.cas import apply_due_rollover

    for ca in CertificateAuthority.objects.exclude(rollover_at=None):
        apply_due_rollover(ca)
    done: list[str] = []
    actor = Actor.system_actor("crl-updater")
    for ca, delta in due_crls():
        try:
            crl = create_crl(actor, ca, delta=delta)
            done.append(f"{ca.name}#{crl.crl_number}{'Δ' if delta else ''}")
        except PkiError as exc:  # e.g. an offline token: the next run tries again
            logger.warning("CRL for %s not renewed: %s", ca.name, exc.message)
    return done
