"""State in a local file, replaced atomically, with a lock file beside it."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from batchplan.errors import StateError, os_reason
from batchplan.files import (
    LOCK_CAP,
    STATE_CAP,
    is_symlink,
    new_file_mode,
    read_regular,
    symlink_refusal,
    write_atomic,
)
from batchplan.state.store import StateStore, Version, WriteConflict


def _make_folder(path: Path) -> None:
    """Create the folder ``path`` lives in; a file in its way is ENOTDIR, as ``open`` says."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None


class LocalFiles:
    """The storage primitives on a local disk: ``path`` and ``path + '.lock'``.

    A file's version is its (inode, size, mtime): every write renames a new
    file into place, so a write by anyone else changes it. The check and
    the rename are not one atomic step; what keeps two local writers apart
    is the lock file, which every writer (apply, import, ``state rm``,
    ``state push``) holds first. The check still catches a writer that
    bypassed the lock, short of a write landing in between the two steps.
    """

    lock_poll_seconds = 0.1

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.location = str(self.path)
        self.lock_location = str(self.lock_path)

    def _version(self, path: Path, what: str) -> Version:
        try:
            stat = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {what} {path}: {os_reason(exc)}") from None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _read(self, path: Path, what: str, cap: int) -> tuple[bytes | None, Version]:
        # Never through a link, and only a regular file: a committed link to
        # /dev/zero or a FIFO would otherwise exhaust memory or hang the run.
        found = read_regular(path, what=what, cap=cap, error=StateError, follow=False)
        if found is None:
            return None, None
        data, stat = found
        return data, (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def read(self) -> tuple[bytes | None, Version]:
        return self._read(self.path, "state", STATE_CAP)

    def write_if(self, data: bytes, expected: Version) -> Version:
        found = self._version(self.path, "state")
        if found != expected:
            raise WriteConflict(
                "the file was replaced" if found is not None else "the file was deleted"
            )
        self._replace(data)
        return self._version(self.path, "state")

    def _replace(self, data: bytes) -> None:
        """Write a temp file beside the state, fsync it, then rename over the state.

        A crash leaves the old state or the new one, never half of one. A link
        in the state's place is refused (the rename would replace the link,
        leaving the file it points to behind).
        """
        try:
            _make_folder(self.path)
        except OSError as exc:
            raise StateError(f"cannot write state {self.path}: {os_reason(exc)}") from None
        write_atomic(self.path, data, what="state", error=StateError)

    def create_lock(self, data: bytes) -> bool:
        # The lock is written in full to a temp file, then hard-linked into
        # place: link() fails if the lock exists, and a reader never sees a
        # lock file that is still empty.
        try:
            _make_folder(self.lock_path)
            fd, tmp = tempfile.mkstemp(prefix=self.lock_path.name + ".", dir=self.lock_path.parent)
        except OSError as exc:
            raise StateError(f"cannot create lock {self.lock_path}: {os_reason(exc)}") from None
        try:
            os.fchmod(fd, new_file_mode(self.lock_path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.link(tmp, self.lock_path)
        except FileExistsError:
            if is_symlink(self.lock_path):
                # A link (dangling or not) is no run's lock: waiting for it to
                # go away would block every run until someone removes it.
                raise StateError(symlink_refusal(self.lock_path, "lock")) from None
            return False
        except OSError as exc:
            raise StateError(f"cannot create lock {self.lock_path}: {os_reason(exc)}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return True

    def read_lock(self) -> tuple[bytes | None, Version]:
        return self._read(self.lock_path, "lock", LOCK_CAP)

    def delete_lock(self, expected: Version) -> bool:
        if self._version(self.lock_path, "lock") != expected:
            return False
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"cannot remove lock {self.lock_path}: {os_reason(exc)}") from None
        return True


class LocalState(StateStore):
    """``path`` holds the state; ``path + '.lock'`` exists while a run holds it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.files = LocalFiles(path)
        super().__init__(self.files)
        self.path = self.files.path
        self.lock_path = self.files.lock_path
