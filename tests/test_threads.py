"""Threads batchplan starts leave the signals it handles to the main thread."""

from __future__ import annotations

import _thread
import signal
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from batchplan import threads

# The masks are read from Linux's /proc (CI runs Linux); elsewhere these
# tests say they were not run, and why.
LINUX_PROC = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads thread signal masks from Linux's /proc"
)


def blocked(native_id: int | None) -> set[signal.Signals]:
    """The signals a thread of this process blocks, read from /proc."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text(encoding="utf-8")
    (mask,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
    return {sig for sig in signal.Signals if int(mask, 16) & (1 << (sig - 1))}


@LINUX_PROC
def test_a_pool_thread_blocks_the_handled_signals_and_the_caller_keeps_its_mask() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with threads.Pool(max_workers=2) as pool:
        # Read by each worker itself, while it runs.
        masks = list(pool.map(lambda _: blocked(threading.get_native_id()), range(8)))
    assert len(masks) == 8
    for mask in masks:
        assert mask >= threads.HANDLED
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


@LINUX_PROC
def test_a_started_thread_blocks_the_handled_signals() -> None:
    ready, done = threading.Event(), threading.Event()
    thread = threads.start("test", lambda: (ready.set(), done.wait(10)))
    try:
        assert ready.wait(10)
        assert blocked(thread.native_id) >= threads.HANDLED
    finally:
        done.set()
        thread.join(10)


@LINUX_PROC
def test_a_plain_thread_would_take_them() -> None:
    # The control: without threads.start a thread blocks nothing.
    ready, done = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: (ready.set(), done.wait(10)))
    thread.start()
    try:
        assert ready.wait(10)
        assert not threads.HANDLED & blocked(thread.native_id)
    finally:
        done.set()
        thread.join(10)


def test_a_ctrl_c_that_comes_as_the_main_thread_starts_waiting_is_handled_within_a_slice() -> None:
    # Found: Ctrl-C sometimes left plan or status waiting until the first
    # answer came (up to the read timeout). A signal that arrives just as the
    # main thread starts waiting for a lock does not interrupt the wait.
    # interrupt_main() is that case: the handler is due, the wait goes on.
    future: Future[str] = Future()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt = threading.Timer(0.2, _thread.interrupt_main)
    resolve = threading.Timer(10, future.set_result, ("answer",))
    interrupt.start()
    resolve.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            threads.result(future)
        assert not future.done()  # handled while waiting, not once the answer came
    finally:
        resolve.cancel()
        interrupt.cancel()
        signal.signal(signal.SIGINT, previous)


def test_result_gives_the_value_or_the_error_of_the_future() -> None:
    with threads.Pool(max_workers=1) as pool:
        assert threads.result(pool.submit(lambda: 42)) == 42
        with pytest.raises(ZeroDivisionError):
            threads.result(pool.submit(lambda: 1 // 0))
        assert list(pool.map(lambda n: n * 2, [1, 2, 3])) == [2, 4, 6]
