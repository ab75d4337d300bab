"""One conformance suite, run against every state backend: a local file and S3 (moto's server).

Each test opens fresh backend instances on one location, as separate runs
would. A new backend passes this suite by adding a ``Site`` below.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from dataclasses import replace as with_fields
from pathlib import Path

import boto3
import pytest

from batchplan.errors import LockError, StateError
from batchplan.state import LockInfo, State, dumps
from batchplan.state.location import backend_at
from batchplan.state.store import StateStore
from batchplan.state.writer import StateWriter
from tests.helpers import next_version
from tests.helpers import state_record as record

pytest_plugins = ["tests.s3server"]

ENDPOINT = "https://api.scale.com/v1"


@dataclass
class Site:
    """One state location, and raw access to what is stored there (bypassing batchplan)."""

    url: str
    raw: Callable[[], bytes | None]
    raw_lock: Callable[[], bytes | None]
    put_raw: Callable[[bytes], None]
    delete_raw: Callable[[], None]

    def open(self) -> StateStore:
        backend = backend_at(self.url)
        assert isinstance(backend, StateStore)
        return backend


def local_site(tmp_path: Path) -> Site:
    path = tmp_path / ".batchplan" / "state.json"
    lock = path.with_name("state.json.lock")

    def raw(file: Path) -> bytes | None:
        return file.read_bytes() if file.exists() else None

    def put_raw(data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Site(str(path), lambda: raw(path), lambda: raw(lock), put_raw, path.unlink)


def s3_site(bucket: str) -> Site:
    key = "teams/labeling/state.json"
    client = boto3.client("s3")

    def raw(name: str) -> bytes | None:
        try:
            return bytes(client.get_object(Bucket=bucket, Key=name)["Body"].read())
        except client.exceptions.NoSuchKey:
            return None

    return Site(
        f"s3://{bucket}/{key}",
        lambda: raw(key),
        lambda: raw(key + ".lock"),
        lambda data: client.put_object(Bucket=bucket, Key=key, Body=data) and None,
        lambda: client.delete_object(Bucket=bucket, Key=key) and None,
    )


@pytest.fixture(params=["local", "s3"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    if request.param == "local":
        return local_site(tmp_path)
    return s3_site(request.getfixturevalue("s3_bucket"))


# -- read and write ------------------------------------------------------------


def test_read_of_nothing_stored_is_none(site: Site) -> None:
    assert site.open().read() is None


def test_write_then_read_round_trips_as_the_canonical_document(site: Site) -> None:
    state = next_version(State.new(ENDPOINT), a=record("a"), b=record("b", None))
    site.open().write(state)

    assert site.open().read() == state
    assert site.raw() == dumps(state).encode("utf-8")
    assert site.raw_lock() is None


def test_successive_writes_follow_their_own_version(site: Site) -> None:
    backend = site.open()
    state = State.new(ENDPOINT)
    for index in range(5):
        # No read in between: each write's version is the next one's condition.
        state = next_version(state, **{f"b{index}": record(f"b{index}")})
        backend.write(state)

    stored = site.open().read()
    assert stored is not None
    assert (stored.serial, sorted(stored.batches)) == (5, ["b0", "b1", "b2", "b3", "b4"])


@pytest.mark.parametrize("serial", [1, 2])
def test_write_refuses_a_serial_not_above_the_stored_one(site: Site, serial: int) -> None:
    base = with_fields(State.new(ENDPOINT), serial=2)
    site.open().write(base)

    with pytest.raises(StateError, match=f"holds serial 2, not older than serial {serial}"):
        site.open().write(with_fields(base, serial=serial, batches={"x": record("x")}))
    assert site.open().read() == base


def test_write_refuses_another_lineage_without_an_explicit_read(site: Site) -> None:
    ours = with_fields(State.new(ENDPOINT), serial=1)
    site.open().write(ours)

    with pytest.raises(StateError, match=f"another state \\(lineage {ours.lineage}\\)"):
        site.open().write(with_fields(State.new(ENDPOINT), serial=9))
    assert site.open().read() == ours


def test_force_skips_the_lineage_and_serial_checks(site: Site) -> None:
    site.open().write(with_fields(State.new(ENDPOINT), serial=7))
    pushed = with_fields(State.new(ENDPOINT), serial=1, batches={"a": record("a")})
    backend = site.open()
    backend.read()
    backend.write(pushed, force=True)
    assert site.open().read() == pushed

    # A store that never read learns the stored version itself.
    again = with_fields(State.new(ENDPOINT), serial=1)
    site.open().write(again, force=True)
    assert site.open().read() == again


def test_force_replaces_a_damaged_state(site: Site) -> None:
    site.put_raw(b"{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        site.open().read()

    fresh = State.new(ENDPOINT)
    site.open().write(fresh, force=True)
    assert site.open().read() == fresh


# -- push: the policy of `state push`, the store's alone ---------------------------


def test_push_continues_the_lineage_above_the_stored_serial(site: Site) -> None:
    base = with_fields(State.new(ENDPOINT), serial=3)
    site.open().write(base)
    pushed = with_fields(base, serial=5, batches={"x": record("x")})

    assert site.open().push(pushed, "f.json", endpoint=ENDPOINT, force=False) == 5
    assert site.open().read() == pushed
    # The same state again: nothing written.
    assert site.open().push(pushed, "f.json", endpoint=ENDPOINT, force=False) is None


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"lineage": "other"}, "f.json has lineage other, but .* has .*: it is another state"),
        ({"serial": 2}, "f.json has serial 2, older than 3 at "),
        ({"batches": {"y": record("y")}}, "f.json has the same serial 3 as .* but different"),
        ({"endpoint": "https://elsewhere.example/v1"}, "f.json belongs to endpoint https://else"),
    ],
)
def test_push_refuses_what_would_lose_or_misplace_a_state_unless_forced(
    site: Site, change: dict[str, object], refusal: str
) -> None:
    base = with_fields(State.new(ENDPOINT), serial=3)
    site.open().write(base)
    pushed = with_fields(base, **change)  # type: ignore[arg-type]

    with pytest.raises(StateError, match=refusal):
        site.open().push(pushed, "f.json", endpoint=ENDPOINT, force=False)
    assert site.open().read() == base

    # Forced, the stored serial still only grows.
    assert site.open().push(pushed, "f.json", endpoint=ENDPOINT, force=True) == max(
        pushed.serial, 4
    )
    assert site.open().read() == with_fields(pushed, serial=max(pushed.serial, 4))


def test_damaged_state_is_a_state_error_naming_the_location(site: Site) -> None:
    site.put_raw(b"{not json")
    with pytest.raises(StateError, match=f"^{site.url}: not valid JSON"):
        site.open().read()


def test_a_bad_record_is_a_located_error_from_every_backend(site: Site) -> None:
    state = next_version(State.new(ENDPOINT), a=record("a"))
    site.put_raw(dumps(state).replace('"priority": 20', '"priority": 99').encode())

    with pytest.raises(StateError) as refused:
        site.open().read()
    assert str(refused.value) == f'{site.url}: batches["a"].priority: 99 is outside 10 to 30'


def test_a_batch_named_twice_is_refused(site: Site) -> None:
    state = next_version(State.new(ENDPOINT), a=record("a"))
    line = '    "a": {"project": "p"},\n'
    site.put_raw(dumps(state).replace('"batches": {\n', '"batches": {\n' + line).encode())

    with pytest.raises(StateError, match=f'^{site.url}: key "a" appears twice$'):
        site.open().read()


# -- compare-and-swap ----------------------------------------------------------


def test_of_two_writers_of_the_same_version_exactly_one_wins(site: Site) -> None:
    base = next_version(State.new(ENDPOINT), a=record("a"))
    site.open().write(base)
    first, second = site.open(), site.open()
    assert first.read() == second.read() == base

    first.write(next_version(base, b=record("b")))
    # Serial and lineage look fine to the second writer; only the version knows.
    with pytest.raises(StateError, match="another writer changed the state"):
        second.write(next_version(base, c=record("c")))

    stored = site.open().read()
    assert stored is not None
    assert sorted(stored.batches) == ["a", "b"]


def test_of_two_writers_creating_the_state_exactly_one_wins(site: Site) -> None:
    first, second = site.open(), site.open()
    assert first.read() is None
    assert second.read() is None
    state = next_version(State.new(ENDPOINT), a=record("a"))

    first.write(state)
    with pytest.raises(StateError, match="another writer changed the state"):
        second.write(with_fields(state, batches={"other": record("other")}))
    assert site.open().read() == state


def test_a_state_deleted_since_the_read_is_not_silently_recreated(site: Site) -> None:
    base = next_version(State.new(ENDPOINT))
    backend = site.open()
    backend.write(base)
    site.delete_raw()

    with pytest.raises(StateError, match="another writer changed the state"):
        backend.write(next_version(base))
    assert site.open().read() is None


def test_writers_taking_turns_under_the_lock_lose_no_update(site: Site) -> None:
    threads, writes_each = 4, 5
    site.open().write(State.new(ENDPOINT))
    # One backend per writer, as separate processes would have; built here
    # because S3 client creation is the one non-thread-safe part of boto3.
    backends = [site.open() for _ in range(threads)]
    failures: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            for count in range(writes_each):
                with backends[index].lock("apply", timeout=30):
                    current = backends[index].read()
                    assert current is not None
                    name = f"w{index}-{count}"
                    backends[index].write(next_version(current, **{name: record(name)}))
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert not failures
    final = site.open().read()
    assert final is not None
    assert final.serial == len(final.batches) == threads * writes_each


def test_the_state_writer_keeps_every_record(site: Site) -> None:
    writer = StateWriter(site.open(), State.new(ENDPOINT))
    for index in range(30):
        writer.record(record(f"batch-{index:02d}"))
    writer.close()

    stored = site.open().read()
    assert stored is not None
    assert len(stored.batches) == 30
    assert stored.serial == writer.writes


# -- locking -------------------------------------------------------------------


def test_lock_holds_the_lock_info_and_goes_away_after(site: Site) -> None:
    with site.open().lock("apply", timeout=0) as info:
        held = site.raw_lock()
        assert held is not None
        assert LockInfo.from_json(held.decode()) == info
        assert (info.operation, info.pid) == ("apply", os.getpid())
    assert site.raw_lock() is None


def test_lock_is_released_when_the_block_fails(site: Site) -> None:
    with pytest.raises(RuntimeError, match="boom"), site.open().lock("apply", 0):
        raise RuntimeError("boom")
    assert site.raw_lock() is None


HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from batchplan.state.location import backend_at

    with backend_at(sys.argv[1]).lock("apply", timeout=5) as info:
        print(info.id, flush=True)
        sys.stdin.readline()  # hold it until told (or killed)
    """
)


