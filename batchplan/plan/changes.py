"""The plan is data: changes, findings, refusals, notes and a summary.

Built by ``diff.diff`` and ``planning``; read by the renderers, by the saved
plan file and by apply. Nothing here talks to the network or decides what to
change. Every value a renderer shows is here, in its shown form: renderers
never reach back into the configuration.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchplan.diagnostics import Severity as _Severity
from batchplan.model import DesiredBatch, LiveBatch, Position


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


class ChangeReason(enum.Enum):
    """Why an action is in the plan; the renderers word it."""

    NOT_LIVE = "not_live"
    NOT_IN_STATE = "not_in_state"
    METADATA_DIFFERS = "metadata_differs"
    PRIORITY_UNKNOWN = "priority_unknown"
    PRIORITY_DIFFERS = "priority_differs"
    PRIORITY_REASSERTED = "priority_reasserted"
    FINALIZE_STAGING = "finalize_staging"
    NOT_IN_CONFIG = "not_in_config"


# An error blocks apply (exit 1); a warning blocks nothing. One severity for
# every diagnostic the tool reports (a finding becomes one, see plan.words).
Severity = _Severity


class FindingCode(enum.Enum):
    """What a finding is about; the renderers word it from the finding's facts."""

    PROJECT_MISSING = "project_missing"
    RECORDED_MISSING = "recorded_missing"
    PROJECT_CHANGED = "project_changed"
    CALLBACK_CHANGED = "callback_changed"
    CREATE_FLAG_CHANGED = "create_flag_changed"
    ALREADY_FINALIZED = "already_finalized"
    NAME_CANNOT_CHANGE = "name_cannot_change"
    STATUS_LEFT_ALONE = "status_left_alone"
    NAME_UNMANAGEABLE = "name_unmanageable"
    MANAGED_ELSEWHERE = "managed_elsewhere"


@dataclass(frozen=True)
class Finding:
    """Something worth telling: an error blocks apply, a warning does not.

    ``facts`` hold the shown values the wording needs (never an expanded
    ``${NAME}`` value). ``position`` is where the batch is declared (None for
    a whole project, or a batch only in state or live). ``outside_targets``
    marks an error of a batch that ``--target`` left out, demoted to a warning.
    """

    severity: Severity
    code: FindingCode
    batch: str | None
    project: str
    facts: tuple[tuple[str, str], ...] = ()
    position: Position | None = None
    outside_targets: bool = False

    def fact(self, name: str, default: str = "") -> str:
        return dict(self.facts).get(name, default)

    @property
    def where(self) -> str | None:
        """Where the batch is declared as ``file:line:column``, or None."""
        return None if self.position is None else str(self.position)


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
class MetadataEdit:
    """One metadata key that ``set_metadata`` sets or removes, in shown form.

    ``before`` is the live value, ``None`` with ``before_present`` False when
    the key is not live; ``before_hidden`` when the configured value came from
    a variable, so the live value may hold a secret and is not shown.
    ``after_present`` is False when the config removes the key (``null``).
    """

    key: str
    before: Any = None
    after: Any = None
    before_present: bool = True
    after_present: bool = True
    before_hidden: bool = False


@dataclass(frozen=True)
class Origin:
    """Where the batch of a change is declared, and its ``for_each`` values."""

    file: str
    line: int
    each: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Change:
    """What the plan does to one batch: its actions in apply order, and their arguments.

    ``calibration_batch`` / ``self_label_batch`` are the create-time flags a
    create sends; ``metadata`` the keys a create or ``set_metadata`` sends,
    in shown form. ``desired`` and ``metadata_to_send`` hold the expanded
    values apply sends; they are never rendered nor saved.
    """

    batch: str
    project: str
    actions: tuple[Action, ...]
    before: BatchSide | None
    after: BatchSide | None
    reasons: tuple[ChangeReason, ...] = ()
    calibration_batch: bool = False
    self_label_batch: bool = False
    metadata: tuple[MetadataEdit, ...] = ()
    origin: Origin | None = None
    desired: DesiredBatch | None = field(default=None, compare=False, repr=False)
    metadata_to_send: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

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
class Summary:
    create: int = 0
    set_metadata: int = 0
    finalize: int = 0
    prioritize: int = 0
    prioritize_from_unknown: int = 0
    adopt: int = 0
    forget: int = 0
    api_calls: int = 0

    @property
    def has_changes(self) -> bool:
        return any(
            (
                self.create,
                self.set_metadata,
                self.finalize,
                self.prioritize,
                self.adopt,
                self.forget,
            )
        )


class Limit(enum.Enum):
    MAX_FINALIZE = "max_finalize"
    MAX_CHANGES = "max_changes"
    MAX_FORGET = "max_forget"


@dataclass(frozen=True)
class LimitBreach:
    """A safety limit the plan goes over: apply refuses it without ``--force``."""

    limit: Limit
    planned: int
    max: int


@dataclass(frozen=True)
class Plan:
    """A whole plan: sorted changes plus everything worth telling the user."""

    changes: tuple[Change, ...] = ()
    findings: tuple[Finding, ...] = ()
    unmanaged: tuple[LiveBatch, ...] = ()
    completed_with_priority: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    reassert_priority: bool = False
    unsafe: tuple[LimitBreach, ...] = ()

    @property
    def conflicts(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

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
            set_metadata=counts[Action.SET_METADATA],
            finalize=counts[Action.FINALIZE],
            prioritize=counts[Action.PRIORITIZE],
            prioritize_from_unknown=from_unknown,
            adopt=counts[Action.ADOPT],
            forget=counts[Action.FORGET],
            api_calls=sum(change.api_calls for change in self.changes),
        )


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
    """The safety limits in force: flags, else ``settings:``, else the defaults."""

    max_finalize: int
    max_changes: int
    max_forget: int


def limit_breaches(plan: Plan, limits: Limits) -> tuple[LimitBreach, ...]:
    """Every safety limit the plan goes over.

    ``max_changes`` counts API calls; adopt and forget change state only and
    have their own limit (forget) or none (adopt).
    """
    summary = plan.summary
    checks: Sequence[tuple[Limit, int, int]] = (
        (Limit.MAX_FINALIZE, summary.finalize, limits.max_finalize),
        (Limit.MAX_CHANGES, summary.api_calls, limits.max_changes),
        (Limit.MAX_FORGET, summary.forget, limits.max_forget),
    )
    return tuple(
        LimitBreach(limit, planned, most) for limit, planned, most in checks if planned > most
    )


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``ff2`` before ``ff10``: digit runs compare as numbers."""
    return tuple(
        (1, int(part)) if part.isdigit() else (0, part) for part in _DIGITS.split(name) if part
    )
