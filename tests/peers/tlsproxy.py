"""The RA's TLS listener in the two-process tests: Python's ``ssl`` in front of the RA's gunicorn, requiring a
client certificate from the given CA and forwarding the verified certificate exactly as nginx does
(``X-SSL-Client-Verify: SUCCESS``, ``X-SSL-Client-Cert``: the URL-encoded PEM; whatever the client sent in those
headers is dropped). A thread of the test process; ``close()`` stops it."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class _Upstream(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        # As nginx's tcp_nodelay: http.client sends a request's headers and body apart, and with Nagle's algorithm
        # the body would wait for gunicorn's delayed acknowledgement of the headers (up to 40 ms a request).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TlsProxy

    def log_message(self, *args) -> None:  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP and not k.lower().startswith("x-ssl-client")}
        der = self.connection.getpeercert(binary_form=True)
        headers["X-SSL-Client-Verify"] = "SUCCESS" if der else "NONE"
        if der:
            headers["X-SSL-Client-Cert"] = quote(ssl.DER_cert_to_PEM_cert(der))
        # A new upstream connection per request: a kept one that gunicorn closed meanwhile would fail the request.
        upstream = _Upstream("127.0.0.1", self.server.upstream_port, timeout=120)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.send_error(502)
            return
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward


class TlsProxy(ThreadingHTTPServer):
    """``TlsProxy(cert, key, client_ca, upstream_port)``; ``port`` is where it listens."""

    daemon_threads = True

    def __init__(self, cert: Path, key: Path, client_ca: Path, upstream_port: int, port_hint: int = 0):
        super().__init__(("127.0.0.1", port_hint), _Handler)
        self.upstream_port = upstream_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.verify_mode = ssl.CERT_REQUIRED  # nginx: ssl_verify_client on (the peers listener)
        self.context.load_verify_locations(cafile=str(client_ca))
        self.handshake_failures: list[str] = []
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def finish_request(self, request: socket.socket, client_address) -> None:
        try:
            request.settimeout(60)
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the answer's headers and body, at once
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.handshake_failures.append(str(exc))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-answer (a connector stopped during its long poll) is no error here."""

    def close(self) -> None:
        self.shutdown()
        self.server_close()
