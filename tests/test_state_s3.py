"""The S3 state backend against moto's S3 server over real HTTP (see tests/s3server.py)."""

from __future__ import annotations

import random
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

import boto3
import pytest

from batchplan.errors import StateError, UsageError
from batchplan.state import State, loads
from batchplan.state.s3 import S3State
from tests.helpers import next_version
from tests.helpers import state_record as record

if TYPE_CHECKING:
    from tests.s3server import AwsEnvironment

pytest_plugins = ["tests.s3server"]

ENDPOINT = "https://api.scale.com/v1"
KEY = "teams/labeling/state.json"


def backend(bucket: str, key: str = KEY) -> S3State:
    return S3State.from_url(f"s3://{bucket}/{key}")


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


# -- compare-and-swap ----------------------------------------------------------


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


# -- errors --------------------------------------------------------------------


def test_a_missing_bucket_is_a_state_error_naming_it(s3_bucket: str) -> None:
    s3 = S3State.from_url(f"s3://no-such-bucket-{s3_bucket}/{KEY}")
    where = f"s3://no-such-bucket-{s3_bucket}/{KEY}"
    with pytest.raises(StateError, match=f"cannot read state {where}: NoSuchBucket"):
        s3.read()
    with pytest.raises(StateError, match=f"cannot read state {where}: NoSuchBucket"):
        s3.write(State.new(ENDPOINT), force=True)
    with pytest.raises(StateError, match=f"cannot create lock {where}.lock: NoSuchBucket"):
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
    assert message.startswith(f"cannot read state s3://{s3_bucket}/{KEY}: ")
    assert f"127.0.0.1:{closed_port}" in message
    assert aws_env.secret_access_key not in message
    assert "\n" not in message


def test_missing_credentials_are_a_state_error(s3_bucket: str, aws_env: AwsEnvironment) -> None:
    aws_env.unset("AWS_ACCESS_KEY_ID")
    aws_env.unset("AWS_SECRET_ACCESS_KEY")
    aws_env.reset_session()

    with pytest.raises(
        StateError, match=f"cannot read state s3://{s3_bucket}/{KEY}: no AWS credentials found"
    ):
        backend(s3_bucket).read()


def test_the_stored_document_is_the_canonical_state(s3_bucket: str) -> None:
    state = next_version(State.new(ENDPOINT), z=record("z"), a=record("a"))
    backend(s3_bucket).write(state)
    assert loads(stored_text(s3_bucket), "stored") == state
