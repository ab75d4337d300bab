"""State in a local file, replaced atomically, with a lock file beside it."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from batchplan.errors import StateError, os_reason
from batchplan.state.store import StateStore, Version, WriteConflict


def _file_mode(path: Path) -> int:
    """The mode of the file being replaced, or what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


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
            stat = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {what} {path}: {os_reason(exc)}") from None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _read(self, path: Path, what: str) -> tuple[bytes | None, Version]:
        try:
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                return handle.read(), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise StateError(f"cannot read {what} {path}: {os_reason(exc)}") from None

    def read(self) -> tuple[bytes | None, Version]:
        return self._read(self.path, "state")

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

        A crash leaves the old state or the new one, never half of one.
        """
        try:
            _make_folder(self.path)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                # mkstemp makes the file 0600; keep the mode a plain create would give.
                os.fchmod(fd, _file_mode(self.path))
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
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
            raise StateError(f"cannot write state {self.path}: {os_reason(exc)}") from None

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
            os.fchmod(fd, _file_mode(self.lock_path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.link(tmp, self.lock_path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StateError(f"cannot create lock {self.lock_path}: {os_reason(exc)}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return True

    def read_lock(self) -> tuple[bytes | None, Version]:
        return self._read(self.lock_path, "lock")

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
