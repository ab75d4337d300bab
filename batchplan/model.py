"""Frozen value types shared by the config loader, the diff, apply and state.

Nothing here does I/O. These types are the vocabulary of the whole package:
``DesiredBatch`` comes from YAML, ``LiveBatch`` from the API, ``BatchRecord``
from state; the diff turns the three into a plan.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

STAGING: Final = "staging"
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
# The statuses batchplan knows what to do with. Real accounts hold more
# (``paused``, ``cancelled``, and whatever comes next): a batch in any other
# status is shown as it is and sent no call.
STATUSES: Final = (STAGING, IN_PROGRESS, COMPLETED)
PAUSED: Final = "paused"
CANCELLED: Final = "cancelled"


def known_status(status: str) -> bool:
    """True for the statuses batchplan acts on; any other leaves the batch alone."""
    return status in STATUSES


# Control characters (C0, DEL, C1): never valid in a name, and they could
# disguise a line of terminal output or a line of YAML.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


#: The longest name the config schema accepts (its ``maxLength``).
MAX_NAME_LENGTH: Final = 1024
# Bidirectional controls and zero-width characters: the schema's name pattern refuses them.
_DECEPTIVE = re.compile("[\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]")


def name_problem(name: str) -> str | None:
    """Why batchplan cannot manage a batch of this name (the config refuses it), or None.

    The same rules the config applies to a name, so a live batch whose name
    no config could hold is never imported or adopted.
    """
    if not name:
        return "the name is empty"
    if name in (".", ".."):
        return f"{name!r} is not a batch name"
    if _CONTROL.search(name):
        return "the name holds a control character"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is longer than {MAX_NAME_LENGTH} characters"
    if _DECEPTIVE.search(name):
        return "the name holds a bidirectional control or a zero-width character"
    if not name.isascii() and not unicodedata.is_normalized("NFC", name):
        return "the name is not in Unicode NFC form"
    return None


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def _shell_escape(char: str) -> str:
    # ``\xHH`` is a byte to bash: C1 controls need ``\uHHHH`` to come out as UTF-8.
    return f"\\x{ord(char):02x}" if ord(char) < 0x80 else f"\\u{ord(char):04x}"


def shell_word(name: str) -> str:
    """A name as one shell word to paste into a command: ``$'a\\nb'`` when it holds controls.

    Single quotes would carry a line break literally, splitting the command
    as shown over two lines; bash's ``$'...'`` form escapes it instead.
    """
    if not _CONTROL.search(name):
        return shlex.quote(name)
    inner = "".join(
        {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(
            char, _shell_escape(char) if _CONTROL.match(char) else char
        )
        for char in name
    )
    return f"$'{inner}'"


def escaped(name: str) -> str:
    """A name as a JSON string: quoted, every control character escaped, safe on one line."""
    text = json.dumps(name, ensure_ascii=False)
    # json escapes C0 only; DEL, C1 and the Unicode line separators go out raw.
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


PRIORITY_MIN: Final = 10
PRIORITY_MAX: Final = 30


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """Where a value was written: 1-based line and column in a file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class DesiredBatch:
    """One batch as the configuration wants it, after defaults and ``${NAME}``.

    ``callback`` is the expanded value sent to the API; ``callback_shown`` is
    what the user wrote (``${HOOK_URL}`` stays ``${HOOK_URL}``) and is the only
    form that may appear in any output, since variables may hold tokens.
    ``finalized`` and ``priority`` are ``None`` when batchplan has no opinion.
    """

    name: str
    project: str
    callback: str | None = None
    callback_shown: str | None = None
    priority: int | None = None
    finalized: bool | None = None
    calibration_batch: bool = False
    self_label_batch: bool = False
    # ``None``: metadata is not managed. Otherwise the configured keys only:
    # ``metadata`` holds the expanded values sent to the API, ``metadata_shown``
    # the same keys with ``${NAME}`` kept, the only form any output may show.
    # A key set to ``None`` asks for the key to be removed from the live batch.
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)
    metadata_shown: Mapping[str, Any] | None = field(default=None, hash=False)
    position: Position | None = field(default=None, compare=False)
    # For a batch generated by ``for_each``: the loop values, in key order.
    each: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Settings:
    """Safety limits from ``settings:``; ``None`` fields were not set in config."""

    max_finalize: int | None = None
    max_changes: int | None = None
    max_forget: int | None = None
    # Write the state's lineage into every created or adopted batch's
    # metadata, and refuse a batch another state wrote its lineage into.
    ownership: bool = False


# The metadata key that says which state manages a batch (with ``ownership``).
LINEAGE_KEY: Final = "batchplan.lineage"


DEFAULT_MAX_FINALIZE: Final = 50
DEFAULT_MAX_CHANGES: Final = 500
DEFAULT_MAX_FORGET: Final = 10


@dataclass(frozen=True)
class Config:
    """The whole desired state: every file merged into one."""

    batches: tuple[DesiredBatch, ...]
    settings: Settings = Settings()
    files: tuple[str, ...] = ()

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(b.project for b in self.batches)


@dataclass(frozen=True, slots=True)
class LiveBatch:
    """A batch as the API returns it. The API never returns a priority."""

    name: str
    project: str
    status: str
    callback: str | None = None
    # The live metadata object as listed or got (``None``: the API sent none).
    metadata: Mapping[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What batchplan itself applied to one batch, kept in state.

    ``priority`` is the last priority batchplan sent (``None``: never sent, so
    unknown). The create-time flags are ``None`` for adopted batches, whose
    flags batchplan never saw. The callback is not kept: the API returns it,
    and a callback may carry a token that must not land in a state file.
    """

    name: str
    project: str
    priority: int | None = None
    calibration_batch: bool | None = None
    self_label_batch: bool | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class LiveView:
    """What plan saw of the account.

    ``batches`` holds every batch seen, from the listings of the managed
    projects and from the by-name lookups. A name that was looked up and not
    found is in ``absent``. ``listed_projects`` are the projects that were
    listed; ``missing_projects`` those whose existence check answered 404.
    """

    batches: Mapping[str, LiveBatch]
    absent: frozenset[str] = frozenset()
    listed_projects: frozenset[str] = frozenset()
    missing_projects: frozenset[str] = frozenset()


def same_callback(a: str | None, b: str | None) -> bool:
    """Unset, ``""`` and ``null`` are the same callback (the client sends ``""``)."""
    return (a or "") == (b or "")
