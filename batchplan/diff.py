"""The reconciliation rules: ``(desired, live, state) -> Plan``. Pure: no I/O, no clock.

Each rule is one row of the table in DESIGN.md section 2; the docstrings of
the helpers below name the row they implement.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from batchplan.model import (
    COMPLETED,
    IN_PROGRESS,
    STAGING,
    BatchRecord,
    Config,
    DesiredBatch,
    LiveBatch,
    LiveView,
    same_callback,
)
from batchplan.plan import (
    Action,
    BatchSide,
    Change,
    Conflict,
    ConflictKind,
    Plan,
    Warning,
    WarningKind,
)


def _where(desired: DesiredBatch) -> str | None:
    return str(desired.position) if desired.position is not None else None


def _callback_conflict(desired: DesiredBatch, live: LiveBatch) -> Conflict | None:
    """Callback set in config and different from live: it cannot change after creation.

    When the configured callback came from a variable, the live value is not
    printed either: the two differ, but either may hold a token.
    """
    if desired.callback is None or same_callback(desired.callback, live.callback):
        return None
    templated = desired.callback_shown is not None and desired.callback_shown != desired.callback
    if templated:
        detail = f"live callback differs from the value of {desired.callback_shown}"
    else:
        detail = f"config says {desired.callback_shown!r}, live is {live.callback or ''!r}"
    return Conflict(
        ConflictKind.CALLBACK_CHANGED,
        desired.name,
        desired.project,
        f"callback cannot change after creation ({detail})",
        _where(desired),
    )


def _flag_conflicts(desired: DesiredBatch, record: BatchRecord | None) -> list[Conflict]:
    """A create-time flag that differs from the one batchplan created the batch with."""
    if record is None:
        return []
    found = []
    for flag in ("calibration_batch", "self_label_batch"):
        recorded: bool | None = getattr(record, flag)
        wanted: bool = getattr(desired, flag)
        if recorded is not None and recorded != wanted:
            found.append(
                Conflict(
                    ConflictKind.CREATE_FLAG_CHANGED,
                    desired.name,
                    desired.project,
                    f"{flag} cannot change after creation "
                    f"(created with {str(recorded).lower()}, config says {str(wanted).lower()})",
                    _where(desired),
                )
            )
    return found


def _create(desired: DesiredBatch) -> Change:
    """In config, not live: create, then prioritize, then finalize if created staging."""
    actions = [Action.CREATE]
    if desired.priority is not None:
        actions.append(Action.PRIORITIZE)
    if desired.finalized is True:
        actions.append(Action.FINALIZE)
    return Change(
        batch=desired.name,
        project=desired.project,
        actions=tuple(actions),
        before=None,
        after=BatchSide(
            status=IN_PROGRESS if desired.finalized else STAGING,
            priority=desired.priority,
            callback=desired.callback_shown,
        ),
        reason="in config, not live",
        desired=desired,
    )


def _update(
    desired: DesiredBatch,
    live: LiveBatch,
    record: BatchRecord | None,
    reassert_priority: bool,
    completed_with_priority: list[str],
    warnings: list[Warning],
) -> Change | None:
    """In config and live in the right project: adopt, prioritize, finalize as needed."""
    actions: list[Action] = []
    reasons: list[str] = []
    known_priority = record.priority if record is not None else None
    if record is None:
        actions.append(Action.ADOPT)
        reasons.append("live, not in state")

    after_priority = known_priority
    if desired.priority is not None:
        if live.status == COMPLETED:
            completed_with_priority.append(desired.name)
        elif known_priority != desired.priority or reassert_priority:
            actions.append(Action.PRIORITIZE)
            after_priority = desired.priority
            if known_priority is None:
                reasons.append("priority unknown")
            elif known_priority != desired.priority:
                reasons.append("priority differs")
            else:
                reasons.append("priority reasserted")

    after_status = live.status
    if desired.finalized is True and live.status == STAGING:
        actions.append(Action.FINALIZE)
        after_status = IN_PROGRESS
        reasons.append("finalized: true, live staging")
    elif desired.finalized is False and live.status in (IN_PROGRESS, COMPLETED):
        warnings.append(
            Warning(
                WarningKind.ALREADY_FINALIZED,
                desired.name,
                desired.project,
                f"config says finalized: false, but the batch is already {live.status}; "
                "a finalize cannot be undone, so nothing is done",
            )
        )

    if not actions:
        return None
    # The live callback equals the configured one here; show the configured
    # form, which keeps ``${NAME}`` instead of a token the variable held.
    callback = desired.callback_shown if desired.callback is not None else live.callback
    return Change(
        batch=desired.name,
        project=desired.project,
        actions=tuple(actions),
        before=BatchSide(status=live.status, priority=known_priority, callback=callback),
        after=BatchSide(status=after_status, priority=after_priority, callback=callback),
        reason="; ".join(reasons),
        desired=desired,
    )


def _forget(record: BatchRecord, live: LiveBatch | None) -> Change:
    """In state, not in config: dropped from state; the batch itself stays (no delete)."""
    status = live.status if live is not None else None
    return Change(
        batch=record.name,
        project=record.project,
        actions=(Action.FORGET,),
        before=BatchSide(status=status, priority=record.priority),
        after=None,
        reason="in state, not in config",
    )


def _project_conflicts(config: Config, live: LiveView) -> dict[str, Conflict]:
    """A project that does not exist: one conflict per project, naming its batches."""
    found = {}
    for project in sorted(live.missing_projects):
        names = sorted(b.name for b in config.batches if b.project == project)
        if not names:
            continue
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        found[project] = Conflict(
            ConflictKind.PROJECT_MISSING,
            None,
            project,
            f"project {project!r} does not exist (used by {shown}); is the name misspelt?",
        )
    return found


def _batch_conflicts(
    desired: DesiredBatch, live: LiveBatch | None, record: BatchRecord | None
) -> list[Conflict]:
    if live is None:
        if record is None:
            return []
        return [
            Conflict(
                ConflictKind.RECORDED_MISSING,
                desired.name,
                desired.project,
                "recorded in state but not found live; wrong account or endpoint?",
                _where(desired),
            )
        ]
    if live.project != desired.project:
        return [
            Conflict(
                ConflictKind.PROJECT_CHANGED,
                desired.name,
                desired.project,
                f"name is taken by a batch in project {live.project!r}; "
                "a batch's project cannot change and names are unique per account",
                _where(desired),
            )
        ]
    found = _flag_conflicts(desired, record)
    callback = _callback_conflict(desired, live)
    if callback is not None:
        found.insert(0, callback)
    return found


def diff(
    config: Config,
    live: LiveView,
    state: Mapping[str, BatchRecord],
    *,
    targets: Collection[str] = (),
    reassert_priority: bool = False,
) -> Plan:
    """Compare desired, live and state; return the plan that reconciles them.

    With ``targets``, only those batches get changes; conflicts elsewhere are
    demoted to warnings, and unmanaged batches are not listed.
    """
    target_set = frozenset(targets)

    def targeted(name: str | None) -> bool:
        return not target_set or name in target_set

    changes: list[Change] = []
    conflicts: list[Conflict] = []
    warnings: list[Warning] = []
    completed_with_priority: list[str] = []

    project_conflicts = _project_conflicts(config, live)
    for project, conflict in project_conflicts.items():
        if any(targeted(b.name) for b in config.batches if b.project == project):
            conflicts.append(conflict)
        else:
            warnings.append(_demoted(conflict))

    desired_names = set()
    for desired in config.batches:
        desired_names.add(desired.name)
        if desired.project in project_conflicts:
            continue
        live_batch = live.batches.get(desired.name)
        record = state.get(desired.name)
        batch_conflicts = _batch_conflicts(desired, live_batch, record)
        if batch_conflicts:
            if targeted(desired.name):
                conflicts.extend(batch_conflicts)
            else:
                warnings.extend(_demoted(c) for c in batch_conflicts)
            continue
        if not targeted(desired.name):
            continue
        if live_batch is None:
            changes.append(_create(desired))
            continue
        change = _update(
            desired, live_batch, record, reassert_priority, completed_with_priority, warnings
        )
        if change is not None:
            changes.append(change)

    for name, record in state.items():
        if name not in desired_names and targeted(name):
            changes.append(_forget(record, live.batches.get(name)))

    unmanaged: tuple[LiveBatch, ...] = ()
    if not target_set:
        unmanaged = tuple(
            sorted(
                (
                    b
                    for b in live.batches.values()
                    if b.project in live.listed_projects
                    and b.name not in desired_names
                    and b.name not in state
                ),
                key=lambda b: (b.project, b.name),
            )
        )

    return Plan(
        changes=tuple(sorted(changes, key=lambda c: c.batch)),
        conflicts=tuple(sorted(conflicts, key=lambda c: (c.batch or "", c.project, c.kind.value))),
        warnings=tuple(sorted(warnings, key=lambda w: (w.batch or "", w.project, w.kind.value))),
        unmanaged=unmanaged,
        completed_with_priority=tuple(sorted(completed_with_priority)),
        targets=tuple(sorted(target_set)),
        reassert_priority=reassert_priority,
    )


def _demoted(conflict: Conflict) -> Warning:
    return Warning(
        WarningKind.CONFLICT_OUTSIDE_TARGETS,
        conflict.batch,
        conflict.project,
        f"outside the targets: {conflict.message}",
    )
