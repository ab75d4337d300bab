"""Threads that leave Ctrl-C to the main thread.

Python runs signal handlers in the main thread only, and only when that
thread runs Python code. The kernel hands a process's SIGINT or SIGTERM to
any thread that does not block it: when it picks a worker while the main
thread waits for a result, the handler does not run until that result comes
(up to the read timeout), and Ctrl-C looks ignored. Every thread batchplan
starts therefore blocks the signals it handles, so they can only land on
the main thread. A new thread inherits the signal mask of the thread that
starts it, so the mask is set around the start: there is no moment at which
the new thread could take one.

Even on the main thread a signal can come in the instant before it starts
to wait for a lock, too late to interrupt the wait: the main thread
therefore waits for a result in short slices (:func:`result`), running the
handlers between them.

May import: nothing from batchplan.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, ParamSpec, TypeVar

#: How long the main thread waits at most before it looks at signals again.
WAKE_SECONDS: Final = 0.25

#: The signals batchplan handles (Ctrl-C, a stop from a CI runner or a
#: closed terminal), and so must reach the main thread.
HANDLED: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})

P = ParamSpec("P")
T = TypeVar("T")


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        # A signal that came meanwhile is delivered now, to this thread.
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def result(future: Future[T]) -> T:
    """``future.result()``, waiting in slices so a Ctrl-C is handled within one."""
    while True:
        try:
            return future.result(timeout=WAKE_SECONDS)
        except TimeoutError:
            continue


def start(name: str, target: Callable[..., object], *args: Any, **kwargs: Any) -> threading.Thread:
    """Start ``target(*args, **kwargs)`` in a daemon thread blocking the handled signals.

    Daemon: a thread still waiting at the end (for an answer, a tick) never
    keeps the process alive.
    """
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, name=name, daemon=True)
    with _signals_blocked():
        thread.start()
    return thread


class Pool(ThreadPoolExecutor):
    """A thread pool whose threads block the handled signals.

    The pool starts its threads inside ``submit`` (``map`` submits too), in
    the thread that submits, so the mask is set around it.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with _signals_blocked():
            return super().submit(fn, *args, **kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """Like ``ThreadPoolExecutor.map``, each result waited for with :func:`result`."""
        if timeout is not None:
            return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)
        futures = [self.submit(fn, *args) for args in zip(*iterables, strict=False)]

        def results() -> Iterator[T]:
            try:
                for future in futures:
                    yield result(future)
            finally:
                for future in futures:
                    future.cancel()

        return results()
