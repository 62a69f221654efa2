"""Django's PostgreSQL backend, with a connection health check that costs no round trip while nothing happened.

``CONN_HEALTH_CHECKS`` (pki/settings.py) has Django check a kept connection before each request's first query,
so a session that ended between requests (a PostgreSQL restart, ``pg_terminate_backend``, a failover) is replaced
instead of failing that request. Django's check is a ``SELECT 1``: a round trip on every request, for every
kind of client. On an RA node a carried enrollment is three requests (the device's, the connector's lease and its
answer post), and each check's round trip lay on the device's wait.

A server that ends a session tells the client: it sends the reason (``FATAL: terminating connection ...``) and
closes the socket, so the kept connection's socket turns readable. An idle session whose socket has nothing to
read has been told nothing since its last statement and is used as it is; one with something to read (that
notice, a notification, a parameter change) is checked with Django's ``SELECT 1`` as before. What this cannot see
is a server that vanished without a word (its host lost, a network cut): Django's check would then hang on its
``SELECT 1`` just as the request's own first statement does, until TCP gives up, and
:class:`pki.dbhealth.DatabaseUnavailableMiddleware` answers that request.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    """PostgreSQL with the health check above (see the module doc)."""

    def is_usable(self) -> bool:
        raw = self.connection
        if raw is None or raw.closed:
            return False
        try:
            readable, _, _ = select.select([raw], [], [], 0)
        except (OSError, ValueError):  # the socket is gone already
            return False
        return True if not readable else super().is_usable()
