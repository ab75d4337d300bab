"""Frozen value types shared by the config loader, the diff, apply and state.

Nothing here does I/O. These types are the vocabulary of the whole package:
``DesiredBatch`` comes from YAML, ``LiveBatch`` from the API, ``BatchRecord``
from state; the diff turns the three into a plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

STAGING: Final = "staging"
IN_PROGRESS: Final = "in_progress"
COMPLETED: Final = "completed"
STATUSES: Final = (STAGING, IN_PROGRESS, COMPLETED)

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
    position: Position | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Settings:
    """Safety limits (DESIGN.md section 4); ``None`` fields were not set in config."""

    max_finalize: int | None = None
    max_changes: int | None = None
    max_forget: int | None = None


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
    created_at: str | None = None


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
