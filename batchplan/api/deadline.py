"""A deadline for a whole answer, its head included.

A socket's timeout bounds each read, not the answer: an endpoint that sends
its status line and headers a byte at a time, each just inside the timeout,
would hold a call open for as long as it likes (``http.client`` accepts 100
header lines of 64 KiB each). The client's connections therefore register
their socket with one watchdog thread while the answer is read; when the
call's deadline passes first, the watchdog shuts the socket down, the read
under way fails at once, and the client reports the attempt as timed out.

The deadline is handed from the client to the connection through a context
variable, set by the thread that sends the request for as long as it reads
the answer (:func:`answer_deadline`).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from batchplan import threads


class _Watch:
    """One answer being read: its deadline and, once the request is sent, its socket."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.expired = False


class _Watchdog:
    """One daemon thread that shuts down the socket of every answer past its deadline."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, watch: _Watch, sock: socket.socket) -> None:
        with self._lock:
            watch.sock = sock
            heapq.heappush(self._queue, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threads.start("batchplan-answer-deadline", self._run)
            # Wake the thread only for a deadline before the one it waits for:
            # deadlines mostly come in order, and a wake per call costs CPU.
            if self._queue[0][2] is watch:
                self._lock.notify()

    def release(self, watch: _Watch) -> None:
        """The answer is read (or given up): its socket is no longer this watchdog's."""
        with self._lock:
            watch.sock = None

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._queue and self._queue[0][2].sock is None:
                    heapq.heappop(self._queue)
                if not self._queue:
                    self._lock.wait()
                    continue
                deadline, _, watch = self._queue[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                heapq.heappop(self._queue)
                if watch.sock is not None:
                    watch.expired = True
                    # Under the lock: release() cannot hand the socket back to
                    # the pool (for the next call) while it is being shut down.
                    with contextlib.suppress(OSError):
                        watch.sock.shutdown(socket.SHUT_RDWR)
                    watch.sock = None


_WATCHDOG = _Watchdog()
_CURRENT: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar(
    "batchplan_answer_deadline", default=None
)


@contextlib.contextmanager
def answer_deadline(deadline: float) -> Iterator[_Watch]:
    """Within this block, the answer to the request this thread sends ends by ``deadline``.

    ``deadline`` is on ``time.monotonic()``'s clock. The watch's ``expired``
    says afterwards whether the watchdog cut the answer off.
    """
    watch = _Watch(deadline)
    token = _CURRENT.set(watch)
    try:
        yield watch
    finally:
        _CURRENT.reset(token)
        _WATCHDOG.release(watch)


class _Watched:
    """Connection mixin: the answer's head is read under the current deadline."""

    sock: socket.socket | None

    def getresponse(self) -> Any:
        watch = _CURRENT.get()
        if watch is not None and self.sock is not None:
            _WATCHDOG.watch(watch, self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """``requests``' adapter whose connections honour :func:`answer_deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager
