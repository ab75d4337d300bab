"""The local state backend and the state writer: real files, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import AbstractContextManager, suppress
from dataclasses import replace
from pathlib import Path

import pytest

from batchplan.errors import LockError, StateError
from batchplan.model import BatchRecord
from batchplan.state import LockInfo, State, dumps, loads
from batchplan.state.local import LocalState
from batchplan.state.writer import StateWriter

ENDPOINT = "https://api.scale.com/v1"


def record(name: str, priority: int | None = 20) -> BatchRecord:
    return BatchRecord(
        name=name,
        project="kitten_labeling",
        priority=priority,
        calibration_batch=False,
        self_label_batch=None,
        updated_at="2026-01-02T03:04:05+00:00",
    )


def next_version(state: State, **records: BatchRecord) -> State:
    return replace(state.merged(records), serial=state.serial + 1)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".batchplan" / "state.json"


# -- read and write ------------------------------------------------------------


def test_read_of_a_missing_file_is_none(path: Path) -> None:
    assert LocalState(path).read() is None


def test_write_then_read_round_trips(path: Path) -> None:
    state = next_version(State.new(ENDPOINT), a=record("a"), b=record("b", None))
    LocalState(path).write(state)

    assert LocalState(path).read() == state
    assert path.read_text(encoding="utf-8") == dumps(state)
    assert json.loads(path.read_text(encoding="utf-8"))["serial"] == 1


@pytest.mark.parametrize("serial", [1, 2])
def test_write_refuses_a_serial_not_above_the_stored_one(path: Path, serial: int) -> None:
    base = replace(State.new(ENDPOINT), serial=2)
    LocalState(path).write(base)

    with pytest.raises(StateError, match=f"found lineage {base.lineage} serial 2"):
        LocalState(path).write(replace(base, serial=serial, batches={"x": record("x")}))
    assert LocalState(path).read() == base


def test_write_refuses_another_lineage(path: Path) -> None:
    ours = replace(State.new(ENDPOINT), serial=1)
    LocalState(path).write(ours)

    with pytest.raises(StateError, match="changed by someone else"):
        LocalState(path).write(replace(State.new(ENDPOINT), serial=9))
    assert LocalState(path).read() == ours


def test_force_skips_the_lineage_and_serial_checks(path: Path) -> None:
    LocalState(path).write(replace(State.new(ENDPOINT), serial=7))
    pushed = replace(State.new(ENDPOINT), serial=1, batches={"a": record("a")})

    LocalState(path).write(pushed, force=True)
    assert LocalState(path).read() == pushed


def test_damaged_state_is_a_state_error_naming_the_file(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateError, match=f"{path}: not valid JSON"):
        LocalState(path).read()


def test_atomic_replace_leaves_no_temp_files(path: Path) -> None:
    local = LocalState(path)
    state = State.new(ENDPOINT)
    for index in range(20):
        state = next_version(state, **{f"b{index}": record(f"b{index}")})
        local.write(state)

    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert loads(path.read_text(encoding="utf-8"), str(path)) == state


def test_a_failed_replace_keeps_the_old_state_and_no_temp_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = next_version(State.new(ENDPOINT), a=record("a"))
    LocalState(path).write(old)

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StateError, match=f"{path}: cannot write state: .*No space left"):
        LocalState(path).write(next_version(old, b=record("b")))
    monkeypatch.undo()

    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]
    assert LocalState(path).read() == old


# -- locking -------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from batchplan.state.local import LocalState

    with LocalState(sys.argv[1]).lock("apply", timeout=5) as info:
        print(info.id, flush=True)
        sys.stdin.readline()  # hold it until told (or killed)
    """
)


class LockHolder(AbstractContextManager["LockHolder"]):
    """Another process that holds the lock until ``release`` (or SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.lock_id = self.process.stdout.readline().strip()
        assert self.lock_id, "the child process did not take the lock"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def test_lock_file_holds_the_lock_info_and_goes_away_after(path: Path) -> None:
    with LocalState(path).lock("apply", timeout=0) as info:
        lock_path = path.with_name("state.json.lock")
        assert LockInfo.from_json(lock_path.read_text(encoding="utf-8")) == info
        assert (info.operation, info.pid) == ("apply", os.getpid())
    assert not lock_path.exists()


def test_lock_is_released_when_the_block_fails(path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), LocalState(path).lock("apply", 0):
        raise RuntimeError("boom")
    assert not path.with_name("state.json.lock").exists()


def test_a_lock_held_by_another_process_is_refused_naming_it(path: Path) -> None:
    with LockHolder(path) as holder:
        started = time.monotonic()
        with pytest.raises(LockError) as refused, LocalState(path).lock("plan", timeout=0.3):
            pytest.fail("the lock was granted twice")
        waited = time.monotonic() - started

    message = str(refused.value)
    assert f"lock {holder.lock_id} held by" in message
    assert f"pid {holder.process.pid}" in message
    assert "for 'apply'" in message
    assert f"batchplan state unlock {holder.lock_id}" in message
    assert 0.3 <= waited < 5


def test_lock_waits_for_a_process_that_releases_in_time(path: Path) -> None:
    with LockHolder(path) as holder:
        threading.Timer(0.3, holder.release).start()
        started = time.monotonic()
        with LocalState(path).lock("plan", timeout=10) as info:
            waited = time.monotonic() - started
            assert info.operation == "plan"
        holder.process.wait(10)
    assert holder.process.returncode == 0
    assert 0.2 <= waited < 5


def test_a_lock_left_by_a_killed_process_stays_until_unlocked(path: Path) -> None:
    with LockHolder(path) as holder:
        holder.kill()

    with pytest.raises(LockError) as refused, LocalState(path).lock("apply", timeout=0):
        pytest.fail("a crashed run's lock was ignored")
    assert "that process is no longer running" in str(refused.value)
    assert f"batchplan state unlock {holder.lock_id}" in str(refused.value)

    with pytest.raises(LockError, match=f"held by lock {holder.lock_id}, not wrong-id"):
        LocalState(path).unlock("wrong-id")
    assert LocalState(path).unlock(holder.lock_id).pid == holder.process.pid
    with LocalState(path).lock("apply", timeout=0) as info:
        assert info.pid == os.getpid()


def test_unlock_without_a_lock_says_so(path: Path) -> None:
    with pytest.raises(LockError, match="is not locked"):
        LocalState(path).unlock("any-id")


def test_exit_leaves_a_lock_that_was_broken_and_taken_by_another_run(path: Path) -> None:
    lock_path = path.with_name("state.json.lock")
    with LocalState(path).lock("apply", timeout=0) as ours:
        LocalState(path).unlock(ours.id)
        newcomer = LocalState(path).lock("apply", timeout=0)
        theirs = newcomer.__enter__()
    assert LockInfo.from_json(lock_path.read_text(encoding="utf-8")) == theirs
    newcomer.__exit__(None, None, None)
    assert not lock_path.exists()


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
        (OSError(5, "Input/output error"), "cannot write state: .*Input/output error"),
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
