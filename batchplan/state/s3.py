"""State in one S3 object, for teams: conditional writes instead of a lock table.

The state lives at ``s3://bucket/key`` and the lock at ``s3://bucket/key.lock``.
Both rely on S3's conditional writes, which every S3 request checks atomically:

- the lock is created with ``If-None-Match: *``, so of two runs only one can
  create it; the other gets 412 (or 409 while the first write is in flight);
- the state is written with ``If-Match: <ETag read last>`` (or ``If-None-Match:
  *`` when there was none), so a write that raced another is refused rather
  than lost, even if someone bypassed the lock.

boto3 is an optional extra (``batchplan[s3]``) and is imported only when an
S3 state is used. Endpoint, region and credentials come from the standard AWS
settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_PROFILE``, ...), so MinIO
and other S3-compatible stores work too.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from batchplan.errors import LockError, StateError, UsageError
from batchplan.state import LockInfo, State, dumps, loads
from batchplan.state.local import new_lock_info, process_gone

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client

# Each poll is a billed request; a lock is normally held for a whole apply,
# so checking twice a second is plenty.
LOCK_POLL_SECONDS = 0.5

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


@dataclass(frozen=True)
class _Seen:
    """The stored version this instance last read or wrote: CAS compares against it."""

    etag: str | None  # None: there was no state object
    state: State | None


class S3State:
    """``s3://bucket/key`` holds the state; ``s3://bucket/key.lock`` exists while a run holds it."""

    def __init__(self, bucket: str, key: str) -> None:
        self.bucket = bucket
        self.key = key
        self.lock_key = key + ".lock"
        self.location = f"s3://{bucket}/{key}"
        self.lock_location = f"s3://{bucket}/{self.lock_key}"
        # Guards _seen: apply's state writer thread writes while the main
        # thread may read.
        self._mutex = threading.Lock()
        self._seen: _Seen | None = None
        self._client = self._make_client()

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

    def _make_client(self) -> S3Client:
        try:
            import boto3
        except ImportError:
            raise StateError(
                "the S3 state backend needs boto3: install batchplan with its s3 extra "
                "('scale-batchplan[s3]', see docs/install.md), or pip install boto3 beside it"
            ) from None
        with _CLIENT_LOCK, self._translated("set up the S3 client"):
            return boto3.client("s3")

    @contextlib.contextmanager
    def _translated(self, action: str, where: str | None = None) -> Iterator[None]:
        """Turn any botocore failure into a one-line ``StateError`` naming the object."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise StateError(
                f"{where or self.location}: cannot {action}: {_describe(exc)}"
            ) from None

    # -- state ------------------------------------------------------------

    def read(self) -> State | None:
        """The stored state, or None; remembers its ETag for the next ``write``."""
        with self._mutex:
            return self._read()

    def _read(self) -> State | None:
        from botocore.exceptions import ClientError

        with self._translated("read state"):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self.key)
            except ClientError as exc:
                if _error_code(exc) not in _MISSING:
                    raise
                self._seen = _Seen(etag=None, state=None)
                return None
            body = response["Body"].read()
            etag = response["ETag"]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"{self.location}: state is not UTF-8 text ({exc})") from None
        state = loads(text, self.location)
        self._seen = _Seen(etag=etag, state=state)
        return state

    def _head_etag(self) -> str | None:
        from botocore.exceptions import ClientError

        with self._translated("read state"):
            try:
                return self._client.head_object(Bucket=self.bucket, Key=self.key)["ETag"]
            except ClientError as exc:
                if _error_code(exc) not in _MISSING:
                    raise
                return None

    def write(self, state: State, *, force: bool = False) -> None:
        """Compare-and-swap ``state`` over the version this instance last read or wrote.

        Refused with ``StateError`` when the stored state is another lineage or
        not older (unless ``force``), or when anyone wrote it since: never a
        lost update. ``force`` skips the lineage and serial checks only; the
        write stays conditional, so it still cannot overwrite a version it
        never saw.
        """
        with self._mutex:
            if self._seen is None:
                # Nothing read through this instance yet: learn which version
                # the write must replace.
                if force:
                    self._seen = _Seen(etag=self._head_etag(), state=None)
                else:
                    self._read()
            assert self._seen is not None
            if not force:
                self._check_successor(self._seen.state, state)
            body = dumps(state).encode("utf-8")
            etag = self._put_state(body, self._seen.etag)
            self._seen = _Seen(etag=etag, state=state)

    def _check_successor(self, stored: State | None, state: State) -> None:
        if stored is None:
            return
        if stored.lineage != state.lineage:
            raise StateError(
                f"{self.location} holds another state (lineage {stored.lineage}), not this "
                f"one (lineage {state.lineage}); refusing to overwrite it "
                "(`batchplan state push FILE --force` replaces it on purpose)"
            )
        if state.serial <= stored.serial:
            raise StateError(
                f"{self.location} holds serial {stored.serial}, not older than serial "
                f"{state.serial} being written; refusing to overwrite a newer state "
                "(`batchplan state push FILE --force` replaces it on purpose)"
            )

    def _put_state(self, body: bytes, etag: str | None) -> str:
        from botocore.exceptions import ClientError

        with self._translated("write state"):
            try:
                if etag is None:
                    response = self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key,
                        Body=body,
                        ContentType="application/json",
                        IfNoneMatch="*",
                    )
                else:
                    response = self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key,
                        Body=body,
                        ContentType="application/json",
                        IfMatch=etag,
                    )
            except ClientError as exc:
                code = _error_code(exc)
                # With If-Match, a missing object (deleted meanwhile) is a 404.
                if code in _CONDITION_FAILED or (etag is not None and code in _MISSING):
                    self._refuse_lost_update(code, created=etag is None)
                raise
            return response["ETag"]

    def _refuse_lost_update(self, code: str, *, created: bool) -> NoReturn:
        seen = "none existed when this run read it" if created else "since this run read it"
        raise StateError(
            f"{self.location}: another writer changed the state ({seen}); the conditional "
            f"write was refused ({code}) and nothing was overwritten. Run the command again "
            "to work from the current state."
        )

    # -- lock ----------------------------------------------------------------

    def _holder(self) -> tuple[LockInfo | None, str | None]:
        """The lock object's content and ETag; ``(None, None)`` when there is none."""
        from botocore.exceptions import ClientError

        with self._translated("read lock", self.lock_location):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self.lock_key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    return None, None
                raise
            body = response["Body"].read()
            etag = response["ETag"]
        return LockInfo.from_json(body.decode("utf-8", errors="replace")), etag

    def _try_lock(self, info: LockInfo) -> bool:
        """Create the lock object unless it exists; True if this call created it."""
        from botocore.exceptions import ClientError

        with self._translated("create lock", self.lock_location):
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=self.lock_key,
                    Body=info.to_json().encode("utf-8"),
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _error_code(exc) in _CONDITION_FAILED:
                    return False
                raise
        return True

    @contextlib.contextmanager
    def lock(self, operation: str, timeout: float) -> Iterator[LockInfo]:
        """Hold ``s3://bucket/key.lock`` for the block; wait up to ``timeout`` seconds for it."""
        info = new_lock_info(operation)
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self._try_lock(info):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockError(self._refusal())
            time.sleep(min(LOCK_POLL_SECONDS, remaining))
        try:
            yield info
        except BaseException:
            # The block's own error is the one to report; a lock that cannot
            # be released now is shown to the next run, which can unlock it.
            with contextlib.suppress(StateError):
                self._release(info)
            raise
        self._release(info)

    def _release(self, info: LockInfo) -> None:
        """Delete the lock object, but only while it still holds our id."""
        holder, etag = self._holder()
        if holder is None or holder.id != info.id or etag is None:
            # Broken by `state unlock` (and maybe taken by another run since).
            return
        self._delete_lock(etag, info.id)

    def _delete_lock(self, etag: str, lock_id: str) -> bool:
        """Delete the lock object if it is still the version read; False if it changed."""
        from botocore.exceptions import ClientError

        with self._translated(
            f"release lock {lock_id} (`batchplan state unlock {lock_id}` breaks it)",
            self.lock_location,
        ):
            try:
                # If-Match: if the lock was broken and re-taken between our
                # read and this delete, the new holder's lock survives.
                self._client.delete_object(Bucket=self.bucket, Key=self.lock_key, IfMatch=etag)
            except ClientError as exc:
                code = _error_code(exc)
                if code in _CONDITION_FAILED or code in _MISSING:
                    return False
                if code != "NotImplemented":
                    raise
                # A store without conditional deletes: we just read the
                # expected id there, so a plain delete is the best it offers.
                self._client.delete_object(Bucket=self.bucket, Key=self.lock_key)
        return True

    def _refusal(self) -> str:
        holder, _ = self._holder()
        if holder is None:
            return (
                f"state {self.location} is locked by another run, whose lock "
                f"{self.lock_location} is gone or unreadable now; run the command again"
            )
        message = f"state {self.location} is locked: {holder.describe()}"
        if process_gone(holder):
            message += "; that process is no longer running"
        return message + f". If no run holds it, `batchplan state unlock {holder.id}` breaks it."

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock with this id (``state unlock``); returns who held it."""
        holder, etag = self._holder()
        if etag is None:
            raise LockError(f"state {self.location} is not locked")
        if holder is None:
            raise LockError(
                f"{self.lock_location}: lock object unreadable; delete it by hand "
                f"(aws s3 rm {self.lock_location})"
            )
        if holder.id != lock_id:
            raise LockError(f"state {self.location} is held by lock {holder.id}, not {lock_id}")
        if not self._delete_lock(etag, lock_id):
            raise LockError(
                f"state {self.location}: lock {lock_id} was released or replaced while "
                "unlocking; nothing was broken"
            )
        return holder
