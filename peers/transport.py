"""The CA's side of the wire: JSON over HTTPS with mutual TLS, the client certificate, key, trusted server
certificates and cipher suites all from the connector's authentication key binding
(:func:`keybindings.credentials.ssl_context_for`). Nothing here ever listens: the CA always connects out.

Why long-polling HTTPS (``POST lease`` held open by the RA until work arrives, then ``POST answer`` per item)
rather than a WebSocket or an HTTP/2 stream: every hop is plain HTTP/1.1 that nginx, gunicorn's threads and
Python's ``http.client`` already speak; the RA's state lives in its database (a lease row), not in a
connection, so any RA web process can serve any call and a dropped connection loses nothing.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from keybindings.credentials import ssl_context_for
from pki.errors import PkiError

from .models import PeerConnector

API = "/peers/v1"


class PeerError(Exception):
    """A call to the peer failed. ``tls`` tells a TLS failure (certificate, suite) from the rest."""

    def __init__(self, text: str, *, tls: bool = False, status: int | None = None):
        super().__init__(text)
        self.text, self.tls, self.status = text, tls, status


class _Connection(http.client.HTTPSConnection):
    """An HTTPS connection that sends each segment at once. ``http.client`` writes a request's headers and its body
    in two sends; with Nagle's algorithm the body then waits for the peer's (delayed, up to 40 ms) acknowledgement
    of the headers, on every lease and answer call."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PeerClient:
    """One connector's HTTPS client: a keep-alive connection per thread, re-made after any failure."""

    def __init__(self, connector: PeerConnector, timeout: float = 35.0):
        parts = urlsplit(connector.url)
        self.host, self.port = parts.hostname or "", parts.port or 443
        self.prefix = parts.path.rstrip("/") + API
        self.timeout = timeout
        try:
            self.context = ssl_context_for(connector.binding)
        except PkiError as exc:
            raise PeerError(f"Key binding: {exc}", tls=True) from None
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _Connection(self.host, self.port, context=self.context, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float | None = None
             ) -> dict[str, Any]:
        """``method`` ``/peers/v1/<path>`` with a JSON body; the JSON answer, or PeerError."""
        conn = self._connection()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"} if data is not None else {}
        try:
            conn.timeout = timeout or self.timeout
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            conn.request(method, f"{self.prefix}/{path}", body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read(1 << 26)
        except ssl.SSLError as exc:  # handshake refused either way, pins, suites
            self.close()
            raise PeerError(f"TLS: {exc}", tls=True) from None
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            raise PeerError(f"Connection: {exc.__class__.__name__}: {exc}") from None
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {}
        if response.status != 200:
            message = answer.get("error_message") if isinstance(answer, dict) else None
            raise PeerError(f"HTTP {response.status}: {message or raw[:200]!r}", status=response.status)
        if not isinstance(answer, dict):
            raise PeerError("The peer answered no JSON object.")
        return answer
