"""The sandbox over HTTP/1.1: a threaded stdlib server, in the background or in the foreground."""

from __future__ import annotations

import atexit
import contextlib
import email.utils
import logging
import re
import signal
import socket
import socketserver
import sqlite3
import sys
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
from batchplan.sandbox.messages import ErrorReply, Reply
from batchplan.sandbox.options import SandboxOptions
from batchplan.sandbox.store import Store

MAX_BODY = 16 * 1024 * 1024
MAX_LINE = 65536
MAX_HEADERS = 100
# A client that announced a body gets this long to send it; an idle
# kept-alive connection may wait for its next request indefinitely.
BODY_TIMEOUT = 30.0

_log = logging.getLogger("batchplan.sandbox")

# A client hanging up mid-request is normal (load tests, Ctrl-C): not worth a line.
_HANG_UPS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class SandboxError(BatchplanError):
    """The sandbox cannot start: its database cannot be opened or its port is taken."""


class _BadBody(Exception):
    """The request body cannot be read as framed; the answer closes the connection."""

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
        """Log what escaped a connection's thread, except a client hanging up."""
        error = sys.exc_info()[1]
        if isinstance(error, _HANG_UPS):
            return
        _log.error("sandbox connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every method goes to ``SandboxApp``.

    The stdlib's server runs the connections; the request line and header
    fields are read here instead of by the stdlib's parser, which builds an
    ``email.message`` per request: measured, that added half again to the
    server's CPU time per read and took 10-17% off its throughput (the
    figures are in docs/sandbox.md).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer
    command = ""
    path = ""
    _fields: dict[str, str]

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, *args: Any) -> None:
        """Quiet: no line per request."""

    def handle_one_request(self) -> None:
        """Read one request's head, then answer it (``_answer`` reads the body)."""
        self.command, self.path = "", ""
        try:
            if self._read_head():
                self._answer()
        except TimeoutError:
            self.close_connection = True

    def _read_head(self) -> bool:
        """Read the request line and header fields; False when there is nothing to answer.

        False also after a malformed head was answered with an error, and when
        the client hung up before the head's end (an incomplete request is
        never run).
        """
        self.close_connection = True
        line = self.rfile.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            # A client may send an empty line between requests; ignore one.
            line = self.rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            self.send_error(414, f"request line over {MAX_LINE} bytes")
            return False
        if not line.endswith(b"\n"):
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not _VERSION.fullmatch(parts[2]):
            self.send_error(400, f"malformed request line: {line[:80]!r}")
            return False
        self.requestline = line.decode("latin-1").rstrip("\r\n")
        self.command, self.path, self.request_version = parts
        if not self.request_version.startswith("HTTP/1."):
            self.send_error(505, f"HTTP version {self.request_version} not supported; use HTTP/1.1")
            return False
        fields = self._read_fields()
        if fields is None:
            return False
        self._fields = fields
        tokens = {token.strip().lower() for token in fields.get("connection", "").split(",")}
        # HTTP/1.0 keep-alive is not worth supporting: answer, then close.
        self.close_connection = "close" in tokens or self.request_version == "HTTP/1.0"
        expect = fields.get("expect")
        if expect is not None:
            if expect.lower() != "100-continue":
                self.send_error(417, f"unsupported Expect: {expect!r}")
                return False
            if self.request_version == "HTTP/1.1":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _read_fields(self) -> dict[str, str] | None:
        """Header fields by lower-case name; None when an error was answered or the client left."""
        fields: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                self.send_error(431, f"header line over {MAX_LINE} bytes")
                return None
            if line in (b"\r\n", b"\n"):
                return fields
            if not line.endswith(b"\n"):
                return None
            if line[:1] in (b" ", b"\t"):
                self.send_error(
                    400, "header line folding (a line starting with a space) is obsolete"
                )
                return None
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                self.send_error(400, f"malformed header line: {line[:80]!r}")
                return None
            key, value = name.lower(), value.strip()
            if key in fields:
                if key == "content-length" and fields[key] != value:
                    self.send_error(400, "two different Content-Length fields")
                    return None
                # Repeated fields are one comma-separated list (RFC 9110).
                value = value if key == "content-length" else f"{fields[key]}, {value}"
            fields[key] = value
        self.send_error(431, f"over {MAX_HEADERS} header fields")
        return None

    def _answer(self) -> None:
        try:
            reply = self._reply()
        except Exception as error:
            # A sandbox bug: logged with its traceback, answered in the API's
            # format; the connection closes, as its state is unknown.
            _log.error("sandbox failed on %s %s", self.command, self.path, exc_info=True)
            self.close_connection = True
            reply = ErrorReply(
                500, f"internal sandbox error: {type(error).__name__}: {error}"
            ).reply()
        self._write(reply)

    def _reply(self) -> Reply:
        try:
            body = self._read_body()
        except _BadBody as error:
            # Where the next request would start is unknown: answer, then close.
            self.close_connection = True
            return ErrorReply(error.status, str(error)).reply()
        return self.server.app.answer(
            self.command, self.path, self._fields.get("authorization"), body
        )

    def _read_body(self) -> bytes:
        encoding = self._fields.get("transfer-encoding")
        length = self._fields.get("content-length")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise _BadBody(501, f"unsupported Transfer-Encoding: {encoding!r}")
            if length is not None:
                # Both framings at once is how requests are smuggled: answer, then close.
                self.close_connection = True
            return self._timed(self._read_chunked)
        if length is None:
            return b""
        if not _DIGITS.fullmatch(length):
            raise _BadBody(400, f"Content-Length is not a number: {length!r}")
        size = int(length)
        if size > MAX_BODY:
            raise _BadBody(413, f"request body over {MAX_BODY} bytes")
        body = self._timed(lambda: self.rfile.read(size))
        if len(body) < size:
            raise _BadBody(400, f"request body ended after {len(body)} of {size} bytes")
        return body

    def _timed(self, read: Callable[[], bytes]) -> bytes:
        self.connection.settimeout(BODY_TIMEOUT)
        try:
            return read()
        except TimeoutError:
            raise _BadBody(408, f"request body not received within {BODY_TIMEOUT:g} s") from None
        finally:
            self.connection.settimeout(self.timeout)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            size_text = line.split(b";")[0].strip()
            if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise _BadBody(400, f"malformed chunked body: bad chunk size line {line[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                return self._end_chunked(chunks)
            total += size
            if total > MAX_BODY:
                raise _BadBody(413, f"request body over {MAX_BODY} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _BadBody(
                    400, f"malformed chunked body: chunk ended after {len(chunk)} of {size} bytes"
                )
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BadBody(400, "malformed chunked body: chunk data not followed by CRLF")
            chunks.append(chunk)

    def _end_chunked(self, chunks: list[bytes]) -> bytes:
        """Skip the trailer section, which ends with an empty line."""
        for _ in range(100):
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _BadBody(400, "malformed chunked body: trailer section not terminated")
            if line in (b"\r\n", b"\n"):
                return b"".join(chunks)
        raise _BadBody(431, "too many trailer fields")

    def _write(self, reply: Reply) -> None:
        payload = reply.encode()
        lines = [
            f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}",
            "Server: batchplan-sandbox",
            f"Date: {_http_date()}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in reply.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # An answer to HEAD has the headers GET would get and no body. One
        # write per answer: with Nagle off, two writes would be two packets.
        self.wfile.write(head if self.command == "HEAD" else head + payload)

    def send_error(
        self, code: int, message: str | None = None, _explain: str | None = None
    ) -> None:
        """Errors in the request's head, in the API's JSON format; then the connection closes."""
        self.close_connection = True
        self._write(ErrorReply(int(code), message or HTTPStatus(code).phrase).reply())


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date field's value, formatted once a second (formatting costs a few µs)."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]


_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a field name: no spaces, no colon
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


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
                options.latency_ms,
                options.fault_rate,
                options.rate_limit,
                options.seed,
                options.burst,
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

    def on_signal(number: int, _frame: FrameType | None) -> None:
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
