"""The sandbox over HTTP/1.1: a threaded stdlib server, in the background or in the foreground."""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import socket
import socketserver
import sqlite3
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

from batchplan import threads
from batchplan.errors import BatchplanError
from batchplan.sandbox.app import SandboxApp
from batchplan.sandbox.faults import Faults
from batchplan.sandbox.handler import Deadlines, Handler, encode
from batchplan.sandbox.messages import ErrorReply
from batchplan.sandbox.options import SandboxOptions
from batchplan.sandbox.store import Store

_log = logging.getLogger("batchplan.sandbox")

# A client hanging up mid-request is normal (load tests, Ctrl-C): not worth a line.
_HANG_UPS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)

# How long a new connection waits for a free slot when every connection is
# being answered (none waits for a request, so none can be closed for it).
SLOT_WAIT = 1.0


class SandboxError(BatchplanError):
    """The sandbox cannot start: its database cannot be opened or its port is taken."""


class ConnectionServer(ThreadingHTTPServer):
    """The stdlib's threaded server with at most ``limit`` connections, a thread each.

    A connection arriving when all are taken closes the one that has waited
    longest for a request (a slow head first): a client trickling bytes, or
    an idle kept-alive one, yields its thread to a new client, so flooding
    the server with slow connections never locks a normal request out, and
    the server is free again as soon as the flood stops.
    """

    daemon_threads = True
    # Benchmarks open dozens of connections at once; the default backlog of 5
    # drops SYNs and costs a one-second retransmit each.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], app: SandboxApp, limit: int, deadlines: Deadlines
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.limit = limit
        self.deadlines = deadlines
        self._slots = threading.BoundedSemaphore(limit)
        self._handlers: set[Handler] = set()
        self._handlers_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's FQDN: slow, and unused here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own, once a slot is free."""
        if not self._slots.acquire(blocking=False):
            self._close_longest_waiting()
            if not self._slots.acquire(timeout=SLOT_WAIT):
                self._turn_away(request)
                return
        try:
            threads.start("batchplan-sandbox-connection", self._serve, request, client_address)
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _close_longest_waiting(self) -> None:
        with self._handlers_lock:
            waiting = [h for h in self._handlers if h.waiting_since is not None]
            if not waiting:
                return
            chosen = min(waiting, key=lambda h: (not h.mid_request, h.waiting_since or 0.0))
            chosen.waiting_since, chosen.evicted = None, True
        with contextlib.suppress(OSError):
            chosen.connection.shutdown(socket.SHUT_RDWR)

    def _turn_away(self, request: socket.socket) -> None:
        """Every connection is busy answering: say so at once rather than queue unboundedly."""
        message = f"the sandbox is answering {self.limit} connections already; retry"
        answer = encode(ErrorReply(503, message, (("Retry-After", "1"),)).reply(), close=True)
        with contextlib.suppress(OSError):
            request.settimeout(0.1)
            request.sendall(answer)
        self.shutdown_request(request)

    def answering(self, handler: Handler) -> bool:
        """Mark a connection as answering (never closed for room); False if already chosen."""
        with self._handlers_lock:
            if handler.evicted:
                return False
            handler.waiting_since = None
            return True

    def track(self, handler: Handler, alive: bool) -> None:
        """Record a connection's handler while it lives (to end or evict it)."""
        with self._handlers_lock:
            (self._handlers.add if alive else self._handlers.discard)(handler)

    def close_connections(self) -> None:
        """End kept-alive connections, whose threads would otherwise wait for a next request."""
        with self._handlers_lock:
            connections = [handler.connection for handler in self._handlers]
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log what escaped a connection's thread, except a client hanging up."""
        error = sys.exc_info()[1]
        if isinstance(error, _HANG_UPS):
            return
        _log.error("sandbox connection from %s failed", client_address, exc_info=True)


class SandboxServer:
    """A sandbox on a loopback port, served from a daemon thread.

    ``start()`` returns once the port is listening; ``stop()`` is idempotent.
    """

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self._store: Store | None = None
        self._httpd: ConnectionServer | None = None
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
                httpd = ConnectionServer(
                    (options.host, options.port),
                    SandboxApp(store, faults, options.api_key),
                    options.max_connections,
                    Deadlines(head=options.head_timeout, idle=options.idle_timeout),
                )
            except OSError as error:
                store.close()
                reason = error.strerror or str(error)
                raise SandboxError(
                    f"cannot listen on {options.host}:{options.port}: {reason}"
                ) from error
            # Embedded in a batchplan command, its threads must leave Ctrl-C
            # to the command's main thread.
            name = f"batchplan-sandbox-{httpd.server_port}"
            thread = threads.start(name, httpd.serve_forever, poll_interval=0.05)
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


class ServeReport(Protocol):
    """What ``serve`` tells the person who started it (worded by the command's view)."""

    def listening(self, url: str, instance_id: str) -> None:
        """The sandbox answers at ``url`` from now on."""

    def cannot_start(self, problem: str) -> None:
        """The sandbox could not start: its port is taken, its database unusable, ..."""


def serve(options: SandboxOptions, report: ServeReport) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; 0 on a clean stop, 1 if it cannot start.

    Reports once: ``listening`` when it answers, or ``cannot_start``.
    """
    server = SandboxServer(options)
    try:
        server.start()
    except SandboxError as error:
        report.cannot_start(str(error))
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
        report.listening(server.url, server.instance_id)
        # A flag polled by sleep, not an Event: setting an Event from a signal
        # handler can deadlock on the Event's own lock.
        while not stopping:
            time.sleep(0.05)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
