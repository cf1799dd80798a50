"""The HTTP side of the fake model API: the threaded loopback server and its request handler.

Only HTTP lives here: reading a request body (chunked, gzip), writing a JSON answer or a chunked
event stream, noticing that the client hung up. What to answer is the ``Backend``'s
(``server.FakeModelAPI``), which the server is handed; keeping the two apart lets the answering
code read as scenario logic, and lets this module know nothing of scenarios or protocols.
"""

from __future__ import annotations

import contextlib
import json
import socket
import zlib
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from pytest_oompa.offline.fake_api.log import RequestRecord

#: The largest request body read (a CLI's whole conversation fits many times over).
MAX_BODY = 64 << 20


class Backend(Protocol):
    """What the HTTP side asks of the fake model API."""

    def _track(self, conn: socket.socket, add: bool) -> None:
        """A connection opened (``add``) or closed, so that stopping can close them all."""
        ...

    def _log_simple(self, handler: Handler, method: str) -> RequestRecord:
        """Log a HEAD or GET request; returns its record, for the answer to complete."""
        ...

    def _handle_post(self, handler: Handler) -> None:
        """Answer a POST."""
        ...


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: Backend

    def process_request(self, request: Any, client_address: Any) -> None:
        self.api._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.api._track(request, False)
        super().shutdown_request(request)


class ClientGone(Exception):
    """The client closed the connection while we were answering."""


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection is closed after this
    server_version = "oompa-fake-api/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- entry points --------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.server.api._log_simple(self, "HEAD")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        record = self.server.api._log_simple(self, "GET")
        if self.path.split("?")[0] in ("/", "/health"):
            self.send_json(200, {"ok": True, "fake": "oompa"})
            return
        record.status, record.kind = 404, "unmatched"
        record.note = f"oompa fake API: nothing serves GET {self.path}"
        self.send_json(404, {"error": {"message": record.note, "type": "not_found_error"}})

    def do_POST(self) -> None:
        self.started = False
        try:
            self.server.api._handle_post(self)
        except ClientGone:
            self.close_connection = True
        except Exception as exc:
            # A bug of ours must not look like a network failure to the CLI: a 500 that says
            # what broke (unless the answer had already begun).
            self.close_connection = True
            if not self.started:
                message = f"oompa fake API: internal error: {type(exc).__name__}: {exc}"
                with contextlib.suppress(ClientGone):
                    self.send_json(500, {"error": {"message": message, "type": "api_error"}})
            raise

    # -- reading -------------------------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request body, decompressed; raises ValueError (or zlib.error) when it cannot
        be read."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ValueError("request body too large")
            raw = bytes(out)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValueError("request body too large")
            raw = self.rfile.read(length) if length else b""
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            raw = zlib.decompress(raw, 47)  # gzip or zlib header
        elif encoding and encoding != "identity":
            raise ValueError(f"unsupported Content-Encoding {encoding!r}")
        return raw

    # -- writing -------------------------------------------------------------------------------

    def send_json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self.send_raw(status, "application/json", json.dumps(data).encode(), headers)

    def send_raw(
        self,
        status: int,
        content_type: str,
        payload: bytes,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", f"req_oompa_{id(payload):x}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._write(payload)

    def start_stream(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        self.started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_oompa_stream")
        # Should the stream break, a CLI that retries anyway (opencode) does so at once.
        self.send_header("retry-after-ms", "0")
        self.end_headers()

    def send_chunk(self, data: bytes) -> None:
        if data:
            self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def end_stream(self) -> None:
        self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            raise ClientGone from exc
