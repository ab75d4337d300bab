"""What every state backend shares: compare-and-swap, the lock loop, the messages.

A backend supplies only a few storage primitives (:class:`Storage`): read the
state with its version, write it if the version is still the one read, and
create / read / delete a lock next to it. :class:`StateStore` builds the
rest on top of them, once, for every backend: checking that a write
continues the stored lineage with a higher serial, waiting for a lock and
wording "locked by", releasing only our own lock, and ``state unlock``.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from batchplan.errors import LockError, StateError
from batchplan.state import LockInfo, State, dumps, loads

Version = object
"""A backend's opaque token for one stored version (an ETag, a file's identity).

``None`` always means "nothing stored"; backends compare tokens with ``==``.
"""


class WriteConflict(StateError):
    """A conditional write found another version than the one expected."""


class Storage(Protocol):
    """The primitives a backend supplies; everything else is shared.

    Each method raises ``StateError`` with a one-line message naming the
    location for any failure of the store (permissions, network, ...).
    """

    location: str
    lock_location: str
    # Seconds between two attempts to take a held lock (each may be a billed request).
    lock_poll_seconds: float

    def read(self) -> tuple[bytes | None, Version]:
        """The stored state's bytes and version; ``(None, None)`` when there is none."""

    def write_if(self, data: bytes, expected: Version) -> Version:
        """Store ``data`` only if the stored version is still ``expected``.

        ``expected`` ``None`` means "only if nothing is stored". Returns the new
        version; raises ``WriteConflict`` when someone else wrote meanwhile.
        """

    def create_lock(self, data: bytes) -> bool:
        """Create the lock holding ``data`` unless one exists; True if this call created it."""

    def read_lock(self) -> tuple[bytes | None, Version]:
        """The lock's bytes and version; ``(None, None)`` when there is no lock."""

    def delete_lock(self, expected: Version) -> bool:
        """Delete the lock if it is still version ``expected``; False if it changed or is gone."""


