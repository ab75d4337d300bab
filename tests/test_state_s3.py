"""The S3 state backend against moto's S3 server over real HTTP (see tests/s3server.py)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import boto3
import pytest

from batchplan.errors import LockError, StateError, UsageError
from batchplan.model import BatchRecord
from batchplan.state import LockInfo, State, dumps, loads
from batchplan.state.s3 import S3State
from batchplan.state.writer import StateWriter

if TYPE_CHECKING:
    from tests.s3server import AwsEnvironment

pytest_plugins = ["tests.s3server"]

ENDPOINT = "https://api.scale.com/v1"
KEY = "teams/labeling/state.json"


def record(name: str, priority: int | None = 20) -> BatchRecord:
    return BatchRecord(
        name=name,
        project="kitten_labeling",
        priority=priority,
        calibration_batch=False,
        self_label_batch=False,
        updated_at="2026-01-02T03:04:05+00:00",
    )


def backend(bucket: str, key: str = KEY) -> S3State:
    return S3State.from_url(f"s3://{bucket}/{key}")


def next_version(state: State, **records: BatchRecord) -> State:
    return replace(state.merged(records), serial=state.serial + 1)


def stored_text(bucket: str, key: str = KEY) -> str:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body.decode("utf-8")


def lock_exists(bucket: str, key: str = KEY) -> bool:
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=key + ".lock")
    return listing.get("KeyCount", 0) > 0


# -- URLs and set-up -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "bucket", "key"),
    [
        ("s3://team-state/state.json", "team-state", "state.json"),
        ("s3://team.state/a/b/c/state.json", "team.state", "a/b/c/state.json"),
    ],
)
def test_from_url_splits_bucket_and_key(s3_bucket: str, url: str, bucket: str, key: str) -> None:
    state = S3State.from_url(url)
    assert (state.bucket, state.key, state.lock_key) == (bucket, key, key + ".lock")
    assert state.location == url


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///state.json",
        "s3://bucket",
        "s3://bucket/",
        "s3://bucket/folder/",
        "s3://b/state.json",
        "s3://bad bucket/state.json",
        "http://bucket/state.json",
        "bucket/state.json",
    ],
)
def test_from_url_refuses_a_malformed_url(url: str) -> None:
    with pytest.raises(UsageError, match="s3://BUCKET/KEY"):
        S3State.from_url(url)


def test_without_boto3_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(StateError, match=r"needs boto3: .*'scale-batchplan\[s3\]'"):
        S3State.from_url("s3://team-state/state.json")


# -- read and write ------------------------------------------------------------


def test_read_of_a_missing_key_is_none(s3_bucket: str) -> None:
    assert backend(s3_bucket).read() is None


def test_write_then_read_round_trips(s3_bucket: str) -> None:
    state = next_version(State.new(ENDPOINT), a=record("a"), b=record("b", None))
    backend(s3_bucket).write(state)

    assert backend(s3_bucket).read() == state
    assert stored_text(s3_bucket) == dumps(state)
    assert not lock_exists(s3_bucket)


def test_successive_writes_follow_their_own_etag(s3_bucket: str) -> None:
    s3 = backend(s3_bucket)
    state = State.new(ENDPOINT)
    for index in range(5):
        # No read in between: the ETag of each put is the next one's condition.
        state = next_version(state, **{f"b{index}": record(f"b{index}")})
        s3.write(state)

    stored = backend(s3_bucket).read()
    assert stored is not None
    assert stored.serial == 5
    assert sorted(stored.batches) == ["b0", "b1", "b2", "b3", "b4"]


@pytest.mark.parametrize("serial", [1, 2])
def test_write_refuses_a_serial_not_above_the_stored_one(s3_bucket: str, serial: int) -> None:
    base = replace(State.new(ENDPOINT), serial=2)
    backend(s3_bucket).write(base)
    s3 = backend(s3_bucket)
    s3.read()

    with pytest.raises(StateError, match=f"holds serial 2, not older than serial {serial}"):
        s3.write(replace(base, serial=serial, batches={"x": record("x")}))
    assert backend(s3_bucket).read() == base


def test_write_refuses_another_lineage(s3_bucket: str) -> None:
    ours = replace(State.new(ENDPOINT), serial=1)
    backend(s3_bucket).write(ours)
    theirs = replace(State.new(ENDPOINT), serial=9)

    with pytest.raises(StateError, match=f"another state \\(lineage {ours.lineage}\\)"):
        backend(s3_bucket).write(theirs)
    assert backend(s3_bucket).read() == ours


def test_write_checks_the_stored_state_without_an_explicit_read(s3_bucket: str) -> None:
    backend(s3_bucket).write(replace(State.new(ENDPOINT), serial=3))
    with pytest.raises(StateError, match="another state"):
        backend(s3_bucket).write(replace(State.new(ENDPOINT), serial=4))


def test_force_skips_the_lineage_and_serial_checks(s3_bucket: str) -> None:
    backend(s3_bucket).write(replace(State.new(ENDPOINT), serial=7))
    pushed = replace(State.new(ENDPOINT), serial=1, batches={"a": record("a")})

    s3 = backend(s3_bucket)
    s3.read()
    s3.write(pushed, force=True)
    assert backend(s3_bucket).read() == pushed
    # A fresh instance that never read learns the ETag itself.
    again = replace(State.new(ENDPOINT), serial=1)
    backend(s3_bucket).write(again, force=True)
    assert backend(s3_bucket).read() == again


def test_damaged_state_is_a_state_error_naming_the_object(s3_bucket: str) -> None:
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=KEY, Body=b"{not json")
    with pytest.raises(StateError, match=f"s3://{s3_bucket}/{KEY}: not valid JSON"):
        backend(s3_bucket).read()


# -- compare-and-swap ----------------------------------------------------------


def test_of_two_writers_of_the_same_version_exactly_one_wins(s3_bucket: str) -> None:
    base = next_version(State.new(ENDPOINT), a=record("a"))
    backend(s3_bucket).write(base)
    first, second = backend(s3_bucket), backend(s3_bucket)
    assert first.read() == second.read() == base

    first.write(next_version(base, b=record("b")))
    # Serial and lineage look fine to the second writer; only the ETag knows.
    with pytest.raises(StateError, match="another writer changed the state") as refused:
        second.write(next_version(base, c=record("c")))

    assert "PreconditionFailed" in str(refused.value)
    stored = backend(s3_bucket).read()
    assert stored is not None
    assert sorted(stored.batches) == ["a", "b"]


def test_of_two_writers_creating_the_state_exactly_one_wins(s3_bucket: str) -> None:
    first, second = backend(s3_bucket), backend(s3_bucket)
    assert first.read() is None
    assert second.read() is None
    state = next_version(State.new(ENDPOINT), a=record("a"))

    first.write(state)
    with pytest.raises(StateError, match="none existed when this run read it"):
        second.write(replace(state, batches={"other": record("other")}))
    assert backend(s3_bucket).read() == state


def test_a_state_deleted_since_the_read_is_not_silently_recreated(s3_bucket: str) -> None:
    base = next_version(State.new(ENDPOINT))
    s3 = backend(s3_bucket)
    s3.write(base)
    boto3.client("s3").delete_object(Bucket=s3_bucket, Key=KEY)

    with pytest.raises(StateError, match="another writer changed the state"):
        s3.write(next_version(base))
    assert backend(s3_bucket).read() is None


def test_concurrent_read_modify_write_loses_no_update(s3_bucket: str) -> None:
    threads, writes_each = 8, 10
    backend(s3_bucket).write(State.new(ENDPOINT))
    # One backend per writer, as separate processes would have; built here
    # because client creation is the one non-thread-safe part of boto3.
    backends = [backend(s3_bucket) for _ in range(threads)]
    refusals = [0] * threads
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(index: int) -> None:
        s3 = backends[index]
        try:
            start.wait()
            for count in range(writes_each):
                name = f"w{index}-{count}"
                while True:
                    current = s3.read()
                    assert current is not None
                    try:
                        s3.write(next_version(current, **{name: record(name)}))
                        break
                    except StateError:
                        refusals[index] += 1
                        # Back off a little, as a real retry would: without it
                        # the losers mostly race each other.
                        time.sleep(random.uniform(0, 0.02))
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert not failures
    final = backend(s3_bucket).read()
    assert final is not None
    assert final.serial == threads * writes_each
    assert len(final.batches) == threads * writes_each
    # The race really happened: some writes had to be retried.
    assert sum(refusals) > 0


def test_the_state_writer_keeps_every_record_on_s3(s3_bucket: str) -> None:
    s3 = backend(s3_bucket)
    writer = StateWriter(s3, State.new(ENDPOINT))
    for index in range(30):
        writer.record(record(f"batch-{index:02d}"))
    writer.close()

    stored = backend(s3_bucket).read()
    assert stored is not None
    assert len(stored.batches) == 30
    assert stored.serial == writer.writes


# -- locking -------------------------------------------------------------------


def test_lock_object_holds_the_lock_info_and_goes_away_after(s3_bucket: str) -> None:
    s3 = backend(s3_bucket)
    with s3.lock("apply", timeout=0) as info:
        text = stored_text(s3_bucket, KEY + ".lock")
        assert LockInfo.from_json(text) == info
        assert (info.operation, info.pid) == ("apply", os.getpid())
    assert not lock_exists(s3_bucket)


def test_lock_is_released_when_the_block_fails(s3_bucket: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), backend(s3_bucket).lock("apply", 0):
        raise RuntimeError("boom")
    assert not lock_exists(s3_bucket)


def test_second_lock_is_refused_naming_the_holder(s3_bucket: str) -> None:
    with backend(s3_bucket).lock("apply", timeout=0) as held:
        started = time.monotonic()
        with pytest.raises(LockError) as refused, backend(s3_bucket).lock("plan", timeout=0.6):
            pytest.fail("the lock was granted twice")
        waited = time.monotonic() - started

    message = str(refused.value)
    assert held.describe() in message
    assert f"batchplan state unlock {held.id}" in message
    assert f"s3://{s3_bucket}/{KEY}" in message
    assert 0.5 <= waited < 5


def test_lock_waits_for_a_holder_that_releases_in_time(s3_bucket: str) -> None:
    first = backend(s3_bucket)
    taken, release = threading.Event(), threading.Event()

    def holder() -> None:
        with first.lock("apply", timeout=0):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert taken.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with backend(s3_bucket).lock("plan", timeout=10) as info:
        waited = time.monotonic() - started
        assert LockInfo.from_json(stored_text(s3_bucket, KEY + ".lock")) == info
    thread.join(10)
    assert 0.4 <= waited < 5


def test_exit_leaves_a_lock_that_was_broken_and_taken_by_another_run(s3_bucket: str) -> None:
    with backend(s3_bucket).lock("apply", timeout=0) as ours:
        backend(s3_bucket).unlock(ours.id)
        newcomer = backend(s3_bucket).lock("apply", timeout=0)
        theirs = newcomer.__enter__()
    # Our exit must not delete the newcomer's lock.
    assert LockInfo.from_json(stored_text(s3_bucket, KEY + ".lock")) == theirs
    newcomer.__exit__(None, None, None)
    assert not lock_exists(s3_bucket)


def test_unlock_with_the_right_id_clears_the_lock(s3_bucket: str) -> None:
    lock = backend(s3_bucket).lock("apply", timeout=0)
    held = lock.__enter__()

    assert backend(s3_bucket).unlock(held.id) == held
    assert not lock_exists(s3_bucket)
    with backend(s3_bucket).lock("plan", timeout=0):
        pass
    lock.__exit__(None, None, None)


def test_unlock_with_a_wrong_id_refuses_and_keeps_the_lock(s3_bucket: str) -> None:
    with backend(s3_bucket).lock("apply", timeout=0) as held:
        with pytest.raises(LockError, match=f"held by lock {held.id}, not wrong-id"):
            backend(s3_bucket).unlock("wrong-id")
        assert lock_exists(s3_bucket)


def test_unlock_without_a_lock_says_so(s3_bucket: str) -> None:
    with pytest.raises(LockError, match="is not locked"):
        backend(s3_bucket).unlock("any-id")


LOCK_AND_SLEEP = textwrap.dedent(
    """
    import sys, time
    from batchplan.state.s3 import S3State

    with S3State.from_url(sys.argv[1]).lock("apply", timeout=5) as info:
        print(info.id, flush=True)
        time.sleep(60)
    """
)


def test_a_lock_left_by_a_killed_process_stays_until_unlocked(s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/{KEY}"
    process = subprocess.Popen(
        [sys.executable, "-c", LOCK_AND_SLEEP, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lock_id = process.stdout.readline().strip()
        assert lock_id, "the child process did not take the lock"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    with pytest.raises(LockError) as refused, backend(s3_bucket).lock("apply", timeout=0):
        pytest.fail("a crashed run's lock was ignored")
    message = str(refused.value)
    assert f"lock {lock_id} held by" in message
    assert f"pid {process.pid}" in message
    assert "that process is no longer running" in message
    assert f"batchplan state unlock {lock_id}" in message

    assert backend(s3_bucket).unlock(lock_id).pid == process.pid
    with backend(s3_bucket).lock("apply", timeout=0):
        assert lock_exists(s3_bucket)


# -- errors --------------------------------------------------------------------


def test_a_missing_bucket_is_a_state_error_naming_it(s3_bucket: str) -> None:
    s3 = S3State.from_url(f"s3://no-such-bucket-{s3_bucket}/{KEY}")
    where = f"s3://no-such-bucket-{s3_bucket}/{KEY}"
    with pytest.raises(StateError, match=f"{where}: cannot read state: NoSuchBucket"):
        s3.read()
    with pytest.raises(StateError, match=f"{where}: cannot write state: NoSuchBucket"):
        s3.write(State.new(ENDPOINT), force=True)
    with pytest.raises(StateError, match=f"{where}.lock: cannot create lock: NoSuchBucket"):
        s3.lock("apply", 0).__enter__()


def test_an_unreachable_endpoint_is_a_state_error_without_secrets(
    s3_bucket: str, aws_env: AwsEnvironment
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    aws_env.point_at(f"http://127.0.0.1:{closed_port}")
    aws_env.set("AWS_MAX_ATTEMPTS", "1")
    aws_env.reset_session()

    with pytest.raises(StateError) as failed:
        backend(s3_bucket).read()
    message = str(failed.value)
    assert message.startswith(f"s3://{s3_bucket}/{KEY}: cannot read state: ")
    assert f"127.0.0.1:{closed_port}" in message
    assert aws_env.secret_access_key not in message
    assert "\n" not in message


def test_missing_credentials_are_a_state_error(s3_bucket: str, aws_env: AwsEnvironment) -> None:
    aws_env.unset("AWS_ACCESS_KEY_ID")
    aws_env.unset("AWS_SECRET_ACCESS_KEY")
    aws_env.reset_session()

    with pytest.raises(StateError, match="cannot read state: no AWS credentials found"):
        backend(s3_bucket).read()


def test_the_stored_document_is_the_canonical_state(s3_bucket: str) -> None:
    state = next_version(State.new(ENDPOINT), z=record("z"), a=record("a"))
    backend(s3_bucket).write(state)
    assert loads(stored_text(s3_bucket), "stored") == state
