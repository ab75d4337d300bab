"""State in a local file, replaced atomically, with a lock file beside it."""

from __future__ import annotations

import contextlib
import datetime
import getpass
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from batchplan.errors import LockError, StateError
from batchplan.state import LockInfo, State, dumps, loads

LOCK_POLL_SECONDS = 0.1


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def new_lock_info(operation: str) -> LockInfo:
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


def process_gone(info: LockInfo) -> bool:
    if info.host != socket.gethostname():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, or what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fingerprint(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class LocalState:
    """``path`` holds the state; ``path + '.lock'`` exists while a run holds it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.location = str(self.path)
        self._written: tuple[tuple[int, int, int], str, int] | None = None

    def read(self) -> State | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"{self.path}: cannot read state: {exc}") from None
        return loads(text, str(self.path))

    def write(self, state: State, *, force: bool = False) -> None:
        """Check lineage and serial against the file, then replace it atomically.

        The check and the replace are not one atomic step: every writer
        (apply, import, ``state rm``, ``state push``) holds the lock file
        first, which is what keeps two local writers apart. A file that is
        still the one this object wrote last (same inode, size and mtime) is
        not parsed again: apply writes often, and the state can be large.
        """
        if not force:
            stored = self._stored_version()
            if stored is not None and (stored[0] != state.lineage or stored[1] >= state.serial):
                raise StateError(
                    f"{self.path}: changed by someone else while this run held it "
                    f"(found lineage {stored[0]} serial {stored[1]}, "
                    f"writing serial {state.serial})"
                )
        self._replace(dumps(state))
        try:
            self._written = (_fingerprint(self.path), state.lineage, state.serial)
        except OSError:
            self._written = None

    def _stored_version(self) -> tuple[str, int] | None:
        try:
            fingerprint = _fingerprint(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read state: {exc}") from None
        if self._written is not None and self._written[0] == fingerprint:
            return self._written[1], self._written[2]
        stored = self.read()
        return None if stored is None else (stored.lineage, stored.serial)

    def _replace(self, text: str) -> None:
        """Write a temp file beside the state, fsync it, then rename over the state."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                # mkstemp makes the file 0600; keep the mode a plain create would give.
                os.fchmod(fd, _file_mode(self.path))
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write state: {exc}") from None

    def _holder(self) -> LockInfo | None:
        try:
            return LockInfo.from_json(self.lock_path.read_text(encoding="utf-8"))
        except OSError:
            return None

    @contextlib.contextmanager
    def lock(self, operation: str, timeout: float) -> Iterator[LockInfo]:
        info = new_lock_info(operation)
        deadline = time.monotonic() + timeout
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        # The lock is written in full to a temp file, then hard-linked into
        # place: link() fails if the lock exists, and a reader never sees a
        # lock file that is still empty.
        fd, tmp = tempfile.mkstemp(prefix=self.lock_path.name + ".", dir=self.lock_path.parent)
        try:
            os.fchmod(fd, _file_mode(self.lock_path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(info.to_json())
            while True:
                try:
                    os.link(tmp, self.lock_path)
                    break
                except FileExistsError:
                    if time.monotonic() >= deadline:
                        raise LockError(self._refusal()) from None
                    time.sleep(LOCK_POLL_SECONDS)
                except OSError as exc:
                    raise StateError(f"{self.lock_path}: cannot create lock: {exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        try:
            yield info
        finally:
            holder = self._holder()
            if holder is not None and holder.id == info.id:
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()

    def _refusal(self) -> str:
        holder = self._holder()
        if holder is None:
            return f"{self.lock_path}: state is locked (lock file unreadable)"
        message = f"state {self.path} is locked: {holder.describe()}"
        if process_gone(holder):
            message += "; that process is no longer running"
        return message + f". If no run holds it, `batchplan state unlock {holder.id}` breaks it."

    def unlock(self, lock_id: str) -> LockInfo:
        holder = self._holder()
        if holder is None:
            if self.lock_path.exists():
                raise LockError(f"{self.lock_path}: lock file unreadable; remove it by hand")
            raise LockError(f"state {self.path} is not locked")
        if holder.id != lock_id:
            raise LockError(f"state {self.path} is held by lock {holder.id}, not {lock_id}")
        with contextlib.suppress(FileNotFoundError):
            self.lock_path.unlink()
        return holder
