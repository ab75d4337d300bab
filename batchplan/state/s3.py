"""State in one S3 object, for teams: conditional writes instead of a lock table.

The state lives at ``s3://bucket/key`` and the lock at ``s3://bucket/key.lock``.
Both rely on S3's conditional writes, which every S3 request checks atomically:

- the lock is created with ``If-None-Match: *``, so of two runs only one can
  create it; the other gets 412 (or 409 while the first write is in flight);
- the state is written with ``If-Match: <ETag read last>`` (or ``If-None-Match:
  *`` when there was none), so a write that raced another is refused rather
  than lost, even if someone bypassed the lock.

boto3 is an optional extra (``scale-batchplan[s3]``) and is imported only when an
S3 state is used. Endpoint, region and credentials come from the standard AWS
settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_PROFILE``, ...), so MinIO
and other S3-compatible stores work too.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from batchplan.errors import StateError, UsageError
from batchplan.state.store import StateStore, Version, WriteConflict

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client

# Legacy us-east-1 buckets may hold capitals and underscores; the store
# itself judges the rest.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")

# "Someone else changed it first": 412 when the condition was evaluated
# against a committed object, 409 when a concurrent write to the same key was
# still in flight (S3 then asks the loser to retry; for us it is the same).
_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})

# boto3.client() uses boto3's shared default session, which is not safe to
# create clients from in several threads at once; the clients themselves are.
_CLIENT_LOCK = threading.Lock()


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def _describe(exc: Exception) -> str:
    """One line naming the S3 error code; never the request, so never a credential."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or ""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = f"{code} (HTTP {status})" if status else code
        return f"{text}: {message}" if message and message != code else text
    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE)"
        )
    return str(exc)


class S3Objects:
    """The storage primitives on S3: ``s3://bucket/key`` and ``s3://bucket/key.lock``."""

    # Each poll is a billed request; a lock is normally held for a whole apply,
    # so checking twice a second is plenty.
    lock_poll_seconds = 0.5

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        self.lock_key = key + ".lock"
        self.location = f"s3://{bucket}/{key}"
        self.lock_location = f"s3://{bucket}/{self.lock_key}"
        self._client = self._make_client()

    def _make_client(self) -> S3Client:
        try:
            import boto3
        except ImportError:
            raise StateError(
                "the S3 state backend needs boto3: install batchplan with its s3 extra "
                "('scale-batchplan[s3]', see docs/install.md), or pip install boto3 beside it"
            ) from None
        with _CLIENT_LOCK, self._translated("set up the S3 client for"):
            return boto3.client("s3")

    @contextlib.contextmanager
    def _translated(self, action: str, where: str | None = None) -> Iterator[None]:
        """Turn any botocore failure into a one-line ``StateError`` naming the object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise StateError(
                f"cannot {action} {where or self.location}: {_describe(exc)}"
            ) from None

    def _get(self, key: str, what: str, where: str) -> tuple[bytes | None, Version]:
        from botocore.exceptions import ClientError

        with self._translated(f"read {what}", where):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    return None, None
                raise
            return response["Body"].read(), response["ETag"]

    def read(self) -> tuple[bytes | None, Version]:
        return self._get(self.key, "state", self.location)

    def write_if(self, data: bytes, expected: Version) -> Version:
        from botocore.exceptions import ClientError

        with self._translated("write state"):
            try:
                if expected is None:
                    response = self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key,
                        Body=data,
                        ContentType="application/json",
                        IfNoneMatch="*",
                    )
                else:
                    response = self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key,
                        Body=data,
                        ContentType="application/json",
                        IfMatch=str(expected),
                    )
            except ClientError as exc:
                code = _error_code(exc)
                # With If-Match, a missing object (deleted meanwhile) is a 404.
                if code in _CONDITION_FAILED or (expected is not None and code in _MISSING):
                    raise WriteConflict(f"the conditional write was refused: {code}") from None
                raise
            return response["ETag"]

    def create_lock(self, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        with self._translated("create lock", self.lock_location):
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=self.lock_key,
                    Body=data,
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _error_code(exc) in _CONDITION_FAILED:
                    return False
                raise
        return True

    def read_lock(self) -> tuple[bytes | None, Version]:
        return self._get(self.lock_key, "lock", self.lock_location)

    def delete_lock(self, expected: Version) -> bool:
        from botocore.exceptions import ClientError

        with self._translated("remove lock", self.lock_location):
            try:
                # If-Match: if the lock was broken and re-taken between our
                # read and this delete, the new holder's lock survives.
                self._client.delete_object(
                    Bucket=self.bucket, Key=self.lock_key, IfMatch=str(expected)
                )
            except ClientError as exc:
                code = _error_code(exc)
                if code in _CONDITION_FAILED or code in _MISSING:
                    return False
                if code != "NotImplemented":
                    raise
                # A store without conditional deletes: the caller just read
                # the expected lock there, so a plain delete is the best it offers.
                self._client.delete_object(Bucket=self.bucket, Key=self.lock_key)
        return True


class S3State(StateStore):
    """``s3://bucket/key`` holds the state; ``s3://bucket/key.lock`` exists while a run holds it."""

    def __init__(self, bucket: str, key: str) -> None:
        self.objects = S3Objects(bucket, key)
        super().__init__(self.objects)
        self.bucket, self.key, self.lock_key = bucket, key, self.objects.lock_key

    @classmethod
    def from_url(cls, url: str) -> S3State:
        """Parse ``s3://bucket/path/to/state.json``; a malformed URL is a ``UsageError``."""
        prefix = "s3://"
        if not url.startswith(prefix):
            raise UsageError(f"--state {url!r}: an S3 state is given as s3://BUCKET/KEY")
        bucket, _, key = url[len(prefix) :].partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise UsageError(
                f"--state {url!r}: {bucket!r} is not a bucket name "
                "(expected s3://BUCKET/KEY, e.g. s3://my-team-state/batchplan/state.json)"
            )
        if not key or key.endswith("/"):
            raise UsageError(
                f"--state {url!r}: the object key is missing "
                "(expected s3://BUCKET/KEY, e.g. s3://my-team-state/batchplan/state.json)"
            )
        return cls(bucket, key)
