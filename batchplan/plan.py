"""The plan is data: changes, conflicts, warnings, notes and a summary.

Built by ``diff.diff`` and read by the renderers and by apply; nothing here
talks to the network or decides what to change.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchplan.model import DesiredBatch, LiveBatch


class Action(enum.Enum):
    """The fixed set of things a plan can do to one batch.

    Per batch they run in this order: ``adopt`` / ``create`` first, then
    ``set_metadata``, then ``prioritize`` (so workers never pick up tasks at
    the wrong priority), then ``finalize``. ``adopt`` and ``forget`` change
    state only.
    """

    CREATE = "create"
    ADOPT = "adopt"
    SET_METADATA = "set_metadata"
    PRIORITIZE = "prioritize"
    FINALIZE = "finalize"
    FORGET = "forget"

    @property
    def calls_api(self) -> bool:
        return self in (Action.CREATE, Action.SET_METADATA, Action.PRIORITIZE, Action.FINALIZE)


class ConflictKind(enum.Enum):
    PROJECT_MISSING = "project_missing"
    RECORDED_MISSING = "recorded_missing"
    PROJECT_CHANGED = "project_changed"
    CALLBACK_CHANGED = "callback_changed"
    CREATE_FLAG_CHANGED = "create_flag_changed"


class WarningKind(enum.Enum):
    ALREADY_FINALIZED = "already_finalized"
    CONFLICT_OUTSIDE_TARGETS = "conflict_outside_targets"


@dataclass(frozen=True)
class BatchSide:
    """One side (before or after) of a change, as far as batchplan knows it.

    ``priority`` is ``None`` when unknown (before) or unmanaged (after);
    ``callback`` is in its shown form (``${NAME}`` never expanded).
    """

    status: str | None = None
    priority: int | None = None
    callback: str | None = None


@dataclass(frozen=True)
class Change:
    """What the plan does to one batch: its actions in apply order."""

    batch: str
    project: str
    actions: tuple[Action, ...]
    before: BatchSide | None
    after: BatchSide | None
    reason: str
    desired: DesiredBatch | None = field(default=None, compare=False)

    @property
    def symbol_action(self) -> Action:
        """The action that names this change in a summary or a symbol."""
        for action in (Action.CREATE, Action.ADOPT, Action.FORGET):
            if action in self.actions:
                return action
        return self.actions[0]

    @property
    def finalize_if_staging(self) -> bool:
        """A finalize after a create waits for the create's answer."""
        return Action.CREATE in self.actions and Action.FINALIZE in self.actions

    @property
    def prioritizes_from_unknown(self) -> bool:
        """An existing batch whose current priority batchplan never set."""
        return (
            Action.PRIORITIZE in self.actions
            and self.before is not None
            and self.before.priority is None
        )

    @property
    def api_calls(self) -> int:
        return sum(1 for action in self.actions if action.calls_api)


@dataclass(frozen=True)
class Conflict:
    """Something the plan cannot fix; ``plan`` fails and ``apply`` refuses."""

    kind: ConflictKind
    batch: str | None
    project: str
    message: str
    where: str | None = None


@dataclass(frozen=True)
class Warning:
    kind: WarningKind
    batch: str | None
    project: str
    message: str


@dataclass(frozen=True)
class Summary:
    create: int = 0
    finalize: int = 0
    prioritize: int = 0
    prioritize_from_unknown: int = 0
    adopt: int = 0
    forget: int = 0
    api_calls: int = 0

    @property
    def has_changes(self) -> bool:
        return any((self.create, self.finalize, self.prioritize, self.adopt, self.forget))


@dataclass(frozen=True)
class Plan:
    """A whole plan: sorted changes plus everything worth telling the user."""

    changes: tuple[Change, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    warnings: tuple[Warning, ...] = ()
    unmanaged: tuple[LiveBatch, ...] = ()
    completed_with_priority: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    reassert_priority: bool = False

    @property
    def summary(self) -> Summary:
        counts = dict.fromkeys(Action, 0)
        from_unknown = 0
        for change in self.changes:
            for action in change.actions:
                counts[action] += 1
            if change.prioritizes_from_unknown:
                from_unknown += 1
        return Summary(
            create=counts[Action.CREATE],
            finalize=counts[Action.FINALIZE],
            prioritize=counts[Action.PRIORITIZE],
            prioritize_from_unknown=from_unknown,
            adopt=counts[Action.ADOPT],
            forget=counts[Action.FORGET],
            api_calls=sum(change.api_calls for change in self.changes),
        )

    @property
    def has_conflicts(self) -> bool:
        return bool(self.conflicts)


@dataclass(frozen=True)
class PlanOptions:
    """The flags a plan is made with; a saved plan keeps them and ``apply FILE``
    re-plans with the same. Limits left ``None`` come from ``settings:`` or
    the defaults."""

    targets: tuple[str, ...] = ()
    reassert_priority: bool = False
    max_finalize: int | None = None
    max_changes: int | None = None
    max_forget: int | None = None
    force: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "reassert_priority": self.reassert_priority,
            "max_finalize": self.max_finalize,
            "max_changes": self.max_changes,
            "max_forget": self.max_forget,
            "force": self.force,
        }


@dataclass(frozen=True)
class Limits:
    """Safety limits in force (DESIGN.md section 4)."""

    max_finalize: int
    max_changes: int
    max_forget: int


def limit_violations(plan: Plan, limits: Limits) -> Sequence[str]:
    """Every safety limit the plan exceeds, as sentences for the user.

    ``max_changes`` counts API calls; adopt and forget change state only and
    have their own limit (forget) or none (adopt).
    """
    summary = plan.summary
    found = []
    if summary.finalize > limits.max_finalize:
        found.append(
            f"{summary.finalize} finalizes exceed max_finalize ({limits.max_finalize}); "
            "finalizing cannot be undone"
        )
    if summary.api_calls > limits.max_changes:
        found.append(f"{summary.api_calls} API calls exceed max_changes ({limits.max_changes})")
    if summary.forget > limits.max_forget:
        found.append(
            f"{summary.forget} forgets exceed max_forget ({limits.max_forget}); "
            "was a config file left out?"
        )
    return found
