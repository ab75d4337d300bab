"""Files batchplan reads and writes itself: state, saved plans, the state lock.

A path in a repository is input like any other: a committed symlink can point
``state.json`` at ``/dev/zero`` or at a file elsewhere, a FIFO can hang a
read, a huge or deeply nested file can exhaust memory or the stack. So every
such file is

- read only when it is a regular file (opened with ``O_NONBLOCK`` and checked
  with ``fstat`` before a byte is read, so a FIFO or a device never blocks),
- read up to a size cap (``cap + 1`` bytes at most, so the excess is noticed
  without reading it all),
- parsed with a clear error for JSON nested deeper than Python can parse,
- written as a new file in the same folder, synced, then renamed into place,
  so a full disk or a crash leaves the old file whole, and
- never written through a symbolic link: ``rename`` replaces a link rather
  than following it, and callers refuse a link where they would create a file.

May import: ``errors`` only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
from collections.abc import Callable
from typing import Any, TextIO

from batchplan.errors import BatchplanError, os_reason

MiB = 1024 * 1024
#: The largest state or saved plan read. 100,000 batches of state are about
#: 15 MiB and a plan of as many changes about 60 MiB.
STATE_CAP = 256 * MiB
PLAN_CAP = 256 * MiB
#: A lock holds one small JSON object.
LOCK_CAP = 64 * 1024

ErrorType = type[BatchplanError]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def is_symlink(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` itself (not what it points to) is a symbolic link, dangling or not."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def symlink_refusal(path: str | os.PathLike[str], what: str) -> str:
    """Why a link at ``path`` is refused, and how to get past it."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (
        f"{what} {os.fspath(path)} is a symbolic link (to {target}); batchplan never reads "
        f"or writes its {what} through a link, so a link cannot make it touch a file "
        f"elsewhere. Remove the link (rm {os.fspath(path)}) or give the real path"
    )


def read_regular(
    path: str | os.PathLike[str],
    *,
    what: str,
    cap: int,
    error: ErrorType,
    follow: bool = True,
) -> tuple[bytes, os.stat_result] | None:
    """The bytes of the regular file at ``path`` and its ``fstat``; None when it does not exist.

    A FIFO, device, socket or folder is refused without reading from it; so
    is a file over ``cap`` bytes, and, unless ``follow``, a symbolic link.
    Every refusal is ``error`` with a message naming ``what`` and the path.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= os.O_NOFOLLOW
    name = os.fspath(path)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not follow and is_symlink(name):
            raise error(symlink_refusal(name, what)) from None
        raise error(f"cannot read {what} {name}: {os_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            # The operating system's words, as when writing there.
            raise error(f"cannot read {what} {name}: {os.strerror(errno.EISDIR)}")
        if not stat.S_ISREG(info.st_mode):
            raise error(
                f"{what} {name} is {_kind(info.st_mode)}, not a regular file; "
                f"batchplan reads its {what} only from a regular file"
            )
        if info.st_size > cap:
            raise error(_too_large(name, what, cap))
        os.set_blocking(fd, True)
        data = _read_at_most(fd, cap + 1, info.st_size)
    except OSError as exc:
        raise error(f"cannot read {what} {name}: {os_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > cap:
        # The file grew after fstat, or lies about its size (/proc and the like).
        raise error(_too_large(name, what, cap))
    return data, info


def open_appending(path: str | os.PathLike[str], *, what: str, error: ErrorType) -> TextIO:
    """The regular file at ``path`` opened to append text (created, mode 0600, if missing).

    Never through a symbolic link (a link cannot make batchplan write a file
    elsewhere), and never a FIFO (it would block), device or folder. Line
    buffered: a line written is on disk, as a log should be.
    """
    name = os.fspath(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(name, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        if is_symlink(name):
            raise error(symlink_refusal(name, what)) from None
        with contextlib.suppress(OSError):
            mode = os.lstat(name).st_mode
            if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
                # A FIFO without a reader answers ENXIO: say what it is instead.
                raise error(_not_regular_for_writing(name, what, mode)) from None
        raise error(f"cannot write {what} {name}: {os_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(_not_regular_for_writing(name, what, info.st_mode))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "a", encoding="utf-8", buffering=1)
    except BaseException:
        os.close(fd)
        raise


def _not_regular_for_writing(name: str, what: str, mode: int) -> str:
    return (
        f"{what} {name} is {_kind(mode)}, not a regular file; "
        f"batchplan writes its {what} only to a regular file"
    )


def _too_large(name: str, what: str, cap: int) -> str:
    size = (
        f"{cap // MiB} MiB"
        if cap % MiB == 0
        else f"{cap // 1024} KiB"
        if cap % 1024 == 0
        else f"{cap} bytes"
    )
    return (
        f"{what} {name} is larger than {size}; refusing to read it "
        f"(batchplan never writes a {what} that large)"
    )


def _read_at_most(fd: int, limit: int, expected: int) -> bytes:
    """Up to ``limit`` bytes, reading the file's size (plus one) at once.

    One read of the expected size keeps a 15 MiB state from being held
    twice (chunks, then their join); more is read only if the file grew.
    """
    data = os.read(fd, min(limit, expected + 1))
    rest = []
    left = limit - len(data)
    while data and left > 0:
        chunk = os.read(fd, min(left, 4 * MiB))
        if not chunk:
            break
        rest.append(chunk)
        left -= len(chunk)
    return data + b"".join(rest) if rest else data


def parse_json(
    text: str | bytes,
    *,
    where: str,
    error: ErrorType,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """``json.loads``, with nesting too deep for the parser as ``error``, not a RecursionError.

    Invalid JSON is left to the caller (a ``ValueError``): each file words it its own way.
    """
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise error(
            f"{where}: JSON nested too deeply to read (more than about "
            f"{sys.getrecursionlimit()} levels); batchplan never writes such a file"
        ) from None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """True when ``value`` holds lists or objects more than ``limit`` levels deep.

    Walks with an explicit stack, so a deep value cannot overflow this check.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def new_file_mode(path: str | os.PathLike[str]) -> int:
    """The mode of the regular file being replaced, or what the umask gives a new file."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            return info.st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: str | os.PathLike[str], data: bytes, *, what: str, error: ErrorType) -> None:
    """Replace ``path`` with ``data`` in one step: temp file beside it, fsync, rename, fsync folder.

    A failure at any point (a full disk, a crash) leaves the old file, or no
    file, never half of one. A symbolic link at ``path`` is refused, so
    nothing is ever created or overwritten elsewhere.
    """
    name = os.fspath(path)
    if is_symlink(name):
        raise error(symlink_refusal(name, what))
    folder = os.path.dirname(name) or "."
    import tempfile  # here, not at the top: only commands that write pay its import

    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(name) + ".", dir=folder)
    except OSError as exc:
        raise error(f"cannot write {what} {name}: {os_reason(exc)}") from None
    try:
        # mkstemp makes the file 0600; keep the mode a plain create would give.
        os.fchmod(fd, new_file_mode(name))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, name)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise error(
                f"cannot write {what} {name}: {os_reason(exc)}; "
                "nothing was replaced (an earlier file there is unchanged)"
            ) from None
        raise
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable; a folder that cannot be synced is no error."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
