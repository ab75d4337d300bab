"""The local state backend and the state writer: real files, real processes."""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import AbstractContextManager, suppress
from dataclasses import replace
from pathlib import Path

import pytest

from batchplan.errors import StateError
from batchplan.model import BatchRecord
from batchplan.state import LockInfo, State, loads
from batchplan.state.local import LocalState
from batchplan.state.writer import StateWriter
from tests.helpers import next_version
from tests.helpers import state_record as record

ENDPOINT = "https://api.scale.com/v1"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".batchplan" / "state.json"


# -- read and write ------------------------------------------------------------


def test_atomic_replace_leaves_no_temp_files(path: Path) -> None:
    local = LocalState(path)
    state = State.new(ENDPOINT)
    for index in range(20):
        state = next_version(state, **{f"b{index}": record(f"b{index}")})
        local.write(state)

    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert loads(path.read_text(encoding="utf-8"), str(path)) == state


def test_records_read_back_share_their_repeated_values(path: Path) -> None:
    # A state of 100,000 records must not hold 100,000 copies of its project
    # and timestamps: a large plan's peak memory depends on it.
    records = {
        name: BatchRecord(name, "proj-" + "x" * 20, 20, None, None, "2026-11-29T12:00:00+00:00")
        for name in ("a", "b", "c")
    }
    LocalState(path).write(replace(State.new(ENDPOINT), serial=1, batches=records))

    read = LocalState(path).read()

    assert read is not None and read.batches == records
    first, *others = read.batches.values()
    assert all(other.project is first.project for other in others)
    assert all(other.updated_at is first.updated_at for other in others)
    assert first.project is sys.intern("proj-" + "x" * 20)  # shared with live listings too


def test_a_failed_replace_keeps_the_old_state_and_no_temp_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = next_version(State.new(ENDPOINT), a=record("a"))
    LocalState(path).write(old)

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    refusal = f"^cannot write state {path}: No space left on device; nothing was replaced"
    with pytest.raises(StateError, match=refusal):
        LocalState(path).write(next_version(old, b=record("b")))
    monkeypatch.undo()

    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert LocalState(path).read() == old


# -- the state writer ----------------------------------------------------------


class SlowBackend:
    """A real local backend whose writes take a while, as S3's do."""

    def __init__(self, inner: LocalState, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.location = inner.location
        self.written: list[int] = []

    def read(self) -> State | None:
        return self.inner.read()

    def write(self, state: State, *, force: bool = False) -> None:
        time.sleep(self.delay)
        self.inner.write(state, force=force)
        self.written.append(len(state.batches))

    def lock(self, operation: str, timeout: float) -> AbstractContextManager[LockInfo]:
        return self.inner.lock(operation, timeout)

    def unlock(self, lock_id: str) -> LockInfo:
        return self.inner.unlock(lock_id)


class FailingBackend(SlowBackend):
    """Writes fail from the ``fail_from``-th on."""

    def __init__(self, inner: LocalState, fail_from: int, error: Exception) -> None:
        super().__init__(inner, delay=0.01)
        self.fail_from = fail_from
        self.error = error
        self.attempts = 0

    def write(self, state: State, *, force: bool = False) -> None:
        self.attempts += 1
        if self.attempts >= self.fail_from:
            raise self.error
        super().write(state, force=force)


def test_writer_merges_records_that_arrive_during_a_write(path: Path) -> None:
    slow = SlowBackend(LocalState(path), delay=0.05)
    writer = StateWriter(slow, State.new(ENDPOINT))

    def worker(first: int) -> None:
        for index in range(first, first + 25):
            writer.record(record(f"batch-{index:03d}"))
            time.sleep(0.002)  # records trickle in while writes are in flight

    threads = [threading.Thread(target=worker, args=(first,)) for first in range(0, 100, 25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()

    stored = LocalState(path).read()
    assert stored is not None
    assert len(stored.batches) == 100
    assert stored.serial == writer.writes == len(slow.written)
    assert writer.writes < 20
    assert writer.state == stored
    assert writer.unwritten == 0


def test_writer_flush_waits_for_every_record(path: Path) -> None:
    writer = StateWriter(SlowBackend(LocalState(path), delay=0.02), State.new(ENDPOINT))
    for index in range(10):
        writer.record(record(f"b{index}"))
    writer.flush()
    stored = LocalState(path).read()
    assert stored is not None
    assert len(stored.batches) == 10

    writer.forget("b0")
    writer.close()
    stored = LocalState(path).read()
    assert stored is not None
    assert "b0" not in stored.batches
    assert len(stored.batches) == 9


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (StateError("s3://b/k: another writer changed the state"), "another writer"),
        (OSError(5, "Input/output error"), "cannot write state .*Input/output error"),
    ],
)
def test_a_failing_backend_sets_the_writer_error(
    path: Path, error: Exception, message: str
) -> None:
    failing = FailingBackend(LocalState(path), fail_from=2, error=error)
    writer = StateWriter(failing, State.new(ENDPOINT))
    writer.record(record("first"))
    writer.flush()
    writer.record(record("second"))

    with pytest.raises(StateError, match=message):
        writer.flush()
    assert isinstance(writer.error, StateError)
    assert writer.unwritten == 1
    # Once failed, the writer refuses new records rather than losing them.
    with pytest.raises(StateError, match=message):
        writer.record(record("third"))
    with pytest.raises(StateError, match=message):
        writer.close()
    stored = LocalState(path).read()
    assert stored is not None
    assert sorted(stored.batches) == ["first"]


def test_state_file_keeps_a_normal_mode_not_mkstemps_0600(path: Path) -> None:
    backend = LocalState(path)
    backend.write(replace(State.new("e"), serial=1))
    path.chmod(0o640)
    backend.write(replace(State.new("e"), serial=2, lineage=loads(path.read_text(), "x").lineage))
    assert path.stat().st_mode & 0o777 == 0o640


def test_lock_file_is_never_seen_empty(path: Path) -> None:
    backend = LocalState(path)
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with suppress(FileNotFoundError):
                seen.append(backend.lock_path.read_text())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(200):
            with backend.lock("test", 0):
                pass
    finally:
        stop.set()
        watcher.join()
    assert "" not in seen


def test_writer_refuses_records_after_close(path: Path) -> None:
    writer = StateWriter(LocalState(path), State.new("e"))
    writer.close()
    with pytest.raises(StateError, match="closed"):
        writer.record(BatchRecord(name="late", project="p"))