#: Seconds between two "still waiting for the state lock" lines.
LOCK_NOTICE_SECONDS = 10.0


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def new_lock_info(operation: str) -> LockInfo:
    """Who is taking a lock now: this user, host and process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    host = socket.gethostname()
    return LockInfo(
        id=str(uuid.uuid4()),
        operation=operation,
        who=f"{user}@{host}",
        host=host,
        pid=os.getpid(),
        created=_now(),
    )


def _process_gone(info: LockInfo) -> bool:
    """True only when the holder ran on this machine and its process no longer exists."""
    if info.host != socket.gethostname():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _parse_lock(data: bytes | None) -> LockInfo | None:
    return None if data is None else LockInfo.from_json(data.decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class _Seen:
    """The stored version this store last read or wrote: writes compare against it."""

    version: Version
    state: State | None  # None: nothing stored, or not parsed (a forced write)


class StateStore:
    """A state backend (read, write, lock, unlock) over one backend's :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.location = storage.location
        # Guards _seen: apply's state writer thread writes while the main
        # thread may read.
        self._mutex = threading.Lock()
        self._seen: _Seen | None = None

    # -- state -------------------------------------------------------------

    def read(self, *, keep_damaged: bool = False) -> State | None:
        """The stored state, or None; remembers its version for the next ``write``.

        ``keep_damaged``: a bad record goes to ``State.damaged`` instead of
        failing the read (for ``state list``, ``state rm``, ``state push``).
        """
        with self._mutex:
            return self._read(keep_damaged)

    def _read(self, keep_damaged: bool = False) -> State | None:
        data, version = self.storage.read()
        if data is None:
            self._seen = _Seen(version=None, state=None)
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"{self.location}: state is not UTF-8 text ({exc})") from None
        # A state of 100,000 batches is 15 MB: not held twice while it is parsed.
        del data
        state = loads(text, self.location, keep_damaged=keep_damaged)
        self._seen = _Seen(version=version, state=state)
        return state

    def write(self, state: State, *, force: bool = False) -> None:
        """Compare-and-swap ``state`` over the version this store last read or wrote.

        Refused with ``StateError`` when the stored state is another lineage
        or not older (unless ``force``), or when anyone wrote it since this
        store read it: never a lost update. ``force`` (``state push --force``)
        skips the lineage and serial checks only; the write stays
        conditional, so it cannot overwrite a version it never saw.
        """
        with self._mutex:
            self._learn_version(force)
            assert self._seen is not None
            if not force:
                self._check_successor(self._seen.state, state)
            self._write(state)

    def push(self, pushed: State, source: str, *, endpoint: str | None, force: bool) -> int | None:
        """Replace the stored state with ``pushed`` (read from ``source``); hold the lock.

        The policy of ``state push``, here so that it is the store's alone:
        ``pushed`` must belong to ``endpoint`` (this run's endpoint identity;
        None: unknown), continue the stored lineage and not be older; the same
        serial must mean the same content. ``force`` skips all of these. The
        state is written with a serial above the stored one. Returns that
        serial, or None when the store already holds exactly ``pushed``.
        """
        if pushed.endpoint != endpoint and not force:
            talks_to = endpoint or "a sandbox whose database does not exist yet"
            raise StateError(
                f"{source} belongs to endpoint {pushed.endpoint}, but this run talks to "
                f"{talks_to}: every plan against it would refuse this state (pass the "
                "--endpoint it was made for, or --force to push it anyway)"
            )
        with self._mutex:
            # A stored state with a damaged record can still be replaced.
            stored = self._read(keep_damaged=True)
            if stored is not None and not force:
                if pushed.lineage != stored.lineage:
                    raise StateError(
                        f"{source} has lineage {pushed.lineage}, but {self.location} has "
                        f"{stored.lineage}: it is another state (use --force to replace it)"
                    )
                if pushed.serial < stored.serial:
                    raise StateError(
                        f"{source} has serial {pushed.serial}, older than {stored.serial} at "
                        f"{self.location} (use --force to replace it)"
                    )
                same = dumps(pushed) == dumps(stored)
                if pushed.serial == stored.serial and not same:
                    raise StateError(
                        f"{source} has the same serial {pushed.serial} as {self.location} but "
                        "different content (use --force to replace it)"
                    )
                if same:
                    return None
            serial = max(pushed.serial, stored.serial + 1 if stored else 0)
            self._write(replace(pushed, serial=serial))
            return serial

    def _learn_version(self, force: bool) -> None:
        if self._seen is None:
            # Nothing read through this store yet: learn which version the
            # write replaces. A forced write does not parse it, so a
            # damaged state can still be replaced.
            if force:
                self._seen = _Seen(version=self.storage.read()[1], state=None)
            else:
                self._read()

    def _write(self, state: State) -> None:
        assert self._seen is not None
        try:
            version = self.storage.write_if(dumps(state).encode("utf-8"), self._seen.version)
        except WriteConflict as exc:
            raise StateError(
                f"{self.location}: another writer changed the state since this run read "
                f"it ({exc}); nothing was overwritten. Run the command again to work from "
                "the current state."
            ) from None
        self._seen = _Seen(version=version, state=state)

    def _check_successor(self, stored: State | None, state: State) -> None:
        if stored is None:
            return
        if stored.environment is not None and stored.environment != state.environment:
            raise StateError(
                f"{self.location} belongs to environment {stored.environment}, not "
                f"{state.environment or '(none)'}; refusing to overwrite it "
                "(check --env and --state)"
            )
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

    # -- lock --------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self,
        operation: str,
        timeout: float,
        *,
        say: Callable[[str], None] = _to_stderr,
        notice_every: float = LOCK_NOTICE_SECONDS,
    ) -> Iterator[LockInfo]:
        """Hold the lock for the block; wait up to ``timeout`` seconds for it.

        While waiting, ``say`` gets who holds the lock and since when, then a
        line every ``notice_every`` seconds, so a wait in CI does not look
        like a hang. Without a timeout a held lock fails at once, silently.
        """
        info = new_lock_info(operation)
        data = info.to_json().encode("utf-8")
        started = time.monotonic()
        deadline = started + max(timeout, 0.0)
        next_notice: float | None = None
        while not self.storage.create_lock(data):
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                raise LockError(self._refusal())
            if next_notice is None or now >= next_notice:
                say(self._waiting_line(now - started, timeout, first=next_notice is None))
                next_notice = now + notice_every
            time.sleep(min(self.storage.lock_poll_seconds, remaining, next_notice - now))
        try:
            yield info
        except BaseException:
            # The block's own error is the one to report; a lock that cannot
            # be released now is shown to the next run, which can unlock it.
            with contextlib.suppress(StateError):
                self._release(info)
            raise
        self._release(info)

    def _waiting_line(self, waited: float, timeout: float, *, first: bool) -> str:
        """``Waiting for the state lock of X (up to 300 s): lock ... held by ... since ...``."""
        holder = _parse_lock(self.storage.read_lock()[0])
        held = holder.describe() if holder is not None else "its holder is releasing it"
        if first:
            return f"Waiting for the state lock of {self.location} (up to {timeout:g} s): {held}"
        return (
            f"Still waiting for the state lock of {self.location} "
            f"({waited:.0f} s of {timeout:g} s): {held}"
        )

    def _release(self, info: LockInfo) -> None:
        """Delete the lock, but only while it still holds our id."""
        data, version = self.storage.read_lock()
        holder = _parse_lock(data)
        if holder is None or holder.id != info.id:
            # Broken by `state unlock` (and maybe taken by another run since).
            return
        self.storage.delete_lock(version)

    def _refusal(self) -> str:
        data, _ = self.storage.read_lock()
        holder = _parse_lock(data)
        if data is None:
            return (
                f"state {self.location} is locked by another run, whose lock "
                f"{self.storage.lock_location} is gone now; run the command again"
            )
        if holder is None:
            return (
                f"state {self.location} is locked, but its lock {self.storage.lock_location} "
                "is unreadable; if no run holds it, delete it by hand"
            )
        message = f"state {self.location} is locked: {holder.describe()}"
        if _process_gone(holder):
            message += "; that process is no longer running"
        return message + f". If no run holds it, `batchplan state unlock {holder.id}` breaks it."

    def unlock(self, lock_id: str) -> LockInfo:
        """Break the lock with this id (``state unlock``); returns who held it."""
        data, version = self.storage.read_lock()
        if data is None:
            raise LockError(f"state {self.location} is not locked")
        holder = _parse_lock(data)
        if holder is None:
            raise LockError(
                f"{self.storage.lock_location}: lock unreadable; delete it by hand once no "
                "run holds it"
            )
        if holder.id != lock_id:
            raise LockError(f"state {self.location} is held by lock {holder.id}, not {lock_id}")
        if not self.storage.delete_lock(version):
            raise LockError(
                f"state {self.location}: lock {lock_id} was released or replaced while "
                "unlocking; nothing was broken"
            )
        return holder