class LockHolder(AbstractContextManager["LockHolder"]):
    """Another process that holds the lock until ``release`` (or SIGKILL)."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, url],
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


def test_a_lock_held_by_another_process_is_refused_naming_it(site: Site) -> None:
    with LockHolder(site.url) as holder:
        with pytest.raises(LockError) as refused, site.open().lock("plan", timeout=0.6):
            pytest.fail("the lock was granted twice")

    message = str(refused.value)
    assert message.startswith(f"state {site.url} is locked: lock {holder.lock_id} held by")
    assert f"pid {holder.process.pid}" in message
    assert "for 'apply'" in message
    assert f"batchplan state unlock {holder.lock_id}" in message


def test_lock_waits_for_a_process_that_releases_in_time(site: Site) -> None:
    with LockHolder(site.url) as holder:
        threading.Timer(0.3, holder.release).start()
        with site.open().lock("plan", timeout=30) as info:
            held = site.raw_lock()
            assert held is not None
            assert LockInfo.from_json(held.decode()) == info
        holder.process.wait(10)
    assert holder.process.returncode == 0


def test_a_lock_left_by_a_killed_process_stays_until_unlocked(site: Site) -> None:
    with LockHolder(site.url) as holder:
        holder.kill()

    with pytest.raises(LockError) as refused, site.open().lock("apply", timeout=0):
        pytest.fail("a crashed run's lock was ignored")
    assert "that process is no longer running" in str(refused.value)

    with pytest.raises(LockError, match=f"held by lock {holder.lock_id}, not wrong-id"):
        site.open().unlock("wrong-id")
    assert site.raw_lock() is not None
    assert site.open().unlock(holder.lock_id).pid == holder.process.pid
    assert site.raw_lock() is None
    with site.open().lock("apply", timeout=0) as info:
        assert info.pid == os.getpid()


def test_unlock_without_a_lock_says_so(site: Site) -> None:
    with pytest.raises(LockError, match=f"state {site.url} is not locked"):
        site.open().unlock("any-id")


def test_exit_leaves_a_lock_that_was_broken_and_taken_by_another_run(site: Site) -> None:
    with site.open().lock("apply", timeout=0) as ours:
        site.open().unlock(ours.id)
        newcomer = site.open().lock("apply", timeout=0)
        theirs = newcomer.__enter__()
    # Our exit must not delete the newcomer's lock.
    held = site.raw_lock()
    assert held is not None
    assert LockInfo.from_json(held.decode()) == theirs
    newcomer.__exit__(None, None, None)
    assert site.raw_lock() is None


def test_an_unreadable_lock_is_named_and_never_broken_by_id(site: Site) -> None:
    # Left by a crash mid-write on a store without atomic puts, or by hand.
    assert site.open().storage.create_lock(b"garbage")

    with pytest.raises(LockError, match="is unreadable; if no run holds it, delete it by hand"):
        with site.open().lock("apply", timeout=0):
            pytest.fail("a garbage lock was ignored")
    with pytest.raises(LockError, match="lock unreadable; delete it by hand"):
        site.open().unlock("any-id")
    assert site.raw_lock() == b"garbage"


def test_lock_waits_are_bounded_by_the_timeout(site: Site) -> None:
    with site.open().lock("apply", timeout=0):
        started = time.monotonic()
        with pytest.raises(LockError), site.open().lock("plan", timeout=0.3):
            pytest.fail("the lock was granted twice")
        assert time.monotonic() - started >= 0.3
