"""The sandbox over HTTP/1.1: a threaded stdlib server, in the background or in the foreground."""

from __future__ import annotations

import atexit
import contextlib
import signal
import socket
import socketserver
import sqlite3
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from batchplan.errors import BatchplanError
from batchplan.sandbox.app import SandboxApp
from batchplan.sandbox.faults import Faults
from batchplan.sandbox.messages import ApiError, Reply
from batchplan.sandbox.options import SandboxOptions
from batchplan.sandbox.store import Store

MAX_BODY = 16 * 1024 * 1024
MAX_LINE = 65536
MAX_HEADERS = 100


class SandboxError(BatchplanError):
    """The sandbox cannot start: its database cannot be opened or its port is taken."""


class _BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open dozens of connections at once; the default backlog of 5
    # drops SYNs and costs a one-second retransmit each.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's FQDN: slow, and unused here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def close_connections(self) -> None:
        """End kept-alive connections, whose threads would otherwise wait for a next request."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is normal under load tests; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""

    def handle_one_request(self) -> None:
        """Read one request and answer it.

        Replaces the stdlib's parsing, which builds an ``email.message`` per
        request and costs more than the whole answer here.
        """
        try:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                self.close_connection = True
                return
            if len(line) > MAX_LINE:
                self.send_error(414)
                return
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.send_error(400, f"malformed request line: {line[:80]!r}")
                return
            self.command, self.path, self.request_version = parts
            headers = self._read_headers()
            if headers is None:
                return
            connection = headers.get("connection", "").lower()
            # HTTP/1.0 keep-alive is not worth supporting: answer, then close.
            self.close_connection = (
                connection == "close" or self.request_version == "HTTP/1.0" or parts[0] == "HEAD"
            )
            if headers.get("expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._respond(headers)
        except TimeoutError:
            self.close_connection = True

    def _read_headers(self) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or len(line) > MAX_LINE:
                self.send_error(400, "malformed header line")
                return None
            headers[name.strip().lower()] = value.strip()
        self.send_error(431)
        return None

    def _respond(self, headers: dict[str, str]) -> None:
        try:
            body = self._read_body(headers)
        except _BadBody as error:
            self.close_connection = True
            self._write(ApiError(error.status, str(error)).reply())
            return
        reply = self.server.app.answer(self.command, self.path, headers.get("authorization"), body)
        self._write(reply)

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = headers.get("content-length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadBody(400, f"Content-Length is not a number: {length!r}") from None
        if size < 0:
            raise _BadBody(400, "Content-Length is negative")
        if size > MAX_BODY:
            raise _BadBody(413, f"request body over {MAX_BODY} bytes")
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadBody(400, "malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(65537).strip():
                    pass  # trailers, ignored
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise _BadBody(413, f"request body over {MAX_BODY} bytes")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _write(self, reply: Reply) -> None:
        payload = reply.encode()
        lines = [
            f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        # One write per answer: with Nagle off, two writes would be two packets.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests get the API's JSON error body too, then the connection closes."""
        self.close_connection = True
        self._write(ApiError(code, message or HTTPStatus(code).phrase).reply())


class SandboxServer:
    """A sandbox on a loopback port, served from a daemon thread.

    ``start()`` returns once the port is listening; ``stop()`` is idempotent.
    """

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self._store: Store | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    def start(self) -> None:
        """Open the database, bind the port and serve in the background."""
        options = self.options
        with self._lifecycle:
            if self._httpd is not None:
                raise RuntimeError("the sandbox is already running")
            try:
                store = Store(options.db_path, strict_projects=options.strict_projects)
            except (sqlite3.Error, OSError) as error:
                raise SandboxError(
                    f"cannot open the sandbox database {options.db_path}: {error}"
                ) from error
            faults = Faults(
                options.latency_ms, options.fault_rate, options.rate_limit, options.seed
            )
            try:
                httpd = _HTTPServer(
                    (options.host, options.port), SandboxApp(store, faults, options.api_key)
                )
            except OSError as error:
                store.close()
                reason = error.strerror or str(error)
                raise SandboxError(
                    f"cannot listen on {options.host}:{options.port}: {reason}"
                ) from error
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"batchplan-sandbox-{httpd.server_port}",
                daemon=True,
            )
            thread.start()
            self._store, self._httpd, self._thread = store, httpd, thread

    def stop(self) -> None:
        """Stop serving, end open connections and close the database."""
        with self._lifecycle:
            httpd, thread, self._httpd, self._thread = self._httpd, self._thread, None, None
            if httpd is None:
                return
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()
            if thread is not None:
                thread.join()
            if self._store is not None:
                self._store.close()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._httpd is not None

    @property
    def url(self) -> str:
        """The API base URL, ``/v1`` included, e.g. ``http://127.0.0.1:54321/v1``."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running")
        host = self.options.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._httpd.server_port}/v1"

    @property
    def instance_id(self) -> str:
        """A uuid4 hex kept in the database: the same across restarts on one file."""
        return self.store.instance_id

    @property
    def store(self) -> Store:
        """The SQLite store (for tests: ``store.seed(...)``)."""
        if self._store is None:
            raise RuntimeError("the sandbox has not been started")
        return self._store


def start_sandbox(db_path: str, **options: Any) -> SandboxServer:
    """Start a sandbox on ``db_path`` in this process; it stops when the process exits."""
    server = SandboxServer(SandboxOptions(db_path=db_path, **options))
    server.start()
    atexit.register(server.stop)
    return server


def serve(options: SandboxOptions, echo: Callable[[str], None]) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; 0 on a clean stop, 1 if it cannot start.

    Prints exactly one line, ``Sandbox listening on URL (instance ID)``, once listening.
    """
    server = SandboxServer(options)
    try:
        server.start()
    except SandboxError as error:
        echo(f"Error: {error}")
        return 1
    stopping: list[int] = []

    def on_signal(number: int, frame: FrameType | None) -> None:
        stopping.append(number)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        if in_main_thread
        else {}
    )
    try:
        echo(f"Sandbox listening on {server.url} (instance {server.instance_id})")
        # A flag polled by sleep, not an Event: setting an Event from a signal
        # handler can deadlock on the Event's own lock.
        while not stopping:
            time.sleep(0.05)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
