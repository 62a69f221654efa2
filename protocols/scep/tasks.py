"""Celery tasks of SCEP: purging the replay state (:mod:`protocols.scep.transactions`) on a beat schedule."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger("protocols.scep")


@shared_task(name="protocols.scep.tasks.purge_transactions")
def purge_transactions() -> dict:
    """Delete senderNonces past the replay window and transactions past their retention."""
    from .transactions import purge

    nonces, transactions = purge()
    if nonces or transactions:
        logger.info("SCEP: purged %d nonces and %d transactions", nonces, transactions)
    return {"nonces": nonces, "transactions": transactions}
